/**
 * The default IPAM's address allocator over the store. The store is the
 * authority: one record per allocated address (an allocation writes O(1) bytes)
 * plus a serial cursor per pool, written inside the caller's transaction. The
 * in-memory bitmaps are a cache for fast search; when another process has
 * allocated or released behind our back, the store check corrects them.
 */
import { CnmError, invalid } from '../errors.js';
import { type Family, contains, formatIp, parseIp, parseSubnet } from '../net/ip.js';
import type { Store, StoreTxn } from '../store/store.js';
import type { AllocationRecord, NetworkRecord } from '../types.js';
import { Pool } from './pool.js';

const allocPrefix = (netId: string, subnet: string) => `ipam/${netId}/${subnet}/a/`;
const cursorKey = (netId: string, subnet: string) => `ipam/${netId}/${subnet}/cursor`;
/** bumped on every release, so other processes know their bitmaps are stale */
const genKey = (netId: string) => `ipam/${netId}/gen`;

export class AddressAllocator {
  private readonly pools = new Map<string, Pool[]>();
  /** the release generation each network's cache was loaded at */
  private readonly loadedGen = new Map<string, number>();

  /**
   * @param owner a cluster host's id: it keeps a serial cursor of its own,
   *   started at a point of the range of its own, so that hosts allocating on
   *   one network at once rarely conflict (one shared cursor makes every
   *   allocation of the cluster a conflict with every other)
   */
  constructor(
    private readonly store: Store,
    private readonly owner?: string,
  ) {}

  private cursorOf(netId: string, subnet: string): string {
    return this.owner === undefined ? cursorKey(netId, subnet) : `${cursorKey(netId, subnet)}/${this.owner}`;
  }

  /**
   * Build (and cache) the pools of a network, loading its allocations. The cache
   * is a hint: every address is checked against the store inside the
   * transaction before it is handed out, so the cache is read from the store
   * without entering the transaction's read set (on the cluster store, a range
   * read would make every concurrent allocation on the network a conflict). It
   * is rebuilt when the release generation moved: an address another process
   * released must not look taken here for long.
   */
  poolsOf(net: NetworkRecord, _tx?: StoreTxn): Pool[] {
    let pools = this.pools.get(net.id);
    const gen = this.store.get<number>(genKey(net.id)) ?? 0;
    if (pools && gen !== this.loadedGen.get(net.id)) pools = undefined;
    if (!pools) {
      pools = net.ipam.config.map((c) => this.loadPool(net.id, new Pool(c)));
      this.pools.set(net.id, pools);
      this.loadedGen.set(net.id, gen);
    }
    return pools;
  }

  private loadPool(netId: string, pool: Pool): Pool {
    const prefix = allocPrefix(netId, pool.config.subnet);
    for (const [key] of this.store.range<AllocationRecord>(prefix)) {
      const off = pool.offsetOf(parseIp(key.slice(prefix.length)));
      pool.take(off, false);
    }
    return pool;
  }

  private reload(tx: StoreTxn, net: NetworkRecord, index: number): Pool {
    const pools = this.poolsOf(net, tx);
    const fresh = this.loadPool(net.id, new Pool(net.ipam.config[index]!));
    pools[index] = fresh;
    return fresh;
  }

  /** Take an offset in the cache for this transaction: undone with it. */
  private take(tx: StoreTxn, pool: Pool, off: bigint, moveCursor: boolean): void {
    const wasTaken = pool.isHeld(off);
    const cursor = pool.cursor;
    pool.take(off, moveCursor);
    tx.onAbort(() => {
      if (!wasTaken) pool.release(off);
      pool.cursor = cursor;
    });
  }

  forget(netId: string): void {
    this.pools.delete(netId);
    this.loadedGen.delete(netId);
  }

  /**
   * Allocate one address of `family` for an endpoint inside the caller's store
   * transaction. Returns "addr/prefix". A static address must be inside a subnet.
   */
  allocate(tx: StoreTxn, net: NetworkRecord, family: Family, endpointId: string, staticIp?: string): string {
    const pools = this.poolsOf(net, tx);
    let index: number;
    let off: bigint;
    if (staticIp !== undefined) {
      const ip = parseIp(staticIp, 'IP address');
      if (ip.family !== family) throw invalid(`address ${staticIp} is not an IPv${family} address`, staticIp);
      index = pools.findIndex((p) => p.contains(ip));
      if (index < 0) {
        const subnets = pools.filter((p) => p.family === family).map((p) => p.config.subnet);
        throw invalid(`address ${staticIp} is not inside the network's subnets (${subnets.join(', ') || 'none'})`, staticIp);
      }
      const pool = pools[index]!;
      const key = allocPrefix(net.id, pool.config.subnet) + formatIp(ip);
      // the store decides; a cache entry it does not back is dropped
      if (tx.get(key) === undefined) pool.release(pool.offsetOf(ip));
      off = pool.checkStatic(ip);
      if (tx.get(key) !== undefined) {
        pool.take(off, false);
        throw new CnmError('ERR_ADDRESS_IN_USE', `address ${staticIp} is already in use on ${net.name}`, { value: staticIp, network: net.name });
      }
      this.take(tx, pool, off, false);
    } else {
      index = pools.findIndex((p) => p.family === family);
      if (index < 0) throw invalid(`network ${net.name} has no IPv${family} subnet`, net.name);
      ({ index, off } = this.allocateDynamic(tx, net, family));
    }
    const pool = pools[index]!;
    const ip = pool.addressAt(off);
    const rec: AllocationRecord = this.owner === undefined ? { endpointId } : { endpointId, host: this.owner, at: Date.now() };
    tx.put(allocPrefix(net.id, pool.config.subnet) + formatIp(ip), rec);
    return `${formatIp(ip)}/${pool.subnet.prefix}`;
  }

