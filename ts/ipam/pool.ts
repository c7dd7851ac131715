/**
 * One address pool: a subnet, the range dynamic allocation may use, the addresses
 * that are never handed out (network, broadcast, gateway, auxiliary), and a
 * serial cursor: allocation continues after the last address handed out and
 * wraps at the end of the range, so a released address is not reused at once.
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
import { Bitmap } from './bitmap.js';

/** What the user asked for, as strings (Docker's IPAM config shape). */
export interface PoolConfig {
  subnet: string;
  gateway?: string;
  ipRange?: string;
  auxAddresses?: Record<string, string>;
}

/** Largest subnet whose bitmap we keep in memory (a /8: 16 M addresses, 2 MiB). */
const MAX_HOST_BITS = 24;

export class Pool {
  readonly subnet: Cidr;
  readonly gateway: Ip;
  /** first and one-past-last offset dynamic allocation may use */
  readonly rangeStart: number;
  readonly rangeEnd: number;
  readonly reserved = new Set<number>();
  readonly bitmap: Bitmap;
  /** offset of the last address handed out, -1 before the first */
  cursor = -1;
  readonly config: Required<Pick<PoolConfig, 'subnet' | 'gateway'>> & PoolConfig;

  constructor(cfg: PoolConfig) {
    const subnet = parseSubnet(cfg.subnet);
    const hostBits = bits(subnet.family) - subnet.prefix;
    if (subnet.family === 4 && hostBits < 2) {
      throw invalid(`subnet ${cfg.subnet} is too small: an IPv4 network needs at least a /30`, cfg.subnet);
    }
    if (subnet.family === 6 && hostBits < 2) {
      throw invalid(`subnet ${cfg.subnet} is too small: an IPv6 network needs at least a /126`, cfg.subnet);
    }
    if (hostBits > MAX_HOST_BITS) {
      throw invalid(
        `subnet ${cfg.subnet} is too large: at most ${MAX_HOST_BITS} host bits (a /${bits(subnet.family) - MAX_HOST_BITS}) are supported`,
        cfg.subnet,
      );
    }
    this.subnet = subnet;
    const size = Number(sizeOf(subnet));
    this.bitmap = new Bitmap(size);
    const net = networkOf(subnet);

    // network address, and for IPv4 the broadcast address, are never usable
    this.reserve(0);
    if (subnet.family === 4) this.reserve(size - 1);

    let gw: Ip;
    if (cfg.gateway !== undefined && cfg.gateway !== '') {
      gw = parseIp(cfg.gateway, 'gateway');
      if (!contains(subnet, gw)) {
        throw invalid(`gateway ${cfg.gateway} is not inside subnet ${formatCidr(subnet)}`, cfg.gateway);
      }
      const off = Number(gw.value - net);
      if (off === 0 || (subnet.family === 4 && off === size - 1)) {
        throw invalid(`gateway ${cfg.gateway} is the network or broadcast address of ${formatCidr(subnet)}`, cfg.gateway);
      }
    } else {
      gw = { family: subnet.family, value: net + 1n };
    }
    this.gateway = gw;
    this.reserve(Number(gw.value - net));

    let start = 0;
    let end = size;
    if (cfg.ipRange !== undefined && cfg.ipRange !== '') {
      const r = parseCidr(cfg.ipRange, 'ip-range');
      if (networkOf(r) !== r.addr) {
        throw invalid(`invalid ip-range ${cfg.ipRange}: it should be ${formatCidr(r)} (host bits are set)`, cfg.ipRange);
      }
      if (r.family !== subnet.family || r.prefix < subnet.prefix || !contains(subnet, { family: r.family, value: r.addr })) {
        throw invalid(`ip-range ${cfg.ipRange} is not inside subnet ${formatCidr(subnet)}`, cfg.ipRange);
      }
      start = Number(r.addr - net);
      end = start + Number(sizeOf(r));
    }
    this.rangeStart = start;
    this.rangeEnd = end;

    for (const [name, addr] of Object.entries(cfg.auxAddresses ?? {})) {
      const ip = parseIp(addr, `auxiliary address ${name}`);
      if (!contains(subnet, ip)) {
        throw invalid(`auxiliary address ${name}=${addr} is not inside subnet ${formatCidr(subnet)}`, addr);
      }
      this.reserve(Number(ip.value - net));
    }
    this.config = { ...cfg, subnet: formatCidr(subnet), gateway: formatIp(gw) };
  }

  private reserve(off: number): void {
    this.reserved.add(off);
    this.bitmap.set(off);
  }

  get family(): 4 | 6 {
    return this.subnet.family;
  }

  /** Offset of an address inside the subnet; throws if it is outside. */
  offsetOf(ip: Ip): number {
    if (!contains(this.subnet, ip)) {
      throw invalid(`address ${formatIp(ip)} is not inside subnet ${formatCidr(this.subnet)}`, formatIp(ip));
    }
    return Number(ip.value - networkOf(this.subnet));
  }

  addressAt(off: number): Ip {
    return { family: this.subnet.family, value: networkOf(this.subnet) + BigInt(off) };
  }

  /**
   * Next free offset after the cursor, wrapping once. `taken` lets the caller veto
   * offsets that another process holds but this bitmap has not seen yet.
   */
  nextFree(taken: (off: number) => boolean = () => false): number {
    const from = this.cursor + 1 >= this.rangeEnd || this.cursor + 1 < this.rangeStart ? this.rangeStart : this.cursor + 1;
    const spans: Array<[number, number]> = [
      [from, this.rangeEnd],
      [this.rangeStart, from],
    ];
    for (const [lo, hi] of spans) {
      let i = lo;
      while (i < hi) {
        const off = this.bitmap.nextClear(i, hi);
        if (off < 0) break;
        if (!taken(off)) return off;
        this.bitmap.set(off);
        i = off + 1;
      }
    }
    return -1;
  }

  /** Mark a dynamically or statically chosen offset as allocated. */
  take(off: number, moveCursor: boolean): void {
    this.bitmap.set(off);
    if (moveCursor) this.cursor = off;
  }

  /** Check that a static address can be handed out; returns its offset. */
  checkStatic(ip: Ip): number {
    const off = this.offsetOf(ip);
    if (off === Number(this.gateway.value - networkOf(this.subnet))) {
      throw new CnmError('ERR_ADDRESS_IN_USE', `address ${formatIp(ip)} is the gateway of ${formatCidr(this.subnet)}`, {
        value: formatIp(ip),
      });
    }
    if (this.reserved.has(off)) {
      throw invalid(`address ${formatIp(ip)} is reserved in ${formatCidr(this.subnet)} (network, broadcast or auxiliary address)`, formatIp(ip));
    }
    if (this.bitmap.has(off)) {
      throw new CnmError('ERR_ADDRESS_IN_USE', `address ${formatIp(ip)} is already in use on ${formatCidr(this.subnet)}`, {
        value: formatIp(ip),
      });
    }
    return off;
  }

  release(off: number): void {
    if (!this.reserved.has(off)) this.bitmap.clear(off);
  }
}
