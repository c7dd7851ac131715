/**
 * IPv4/IPv6 address and CIDR arithmetic on bigint, so both families share code.
 * Parsing is strict: anything odd is rejected rather than guessed at.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { invalid } from '../errors.js';

export type Family = 4 | 6;

/** A parsed address. */
export interface Ip {
  family: Family;
  value: bigint;
}

/** A parsed prefix: the address as given plus its length. */
export interface Cidr {
  family: Family;
  /** the address part exactly as given (host bits may be set) */
  addr: bigint;
  prefix: number;
}

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

export function parseIp(s: string, what = 'IP address'): Ip {
  if (typeof s !== 'string') throw invalid(`${what} must be a string`, s);
  if (isIPv4(s)) {
    const parts = s.split('.').map(Number);
    // node accepts only canonical dotted quads, so no octal/leading zero surprises
    const v = parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
    return { family: 4, value: v };
  }
  if (isIPv6(s) && !s.includes('%')) {
    return { family: 6, value: parseV6(s) };
  }
  throw invalid(`invalid ${what} "${s}": expected an address like 10.1.0.5 or fd00::5`, s);
}

function parseV6(s: string): bigint {
  let head = s;
  let tailV4: bigint | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = s.slice(lastColon + 1).split('.').map(Number);
    tailV4 = v4.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n);
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const [l, r] = head.includes('::') ? head.split('::') : [head, null];
  const left = l ? l.split(':') : [];
  const right = r === null ? [] : r ? r.split(':') : [];
  const fill = 8 - left.length - right.length;
  const groups = [...left, ...Array(r === null ? 0 : fill).fill('0'), ...right];
  let v = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  if (tailV4 !== null) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

export function formatIp(ip: Ip): string {
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value);
}

function formatV4(v: bigint): string {
  const n = Number(v);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function formatV6(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run of two or more zero groups
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function parseCidr(s: string, what = 'subnet'): Cidr {
  if (typeof s !== 'string' || !s.includes('/')) {
    throw invalid(`invalid ${what} "${s}": expected CIDR notation like 10.1.0.0/24`, s);
  }
  const slash = s.indexOf('/');
  const addrPart = s.slice(0, slash);
  const lenPart = s.slice(slash + 1);
  let ip: Ip;
  try {
    ip = parseIp(addrPart, what);
  } catch {
    throw invalid(`invalid ${what} "${s}": expected CIDR notation like 10.1.0.0/24`, s);
  }
  if (!/^\d{1,3}$/.test(lenPart) || Number(lenPart) > bits(ip.family)) {
    throw invalid(`invalid ${what} "${s}": prefix length must be 0-${bits(ip.family)}`, s);
  }
  return { family: ip.family, addr: ip.value, prefix: Number(lenPart) };
}

export function mask(family: Family, prefix: number): bigint {
  const b = BigInt(bits(family));
  const all = (1n << b) - 1n;
  return prefix === 0 ? 0n : (all << (b - BigInt(prefix))) & all;
}

export function networkOf(c: Cidr): bigint {
  return c.addr & mask(c.family, c.prefix);
}

/** Number of addresses in the prefix. */
export function sizeOf(c: Cidr): bigint {
  return 1n << BigInt(bits(c.family) - c.prefix);
}

export function contains(c: Cidr, ip: Ip): boolean {
  return c.family === ip.family && (ip.value & mask(c.family, c.prefix)) === networkOf(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  const m = mask(a.family, p);
  return (a.addr & m) === (b.addr & m);
}

/** Canonical "net/len" string of a prefix (host bits cleared). */
export function formatCidr(c: Cidr): string {
  return `${formatIp({ family: c.family, value: networkOf(c) })}/${c.prefix}`;
}

/** "addr/len" keeping the host part, as used for interface addresses. */
export function formatIfAddr(family: Family, value: bigint, prefix: number): string {
  return `${formatIp({ family, value })}/${prefix}`;
}

/** Parse a subnet and insist that no host bits are set, as Docker does. */
export function parseSubnet(s: string): Cidr {
  const c = parseCidr(s, 'subnet');
  if (networkOf(c) !== c.addr) {
    throw invalid(`invalid subnet ${s}: it should be ${formatCidr(c)} (host bits are set)`, s);
  }
  return c;
}
