/**
 * An "outside" netns wired to a test's host netns by a veth pair, standing in for
 * the world beyond the host: host side 192.0.2.1/24 and 2001:db8::1/64, outside
 * 192.0.2.2/24 and 2001:db8::2/64 (TEST-NET-1 and the IPv6 documentation prefix,
 * only ever inside namespaces the test made).
 */
import { execFileSync } from 'node:child_process';
import { native } from '../../ts/native.js';

export const HOST_IP = '192.0.2.1';
export const OUTSIDE_IP = '192.0.2.2';
export const HOST_IP6 = '2001:db8::1';
export const OUTSIDE_IP6 = '2001:db8::2';

export async function wireOutside(hostNs: string, outsideNs: string): Promise<void> {
  await native.netnsCreate(outsideNs);
  const ip = (...a: string[]) => execFileSync('ip', a);
  ip('-n', hostNs, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs);
  ip('-n', hostNs, 'addr', 'add', `${HOST_IP}/24`, 'dev', 'uplink0');
  // nodad: usable at once, no duplicate address detection delay
  ip('-n', hostNs, 'addr', 'add', `${HOST_IP6}/64`, 'dev', 'uplink0', 'nodad');
  ip('-n', hostNs, 'link', 'set', 'uplink0', 'up');
  ip('-n', outsideNs, 'addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'eth0');
  ip('-n', outsideNs, 'addr', 'add', `${OUTSIDE_IP6}/64`, 'dev', 'eth0', 'nodad');
  ip('-n', outsideNs, 'link', 'set', 'eth0', 'up');
}
