/**
 * One address pool: a subnet, the range dynamic allocation may use, the addresses
 * that are never handed out (network, IPv4 broadcast, gateway, auxiliary), and a
 * serial cursor: allocation continues after the last address handed out and
 * wraps at the end of the range, so a released address is not reused at once.
 * Offsets are bigints so that IPv4 and IPv6 (up to /64 and beyond) share the code.
 */
import { CnmError, invalid } from '../errors.js';
import {
  type Cidr,
  type Ip,
  bits,
  contains,
  formatCidr,
  formatIp,
  networkOf,
  parseCidr,
  parseIp,
  parseSubnet,
  sizeOf,
} from '../net/ip.js';
import { type OffsetSet, offsetSet } from './offset-set.js';

/** What the user asked for, as strings (Docker's IPAM config shape). */
export interface PoolConfig {
  subnet: string;
  gateway?: string;
  ipRange?: string;
  auxAddresses?: Record<string, string>;
  /** the pool id a remote IPAM driver gave (remote IPAM networks only) */
  poolId?: string;
  /** the gateway was requested from the remote IPAM driver, so it is released with the pool */
  gatewayRequested?: boolean;
  /**
   * the user gave the subnet but not the gateway: inspect leaves Gateway out, as
   * Docker shows the configuration the user gave (the gateway is still in use)
   */
  gatewayAuto?: boolean;
  /** the subnet was chosen from the default address pools, not given by the user */
  auto?: boolean;
}

/** IPv4 subnets larger than a /8 are refused: nobody needs them on one bridge. */
const MAX_V4_HOST_BITS = 24;

export class Pool {
  readonly subnet: Cidr;
  readonly gateway: Ip;
  /** first and one-past-last offset dynamic allocation may use */
  readonly rangeStart: bigint;
  readonly rangeEnd: bigint;
  readonly reserved = new Set<bigint>();
  readonly held: OffsetSet;
  /** offset of the last address handed out, -1n before the first */
  cursor = -1n;
  readonly config: Required<Pick<PoolConfig, 'subnet' | 'gateway'>> & PoolConfig;
  private readonly base: bigint;
  private readonly size: bigint;

  constructor(cfg: PoolConfig) {
    const subnet = parseSubnet(cfg.subnet);
    const hostBits = bits(subnet.family) - subnet.prefix;
    if (hostBits < 2) {
      throw invalid(`subnet ${cfg.subnet} is too small: a network needs at least a /${bits(subnet.family) - 2}`, cfg.subnet);
    }
    if (subnet.family === 4 && hostBits > MAX_V4_HOST_BITS) {
      throw invalid(`subnet ${cfg.subnet} is too large: IPv4 subnets up to a /8 are supported`, cfg.subnet);
    }
    this.subnet = subnet;
    this.size = sizeOf(subnet);
    this.base = networkOf(subnet);
    this.held = offsetSet(this.size);

    // the network address (IPv6: the subnet-router anycast) and the IPv4 broadcast
    this.reserve(0n);
    if (subnet.family === 4) this.reserve(this.size - 1n);

    let gw: Ip;
    if (cfg.gateway !== undefined && cfg.gateway !== '') {
      gw = parseIp(cfg.gateway, 'gateway');
      if (!contains(subnet, gw)) {
        throw invalid(`gateway ${cfg.gateway} is not inside subnet ${formatCidr(subnet)}`, cfg.gateway);
      }
      if (this.reserved.has(gw.value - this.base)) {
        throw invalid(`gateway ${cfg.gateway} is the network or broadcast address of ${formatCidr(subnet)}`, cfg.gateway);
      }
    } else {
      gw = { family: subnet.family, value: this.base + 1n };
    }
    this.gateway = gw;
    this.reserve(gw.value - this.base);

    let start = 0n;
    let end = this.size;
    if (cfg.ipRange !== undefined && cfg.ipRange !== '') {
      const r = parseCidr(cfg.ipRange, 'ip-range');
      if (networkOf(r) !== r.addr) {
        throw invalid(`invalid ip-range ${cfg.ipRange}: it should be ${formatCidr(r)} (host bits are set)`, cfg.ipRange);
      }
      if (r.family !== subnet.family || r.prefix < subnet.prefix || !contains(subnet, { family: r.family, value: r.addr })) {
        throw invalid(`ip-range ${cfg.ipRange} is not inside subnet ${formatCidr(subnet)}`, cfg.ipRange);
      }
      start = r.addr - this.base;
      end = start + sizeOf(r);
    }
    this.rangeStart = start;
    this.rangeEnd = end;

    for (const [name, addr] of Object.entries(cfg.auxAddresses ?? {})) {
      const ip = parseIp(addr, `auxiliary address ${name}`);
      if (!contains(subnet, ip)) {
        throw invalid(`auxiliary address ${name}=${addr} is not inside subnet ${formatCidr(subnet)}`, addr);
      }
      this.reserve(ip.value - this.base);
    }
    this.config = { ...cfg, subnet: formatCidr(subnet), gateway: formatIp(gw) };
  }

