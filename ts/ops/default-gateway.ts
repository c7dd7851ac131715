/**
 * The default-gateway hand-over (libnetwork's default_gateway.go): the endpoint
 * that gives a sandbox its default route is the first one attached to a network
 * that is not internal; when it goes, the next one by interface order takes over.
 */
import { native } from '../native.js';
import { contains, parseIp, parseSubnet } from '../net/ip.js';
import { endpointsOfSandbox, keys } from '../records.js';
import type { StoreReader } from '../store/store.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { natural } from '../compare.js';

/** Whether a new endpoint on `net` gives the default route, beside the sandbox's others. */
export function givesDefaultRoute(net: NetworkRecord, others: readonly EndpointRecord[]): boolean {
  // an overlay network has no way out of its own (the gateway bridge gives that); a
  // routed one has, through its host's bridge
  return !net.internal && (net.scope !== 'global' || net.driver === 'routed') && !others.some((e) => e.defaultGateway);
}

/** The gateway of the network's subnet that holds `address` ("addr/prefix"). */
export function gatewayFor(net: NetworkRecord, address: string): string {
  const ip = parseIp(address.split('/')[0]!);
  return net.ipam.config.find((c) => contains(parseSubnet(c.subnet), ip))?.gateway ?? '';
}

/** The endpoint that takes over the default route when `leaving` goes. */
export function gatewayHeir(r: StoreReader, sb: SandboxRecord, leaving: EndpointRecord): EndpointRecord | undefined {
  return endpointsOfSandbox(r, sb.id)
    .filter((e) => e.id !== leaving.id && ((e.gateway !== '' && e.ipv4 !== '') || (!!e.gateway6 && e.ipv6 !== '')))
    .filter((e) => {
      const n = r.get<NetworkRecord>(keys.net(e.networkId));
      return !n?.internal && n?.scope !== 'global';
    })
    .sort((a, b) => natural(a.ifname, b.ifname))[0];
}

/** Give the sandbox its default routes through the heir (its record is updated by the caller). */
export async function handOverDefaultRoute(sb: SandboxRecord, heir: EndpointRecord): Promise<void> {
  if (heir.ipv4 && heir.gateway) await native.setDefaultRoute(sb.netns, heir.ifname, heir.gateway, 4);
  if (heir.ipv6 && heir.gateway6) await native.setDefaultRoute(sb.netns, heir.ifname, heir.gateway6, 6);
}
