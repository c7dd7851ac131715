/**
 * The blocks of routed networks: each host with endpoints on a routed network
 * holds one block of its subnet (a /24 by default), allocated in the cluster
 * store in one compare-and-swap transaction, so two hosts never hold one block.
 * The holding record is bound to the host's lease: a host that dies gives its
 * block back when the lease ends, with its other records. A second, lasting
 * record remembers which block each host had, so that a host that comes back
 * gets the same one (its sandboxes kept their addresses) unless another host
 * had to take it because no other was free.
 */
import { CnmError } from '../errors.js';
import { formatIp, parseSubnet } from '../net/ip.js';
import type { Store, StoreReader, StoreTxn } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import type { Cluster } from './cluster.js';

/** A host's block of a routed network, as every host sees it. */
export interface BlockRecord {
  host: string;
  /** where the other hosts route the block: the host's underlay address */
  advertise: string;
  /** e.g. "10.40.3.0/24" */
  block: string;
}

export const blockKeys = {
  /** held while the host has endpoints on the network; bound to its lease */
  held: (netId: string, hostId: string) => `rblock/${netId}/${hostId}`,
  heldAll: (netId: string) => `rblock/${netId}/`,
  prefix: 'rblock/',
  /** the block a host had last: lasts until the network goes */
  remembered: (netId: string, hostId: string) => `rblockmem/${netId}/${hostId}`,
  rememberedAll: (netId: string) => `rblockmem/${netId}/`,
};

/** Docker-like option: the prefix length of each host's block. */
export const BLOCK_OPTION = 'block_size';
export const DEFAULT_BLOCK = 24;

/** The block size of a routed network (checked by the driver at create). */
export const blockSizeOf = (net: NetworkRecord) => Number(net.options[BLOCK_OPTION] ?? DEFAULT_BLOCK);

/** The IPv4 subnet of a routed network. */
export function subnetOf(net: NetworkRecord): string {
  const c = net.ipam.config.find((p) => !p.subnet.includes(':'));
  if (!c) throw new CnmError('ERR_INVALID_ARGUMENT', `routed network ${net.name} has no IPv4 subnet`, { network: net.name });
  return c.subnet;
}

/** Every block of `subnet` of prefix length `size`, in order. */
export function blocksOf(subnet: string, size: number): string[] {
  const c = parseSubnet(subnet);
  const n = 1 << (size - c.prefix);
  const step = 1n << BigInt(32 - size);
  return Array.from({ length: n }, (_, i) => `${formatIp({ family: 4, value: c.addr + BigInt(i) * step })}/${size}`);
}

/** The bridge's address of a block: its first host address. */
export function blockGateway(block: string): string {
  const c = parseSubnet(block);
  return formatIp({ family: 4, value: c.addr + 1n });
}

/**
 * The block a host takes: the one it remembers if free; else the first free one
 * no other host remembers; else the first free one at all.
 */
export function chooseBlock(all: readonly string[], held: ReadonlySet<string>, mine: string | undefined, others: ReadonlySet<string>): string | undefined {
  if (mine !== undefined && all.includes(mine) && !held.has(mine)) return mine;
  return all.find((b) => !held.has(b) && !others.has(b)) ?? all.find((b) => !held.has(b));
}

export class RouteBlocks {
  /** the block this host holds per network, once claimed in this process */
  private readonly claimed = new Map<string, string>();

  constructor(
    private readonly cluster: Cluster,
    /** this host's own store: the block is remembered there too, for releases after a restart */
    private readonly local: Store,
  ) {}

  private get me(): string {
    return this.cluster.hostId;
  }

  /** The block this host holds (or last held) on a network, if any. */
  known(netId: string): string | undefined {
    return this.claimed.get(netId) ?? this.local.get<string>(`rblock/${netId}`);
  }

  /** Every host's block of a network, as the store has them now. */
  records(netId: string, r: StoreReader = this.cluster.store): BlockRecord[] {
    return r.range<BlockRecord>(blockKeys.heldAll(netId)).map(([, b]) => b);
  }

  /**
   * This host's block of `net`: taken in the cluster store if it holds none (or
   * its record went with an old lease); `again` writes it under the current
   * lease whatever the mirror shows (a new lease). ERR_POOL_EXHAUSTED when every
   * block is held by another host.
   */
  async claim(net: NetworkRecord, again = false): Promise<string> {
    const have = this.claimed.get(net.id);
    const rec = this.cluster.store.get<BlockRecord>(blockKeys.held(net.id, this.me));
    if (!again && have !== undefined && rec?.block === have && rec.advertise === this.cluster.advertise) return have;
    const block = await this.cluster.store.txn((tx) => this.take(tx, net));
    this.claimed.set(net.id, block);
    if (this.local.get(`rblock/${net.id}`) !== block) await this.local.txn((tx) => tx.put(`rblock/${net.id}`, block));
    return block;
  }

  private take(tx: StoreTxn, net: NetworkRecord): string {
    if (!tx.get(`net/${net.id}`)) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${net.name} was removed from the cluster`, { network: net.name });
    const held = tx.range<BlockRecord>(blockKeys.heldAll(net.id));
    const own = held.find(([, b]) => b.host === this.me)?.[1];
    let block = own?.block;
    if (block === undefined) {
      const remembered = tx.range<string>(blockKeys.rememberedAll(net.id));
      const mine = remembered.find(([k]) => k === blockKeys.remembered(net.id, this.me))?.[1];
      const others = new Set(remembered.filter(([k]) => k !== blockKeys.remembered(net.id, this.me)).map(([, b]) => b));
      block = chooseBlock(blocksOf(subnetOf(net), blockSizeOf(net)), new Set(held.map(([, b]) => b.block)), mine, others);
      if (block === undefined) {
        throw new CnmError('ERR_POOL_EXHAUSTED', `routed network ${net.name}: every /${blockSizeOf(net)} block of ${subnetOf(net)} is held by another host; use a larger subnet or a smaller ${BLOCK_OPTION}`, {
          network: net.name,
          subnet: subnetOf(net),
        });
      }
      tx.put(blockKeys.remembered(net.id, this.me), block);
    }
    // (again) under this host's current lease and address
    tx.put(blockKeys.held(net.id, this.me), { host: this.me, advertise: this.cluster.advertise, block } satisfies BlockRecord, { ephemeral: true });
    return block;
  }

  /**
   * Give the block back (this host's last endpoint on the network left); it
   * stays remembered. `also` writes more in the same transaction.
   */
  async release(netId: string, also?: (tx: StoreTxn) => void): Promise<void> {
    this.claimed.delete(netId);
    await this.cluster.store.txn((tx) => {
      also?.(tx);
      const rec = tx.get<BlockRecord>(blockKeys.held(netId, this.me));
      if (rec?.host === this.me) tx.del(blockKeys.held(netId, this.me));
    });
  }

  /** Forget a removed network's blocks, inside the removal's transaction. */
  static purge(tx: StoreTxn, netId: string): void {
    for (const [k] of tx.range(blockKeys.heldAll(netId))) tx.del(k);
    for (const [k] of tx.range(blockKeys.rememberedAll(netId))) tx.del(k);
  }
}
