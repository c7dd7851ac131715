/**
 * The IPAM of routed networks: the network's subnet is chosen in the cluster
 * (clear of the other global networks), and each host hands out the addresses
 * of its own block from its own store, with the built-in allocator: blocks are
 * exclusive, so an address needs no cluster transaction, and a connect costs
 * none once the host holds its block.
 */
import { CnmError } from '../errors.js';
import type { RouteBlocks } from '../cluster/route-blocks.js';
import { blockGateway } from '../cluster/route-blocks.js';
import type { StoreReader } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import type { DefaultIpam } from './default-ipam.js';
import type { DefaultPool } from './default-pools.js';
import type { AddressLease, Ipam, PoolsRequest } from './ipam-api.js';
import type { PoolConfig } from './pool.js';
import { poolsFor } from './pools-for.js';

/** Where routed subnets come from when none is given: /16s of 10.0.0.0/8. */
export const ROUTED_POOLS: readonly DefaultPool[] = [{ base: '10.0.0.0/8', size: 16 }];

/** The network as this host's allocator sees it: its block alone, the block's gateway reserved. */
export function blockView(net: NetworkRecord, block: string): NetworkRecord {
  return { ...net, ipam: { ...net.ipam, config: [{ subnet: block, gateway: blockGateway(block) }] } };
}

export class BlockIpam implements Ipam {
  readonly name = 'default';

  constructor(
    private readonly blocks: RouteBlocks,
    private readonly local: DefaultIpam,
  ) {}

  requestPools(req: PoolsRequest): Promise<PoolConfig[]> {
    if (req.requested.some((p) => p.subnet?.includes(':'))) {
      return Promise.reject(new CnmError('ERR_INVALID_ARGUMENT', 'routed networks are IPv4 only: leave the IPv6 subnet out', { value: req.requested.map((p) => p.subnet) }));
    }
    return poolsFor(req, ROUTED_POOLS);
  }

  /** The cluster's records of the network go with it (see RouteBlocks.purge); this host's addresses went with its endpoints. */
  async releasePools(): Promise<void> {}

  /** The view of `net` on this host's block: claimed first when the host holds none. */
  private async view(net: NetworkRecord): Promise<NetworkRecord> {
    const before = this.blocks.known(net.id);
    const block = await this.blocks.claim(net);
    // a host that came back to another block: its allocator's cache of the old one goes
    if (before !== undefined && before !== block) this.local.allocator.forget(net.id);
    return blockView(net, block);
  }

  private known(net: NetworkRecord): NetworkRecord | undefined {
    const block = this.blocks.known(net.id);
    return block === undefined ? undefined : blockView(net, block);
  }

  async requestAddress(net: NetworkRecord, family: 4 | 6, address?: string): Promise<AddressLease> {
    if (family === 6) throw new CnmError('ERR_INVALID_ARGUMENT', `routed network ${net.name} has no IPv6 subnet`, { network: net.name, value: address });
    return this.local.requestAddress(await this.view(net), family, address);
  }

  async releaseAddress(net: NetworkRecord, address: string): Promise<void> {
    const v = this.known(net);
    if (v) await this.local.releaseAddress(v, address);
  }

  async reconcile(net: NetworkRecord, isLive: (r: StoreReader, endpointId: string) => boolean, dryRun: boolean): Promise<string[]> {
    const v = this.known(net);
    return v ? this.local.reconcile(v, isLive, dryRun) : [];
  }
}
