/**
 * The built-in IPAM ("default"): pools are the user's subnets or ones chosen
 * from the default address pools (IPv6: /64s of a ULA /48 of this host);
 * addresses come from the bitmap allocator, which keeps one store record per
 * address and binds it inside the transaction that records the endpoint.
 */
import type { StoreTxn } from '../store/store.js';
import { CnmError } from '../errors.js';
import type { Store, StoreReader } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import { AddressAllocator } from './allocator.js';
import { freeLeaked } from './leaked.js';
import type { DefaultPool } from './default-pools.js';
import type { AddressLease, Ipam, PoolsRequest } from './ipam-api.js';
import type { PoolConfig } from './pool.js';
import { poolsFor } from './pools-for.js';

const isV6 = (c: PoolConfig) => c.subnet.includes(':');

export class DefaultIpam implements Ipam {
  readonly name = 'default';
  readonly allocator: AddressAllocator;

  constructor(
    private readonly store: Store,
    private readonly pools: readonly DefaultPool[],
  ) {
    this.allocator = new AddressAllocator(store);
  }

  requestPools(req: PoolsRequest): Promise<PoolConfig[]> {
    return poolsFor(req, this.pools);
  }

  async releasePools(net: NetworkRecord): Promise<void> {
    await this.store.txn((tx) => this.allocator.purge(tx, net));
  }

  async requestAddress(net: NetworkRecord, family: 4 | 6, address?: string): Promise<AddressLease> {
    if (!net.ipam.config.some((c) => isV6(c) === (family === 6))) {
      throw new CnmError('ERR_INVALID_ARGUMENT', `network ${net.name} has no IPv${family} subnet${family === 6 ? ': create it with --ipv6 to use --ip6' : ''}`, {
        value: address,
        network: net.name,
      });
    }
    return {
      bind: (tx, endpointId) => this.allocator.allocate(tx, net, family, endpointId, address),
      // nothing outlives a transaction that did not commit
      release: async () => undefined,
    };
  }

  async releaseAddress(net: NetworkRecord, address: string): Promise<void> {
    if (!address) return;
    await this.store.txn((tx) => this.releaseAddressIn(tx, net, address));
  }

  releaseAddressIn(tx: StoreTxn, net: NetworkRecord, address: string): void {
    if (address) this.allocator.release(tx, net, address);
  }

  /**
   * Free addresses whose endpoint is gone, checked again inside the releasing
   * transaction, so an endpoint another process recorded meanwhile keeps its address.
   */
  async reconcile(net: NetworkRecord, isLive: (r: StoreReader, endpointId: string) => boolean, dryRun: boolean): Promise<string[]> {
    const leaked = [...this.allocator.allocations(net)].filter(([, ep]) => !isLive(this.store, ep));
    return freeLeaked(leaked, dryRun, (ip, ep) =>
      this.store.txn((tx) => {
        if (isLive(tx, ep)) return false;
        this.allocator.release(tx, net, ip);
        return true;
      }),
    );
  }
}
