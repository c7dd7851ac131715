/**
 * The IPAM of global networks: the built-in allocator over the cluster store,
 * so every host draws from one record per address and two hosts never hand out
 * one address. Pools are the user's subnets or /24s of 10.0.0.0/8 (Docker's
 * swarm default), chosen clear of the other global networks.
 *
 * An endpoint's address is taken in its own cluster transaction when it is
 * requested (the endpoint's record is local, in another store) and given back
 * if the endpoint never commits, as an IPAM plugin's is. Each address record
 * names the host that took it: that host's reconcile frees the ones whose
 * endpoint it no longer has (a crash between its steps), never another host's.
 */
import { log } from '../log.js';
import { partitionsOf } from '../cluster/cluster.js';
import type { EtcdStore } from '../store/etcd-store.js';
import type { StoreReader, StoreTxn } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import { AddressAllocator } from './allocator.js';
import { freeLeaked } from './leaked.js';
import type { DefaultPool } from './default-pools.js';
import type { AddressLease, Ipam, PoolsRequest } from './ipam-api.js';
import type { PoolConfig } from './pool.js';
import { poolsFor } from './pools-for.js';

/** Docker swarm's default address pool. */
export const GLOBAL_POOLS: readonly DefaultPool[] = [{ base: '10.0.0.0/8', size: 24 }];

/**
 * How old an address of this host must be before reconcile may free it: an
 * address is taken in etcd before its endpoint is recorded locally, and a
 * connect in flight must keep it.
 */
export const RECONCILE_GRACE_MS = 30_000;

/**
 * What else an address's transaction writes: the overlay driver publishes an
 * endpoint's peer record with its address, so an attach costs one etcd round
 * trip, and takes it back with it.
 */
export interface AddressHooks {
  /** the DNS names of an endpoint about to take addresses, for what allocated() writes */
  nameEndpoint?(endpointId: string, names: { names: string[]; ptr: string } | undefined): void;
  allocated(tx: StoreTxn, net: NetworkRecord, endpointId: string, family: 4 | 6, address: string): void;
  released(tx: StoreTxn, net: NetworkRecord, endpointId: string, address: string): void;
}

export class ClusterIpam implements Ipam {
  readonly name = 'default';
  readonly allocator: AddressAllocator;
  /** set by the overlay driver */
  hooks: AddressHooks | undefined;

  constructor(
    private readonly store: EtcdStore,
    private readonly hostId: string,
    /** this host's own store, where its endpoints are recorded */
    private readonly local: StoreReader,
  ) {
    this.allocator = new AddressAllocator(store, hostId);
  }

  requestPools(req: PoolsRequest): Promise<PoolConfig[]> {
    return poolsFor(req, GLOBAL_POOLS);
  }

  async releasePools(net: NetworkRecord): Promise<void> {
    await this.store.txn((tx) => this.allocator.purge(tx, net));
  }

  async requestAddress(net: NetworkRecord, family: 4 | 6, address?: string, endpointId = ''): Promise<AddressLease> {
    const got = await this.store.txn((tx) => {
      const a = this.allocator.allocate(tx, net, family, endpointId, address);
      if (endpointId) this.hooks?.allocated(tx, net, endpointId, family, a);
      return a;
    });
    return {
      bind: () => got,
      // the endpoint did not commit: the address goes back
      release: async () => {
        await this.releaseAddress(net, got).catch((e: unknown) => log.warn('giving back an unused cluster address failed', { network: net.name, address: got, err: e }));
      },
    };
  }

  async releaseAddress(net: NetworkRecord, address: string): Promise<void> {
    if (!address) return;
    await this.store.txn((tx) => this.releaseIn(tx, net, address));
  }

  /** Give an address back inside the caller's transaction, and what the hooks wrote with it. */
  releaseIn(tx: StoreTxn, net: NetworkRecord, address: string): void {
    const rec = this.allocator.recordOf(tx, net, address);
    if (rec?.endpointId) this.hooks?.released(tx, net, rec.endpointId, address);
    this.allocator.release(tx, net, address);
  }

  /**
   * Free this host's addresses whose endpoint it no longer has (older than
   * {@link RECONCILE_GRACE_MS}), each checked again inside its transaction.
   * Another host's addresses are its own to judge: a host that is down keeps
   * them until it comes back.
   */
  async reconcile(net: NetworkRecord, isLive: (r: StoreReader, endpointId: string) => boolean, dryRun: boolean): Promise<string[]> {
    // the network's keys may not be mirrored here (no endpoint left on it): its
    // addresses, and the peer records the hooks give back with them
    const letGo = await this.store.followAll(partitionsOf(net.id));
    try {
      const old = Date.now() - RECONCILE_GRACE_MS;
      const leaked = [...this.allocator.allocationRecords(net)].filter(([, r]) => r.host === this.hostId && (r.at ?? 0) < old && !isLive(this.local, r.endpointId));
      return await freeLeaked(leaked, dryRun, (ip, rec) =>
        this.store.txn((tx) => {
          // still the same allocation (not given back and taken again meanwhile), still orphaned
          if (this.allocator.recordOf(tx, net, ip)?.endpointId !== rec.endpointId || isLive(this.local, rec.endpointId)) return false;
          this.releaseIn(tx, net, ip);
          return true;
        }),
      );
    } finally {
      letGo();
    }
  }
}
