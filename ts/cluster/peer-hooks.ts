/**
 * An endpoint's peer record travels with its addresses: written in the
 * transaction that takes its address from the cluster IPAM (the MAC derived from
 * the IPv4 address, as the overlay driver derives it), updated by a dual-stack
 * endpoint's second address, removed with its last one. The other hosts program
 * it while the kernel makes the veth, and an attach costs one etcd round trip.
 */
import { macFor } from '../drivers/bridge-options.js';
import { CnmError } from '../errors.js';
import type { AddressHooks } from '../ipam/cluster-ipam.js';
import type { StoreTxn } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import { type Cluster, type PeerRecord, clusterKeys } from './cluster.js';

export class PeerRecordHooks implements AddressHooks {
  /** names of endpoints whose addresses are being taken */
  private readonly names = new Map<string, { names: string[]; ptr: string }>();

  constructor(private readonly cluster: Cluster) {}

  nameEndpoint(endpointId: string, names: { names: string[]; ptr: string } | undefined): void {
    if (names) this.names.set(endpointId, names);
    else this.names.delete(endpointId);
  }

  allocated(tx: StoreTxn, net: NetworkRecord, endpointId: string, family: 4 | 6, address: string): void {
    if (!tx.get(`net/${net.id}`)) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${net.name} was removed from the cluster`, { network: net.name });
    const key = clusterKeys.peer(net.id, endpointId);
    const had = tx.get<PeerRecord>(key);
    const ip = address.split('/')[0]!;
    // IPv4 first, as the overlay driver lists them; the MAC comes from the IPv4 address when there is one
    const ips = family === 4 ? [ip, ...(had?.ips.filter((a) => a.includes(':')) ?? [])] : [...(had?.ips.filter((a) => !a.includes(':')) ?? []), ip];
    const mac = family === 4 ? macFor(address, endpointId) : (had?.mac ?? macFor('', endpointId));
    const names = this.names.get(endpointId) ?? (had?.names ? { names: had.names, ptr: had.ptr ?? '' } : undefined);
    tx.put(key, { host: this.cluster.hostId, vtep: this.cluster.advertise, mac, ips, ...names } satisfies PeerRecord, { ephemeral: true });
  }

  released(tx: StoreTxn, net: NetworkRecord, endpointId: string, address: string): void {
    const key = clusterKeys.peer(net.id, endpointId);
    const had = tx.get<PeerRecord>(key);
    if (!had || had.host !== this.cluster.hostId) return;
    const ips = had.ips.filter((a) => a !== address.split('/')[0]);
    if (ips.length === 0) tx.del(key);
    else tx.put(key, { ...had, ips }, { ephemeral: true });
  }
}