  private allocateDynamic(tx: StoreTxn, net: NetworkRecord, family: Family): { index: number; off: bigint } {
    const pools = this.poolsOf(net, tx);
    for (let attempt = 0; attempt < 2; attempt++) {
      for (let i = 0; i < pools.length; i++) {
        let pool = pools[i]!;
        if (pool.family !== family) continue;
        if (attempt === 1) pool = this.reload(tx, net, i);
        const prefix = allocPrefix(net.id, pool.config.subnet);
        // the cursor is a string: IPv6 offsets do not fit a float
        const cur = tx.get<string | number>(this.cursorOf(net.id, pool.config.subnet));
        if (cur !== undefined) pool.cursor = BigInt(cur);
        else if (this.owner !== undefined) pool.spreadCursor(Number.parseInt(this.owner.slice(0, 8), 16) || 0);
        else pool.cursor = -1n;
        const off = pool.nextFree((o) => tx.get(prefix + formatIp(pool.addressAt(o))) !== undefined);
        if (off >= 0n) {
          this.take(tx, pool, off, true);
          tx.put(this.cursorOf(net.id, pool.config.subnet), off.toString());
          return { index: i, off };
        }
      }
    }
    const subnets = pools.filter((p) => p.family === family).map((p) => p.config.subnet);
    throw new CnmError('ERR_POOL_EXHAUSTED', `no available IPv${family} addresses on network ${net.name} (${subnets.join(', ')}): disconnect something or use a larger subnet or ip-range`, {
      network: net.name,
      subnet: subnets.join(','),
    });
  }

  /** Release an address ("addr/prefix" or "addr") inside the caller's transaction. */
  release(tx: StoreTxn, net: NetworkRecord, address: string): void {
    if (!address) return;
    const ip = parseIp(address.split('/')[0]!);
    for (const pool of this.poolsOf(net, tx)) {
      if (!pool.contains(ip)) continue;
      const key = allocPrefix(net.id, pool.config.subnet) + formatIp(ip);
      if (tx.get(key) === undefined) {
        pool.release(pool.offsetOf(ip));
        return;
      }
      tx.del(key);
      pool.release(pool.offsetOf(ip));
      const gen = (tx.get<number>(genKey(net.id)) ?? 0) + 1;
      tx.put(genKey(net.id), gen);
      this.loadedGen.set(net.id, gen);
      return;
    }
  }

  /** Remove every IPAM record of a network (on network rm). */
  purge(tx: StoreTxn, net: NetworkRecord): void {
    for (const [key] of tx.range(`ipam/${net.id}/`)) tx.del(key);
    this.forget(net.id);
  }

  /** Every network id that holds IPAM records (reconcile looks for those of removed networks). */
  networksWithRecords(): Set<string> {
    const out = new Set<string>();
    for (const [key] of this.store.range('ipam/')) out.add(key.split('/')[1]!);
    return out;
  }

  /** All allocations of a network: address -> endpoint id. */
  allocations(net: NetworkRecord): Map<string, string> {
    return new Map([...this.allocationRecords(net)].map(([ip, rec]) => [ip, rec.endpointId]));
  }

  /** The record of one address of a network ("addr" or "addr/prefix"), inside a transaction. */
  recordOf(tx: StoreTxn, net: NetworkRecord, address: string): AllocationRecord | undefined {
    const ip = parseIp(address.split('/')[0]!);
    const c = net.ipam.config.find((p) => contains(parseSubnet(p.subnet), ip));
    return c === undefined ? undefined : tx.get<AllocationRecord>(allocPrefix(net.id, c.subnet) + formatIp(ip));
  }

  /** All allocations of a network with their records: address -> record. */
  allocationRecords(net: NetworkRecord): Map<string, AllocationRecord> {
    const out = new Map<string, AllocationRecord>();
    for (const c of net.ipam.config) {
      const prefix = allocPrefix(net.id, c.subnet);
      for (const [key, rec] of this.store.range<AllocationRecord>(prefix)) out.set(key.slice(prefix.length), rec);
    }
    return out;
  }

}
