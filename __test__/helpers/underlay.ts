/**
 * A simulated LAN for cluster tests: a "switch" netns with a bridge, and each
 * host netns plugged into it by a veth (`ul0` on the host side) with an address
 * of a private /24 (192.168.77.0/24 by default, only inside namespaces the test
 * made). The hosts' VXLAN tunnels run over it.
 */
import { execFileSync } from 'node:child_process';
import { native } from '../../ts/native.js';

export interface Underlay {
  switchNs: string;
  /** plug a host netns in with address `ip` (the /24 of the underlay) */
  plug(hostNs: string, ip: string): void;
}

export async function underlay(switchNs: string): Promise<Underlay> {
  await native.netnsCreate(switchNs);
  const ip = (...a: string[]) => execFileSync('ip', a);
  ip('-n', switchNs, 'link', 'add', 'sw0', 'type', 'bridge');
  ip('-n', switchNs, 'link', 'set', 'sw0', 'up');
  let n = 0;
  return {
    switchNs,
    plug(hostNs, addr) {
      const port = `swp${n++}`;
      ip('-n', hostNs, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', port, 'netns', switchNs);
      ip('-n', hostNs, 'addr', 'add', `${addr}/24`, 'dev', 'ul0');
      ip('-n', hostNs, 'link', 'set', 'ul0', 'up');
      ip('-n', switchNs, 'link', 'set', port, 'master', 'sw0', 'up');
    },
  };
}