  private reserve(off: bigint): void {
    this.reserved.add(off);
    this.held.set(off);
  }

  get family(): 4 | 6 {
    return this.subnet.family;
  }

  /** Whether an address lies inside the subnet. */
  contains(ip: Ip): boolean {
    return contains(this.subnet, ip);
  }

  /** Offset of an address inside the subnet; throws if it is outside. */
  offsetOf(ip: Ip): bigint {
    if (!contains(this.subnet, ip)) {
      throw invalid(`address ${formatIp(ip)} is not inside subnet ${formatCidr(this.subnet)}`, formatIp(ip));
    }
    return ip.value - this.base;
  }

  addressAt(off: bigint): Ip {
    return { family: this.subnet.family, value: this.base + off };
  }

  /**
   * Next free offset after the cursor, wrapping once; -1n when the range is full.
   * `taken` lets the caller veto offsets that another process holds but this
   * pool has not seen yet.
   */
  nextFree(taken: (off: bigint) => boolean = () => false): bigint {
    const next = this.cursor + 1n;
    const from = next >= this.rangeEnd || next < this.rangeStart ? this.rangeStart : next;
    for (const [lo, hi] of [
      [from, this.rangeEnd],
      [this.rangeStart, from],
    ] as const) {
      let i = lo;
      while (i < hi) {
        const off = this.held.nextClear(i, hi);
        if (off < 0n) break;
        if (!taken(off)) return off;
        this.held.set(off);
        i = off + 1n;
      }
    }
    return -1n;
  }

  /**
   * Start the cursor at a point of the range chosen by `seed`, so that
   * allocators with different seeds (hosts of a cluster) walk apart and
   * rarely race for one address.
   */
  spreadCursor(seed: number): void {
    const span = this.rangeEnd - this.rangeStart;
    this.cursor = span > 0n ? this.rangeStart + (BigInt(seed) % span) - 1n : -1n;
  }

  /** Mark a dynamically or statically chosen offset as allocated. */
  take(off: bigint, moveCursor: boolean): void {
    this.held.set(off);
    if (moveCursor) this.cursor = off;
  }

  /** Check that a static address may be handed out; returns its offset. */
  checkStatic(ip: Ip): bigint {
    const off = this.offsetOf(ip);
    if (off === this.gateway.value - this.base) {
      throw new CnmError('ERR_ADDRESS_IN_USE', `address ${formatIp(ip)} is the gateway of ${formatCidr(this.subnet)}`, {
        value: formatIp(ip),
      });
    }
    if (this.reserved.has(off)) {
      throw invalid(`address ${formatIp(ip)} is reserved in ${formatCidr(this.subnet)} (network, broadcast or auxiliary address)`, formatIp(ip));
    }
    if (this.held.has(off)) {
      throw new CnmError('ERR_ADDRESS_IN_USE', `address ${formatIp(ip)} is already in use on ${formatCidr(this.subnet)}`, {
        value: formatIp(ip),
      });
    }
    return off;
  }

  /** Whether an offset is held (allocated or reserved). */
  isHeld(off: bigint): boolean {
    return this.held.has(off);
  }

  release(off: bigint): void {
    if (!this.reserved.has(off)) this.held.clear(off);
  }
}
