/**
 * A global network's endpoints as the other hosts see them (their peer tables,
 * their DNS, the network's in-use check): one record per endpoint, bound to this
 * host's lease. Shared by the overlay and routed drivers.
 */
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import type { EndpointRecord, NetworkRecord } from '../types.js';
import { type Cluster, type PeerRecord, clusterKeys } from './cluster.js';

export class PeerPublisher {
  constructor(
    private readonly cluster: Cluster,
    /** an endpoint's DNS names for the other hosts (none when its network has no DNS) */
    private readonly namesOf: (ep: EndpointRecord) => Pick<PeerRecord, 'names' | 'ptr'>,
  ) {}

  /** This endpoint as the other hosts see it. */
  record(ep: EndpointRecord): PeerRecord {
    return {
      host: this.cluster.hostId,
      vtep: this.cluster.advertise,
      mac: ep.mac,
      ips: [ep.ipv4, ep.ipv6].filter((a) => a !== '').map((a) => a.split('/')[0]!),
      sandbox: ep.sandboxId,
      ...this.namesOf(ep),
    };
  }

  /** Publish endpoints of `net`, refused when the network left the cluster meanwhile. */
  async publish(net: NetworkRecord, eps: EndpointRecord[]): Promise<void> {
    await this.cluster.store.txn((tx) => {
      if (!tx.get(`net/${net.id}`)) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${net.name} was removed from the cluster`, { network: net.name });
      for (const ep of eps) tx.put(clusterKeys.peer(net.id, ep.id), this.record(ep), { ephemeral: true });
    });
  }

  /** Take an endpoint's record back (best effort: the lease would end it too; a failure is logged). */
  async unpublish(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    await this.cluster.store
      .txn((tx) => tx.del(clusterKeys.peer(net.id, ep.id)))
      .catch((e: unknown) => log.warn('taking back the peer record of an endpoint failed', { network: net.name, endpoint: ep.id, err: e }));
  }
}
