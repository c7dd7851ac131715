/**
 * A "LAN" for macvlan tests, inside namespaces the test made: a bridge in a LAN
 * netns, the isolated host's interface `lan0` (the macvlan parent) on it through
 * a veth, and an outside host (a netns with `addresses` on its eth0).
 */
import { execFileSync } from 'node:child_process';
import { native } from '../../ts/native.js';
import type { IsolatedHost } from './host.js';

const ip = (...a: string[]) => execFileSync('ip', a);

export async function lanWithOutside(host: IsolatedHost, addresses: string[]): Promise<{ lan: string; outside: string }> {
  const lan = host.name('lan');
  const outside = host.name('outside');
  await native.netnsCreate(lan);
  await native.netnsCreate(outside);
  ip('-n', lan, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', lan, 'link', 'set', 'br0', 'up');
  ip('-n', host.ns, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'p-host', 'netns', lan);
  ip('-n', outside, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'p-out', 'netns', lan);
  for (const p of ['p-host', 'p-out']) ip('-n', lan, 'link', 'set', p, 'master', 'br0', 'up');
  ip('-n', host.ns, 'link', 'set', 'lan0', 'up');
  for (const a of addresses) ip('-n', outside, 'addr', 'add', a, 'dev', 'eth0');
  ip('-n', outside, 'link', 'set', 'eth0', 'up');
  ip('-n', outside, 'link', 'set', 'lo', 'up');
  return { lan, outside };
}
