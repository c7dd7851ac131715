/**
 * The IPAM of global networks: the built-in allocator over the cluster store,
 * so every host draws from one record per address and two hosts never hand out
 * one address. Pools are the user's subnets or /24s of 10.0.0.0/8 (Docker's
 * swarm default), chosen clear of the other global networks.
 *
 * An endpoint's address is taken in its own cluster transaction when it is
 * requested (the endpoint's record is local, in another store) and given back
 * if the endpoint never commits, as an IPAM plugin's is.
 */
import { log } from '../log.js';
import type { Store, StoreReader } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import { AddressAllocator } from './allocator.js';
import type { DefaultPool } from './default-pools.js';
import type { AddressLease, Ipam, PoolsRequest } from './ipam-api.js';
import type { PoolConfig } from './pool.js';
import { poolsFor } from './pools-for.js';

/** Docker swarm's default address pool. */
export const GLOBAL_POOLS: readonly DefaultPool[] = [{ base: '10.0.0.0/8', size: 24 }];

export class ClusterIpam implements Ipam {
  readonly name = 'default';
  readonly allocator: AddressAllocator;

  constructor(
    private readonly store: Store,
    hostId: string,
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
    const got = await this.store.txn((tx) => this.allocator.allocate(tx, net, family, endpointId, address));
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
    await this.store.txn((tx) => this.allocator.release(tx, net, address));
  }

  /** Addresses of endpoints that are gone are found by the cluster's own reconcile (not yet: see the notes). */
  async reconcile(_net: NetworkRecord, _isLive: (r: StoreReader, endpointId: string) => boolean, _dryRun: boolean): Promise<string[]> {
    return [];
  }
}
