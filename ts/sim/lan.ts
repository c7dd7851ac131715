/**
 * A simulated LAN for a cluster on one machine (the demo, tests, bench): a
 * "switch" netns with a bridge, and each host netns plugged into it by a veth
 * (`ul0` on the host side) with an address of a private /24, only inside
 * namespaces the caller made. The hosts' VXLAN tunnels run over it.
 */
import { native } from '../native.js';

export interface SimulatedLan {
  switchNs: string;
  /** plug a host netns in with address `ip` (of the LAN's /24) */
  plug(hostNs: string, ip: string): Promise<void>;
}

/** Make the switch (its netns and bridge); the caller deletes the netns. */
export async function simulatedLan(switchNs: string): Promise<SimulatedLan> {
  await native.netnsCreate(switchNs);
  await native.ensureBridge({ netns: switchNs, name: 'sw0', up: true });
  let n = 0;
  return {
    switchNs,
    async plug(hostNs, ip) {
      // the host's end is born in the host netns with its address; the switch's end joins the bridge
      await native.attachVeth({ hostNetns: switchNs, sandboxNetns: hostNs, hostIfname: `swp${n++}`, master: 'sw0', ifname: 'ul0', addresses: [`${ip}/24`], gateway: null, gateway6: null });
    },
  };
}
