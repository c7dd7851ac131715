/**
 * What the embedded resolver knows of an endpoint: the names it answers to on
 * its network and the name its addresses resolve back to. Docker's rules:
 * user-defined networks only (the default bridge has no embedded DNS), the
 * sandbox's name, its short id, its network aliases, and each of those
 * qualified with the network's name.
 */
import type { DnsEndpoint } from '../native-api.js';
import { keys } from '../records.js';
import type { Store } from '../store/store.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';

/** Networks whose sandboxes find each other by name: user-defined ones, of a driver that gives addresses. */
export function hasDns(net: Pick<NetworkRecord, 'predefined' | 'driver'>): boolean {
  return !net.predefined && net.driver !== 'host' && net.driver !== 'null';
}

/** The names of `sb`'s endpoint on `net`, lowercase, each also as NAME.NETWORK. */
export function endpointNames(net: Pick<NetworkRecord, 'name'>, sbName: string, sbId: string, aliases: readonly string[]): string[] {
  const base = [sbName, sbId.slice(0, 12), ...aliases].map((n) => n.toLowerCase());
  const qualified = base.map((n) => `${n}.${net.name.toLowerCase()}`);
  return [...new Set([...base, ...qualified])];
}

/** What a reverse lookup of its addresses answers: SANDBOX.NETWORK, as Docker's. */
export function ptrName(net: Pick<NetworkRecord, 'name'>, sbName: string): string {
  return `${sbName}.${net.name}`.toLowerCase();
}

/** The names a global endpoint's peer record carries for the other hosts, from this host's records. */
export function peerNames(store: Pick<Store, 'get'>, ep: EndpointRecord): { names?: string[]; ptr?: string } {
  const net = store.get<NetworkRecord>(keys.net(ep.networkId));
  const sb = store.get<SandboxRecord>(keys.sb(ep.sandboxId));
  if (!net || !sb || !hasDns(net)) return {};
  return { names: endpointNames(net, sb.name, sb.id, ep.aliases), ptr: ptrName(net, sb.name) };
}

/** The resolver's record of a local endpoint. */
export function dnsEndpoint(net: NetworkRecord, sb: SandboxRecord, ep: EndpointRecord): DnsEndpoint {
  return {
    id: ep.id,
    network: net.id,
    sandbox: sb.id,
    names: endpointNames(net, sb.name, sb.id, ep.aliases),
    ptr: ptrName(net, sb.name),
    ipv4: ep.ipv4 || undefined,
    ipv6: ep.ipv6 || undefined,
  };
}
