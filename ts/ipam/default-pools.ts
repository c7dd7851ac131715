/**
 * Automatic subnet choice from default address pools, as Docker's
 * `default-address-pools`: each entry is a base prefix cut into subnets of `size`.
 * A candidate is skipped when it overlaps an existing network, a route of the host
 * netns, or a nameserver of the host's resolv.conf (Docker's CheckRouteOverlaps /
 * CheckNameserverOverlaps).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CnmError, invalid } from '../errors.js';
import { type Cidr, bits, formatCidr, mask, networkOf, overlaps, parseIp, parseSubnet } from '../net/ip.js';

/** One entry of `default-address-pools`. */
export interface DefaultPool {
  base: string;
  size: number;
}

/** Docker's local defaults, plus 10.x /24s so that far more than 31 networks fit. */
export const DEFAULT_POOLS: readonly DefaultPool[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/15', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
  { base: '10.16.0.0/12', size: 24 },
];

export function validatePools(pools: readonly DefaultPool[]): void {
  for (const p of pools) {
    const c = parseSubnet(p.base);
    if (!Number.isInteger(p.size) || p.size < c.prefix || p.size > bits(c.family) - 2) {
      throw invalid(`default address pool ${p.base}: size ${p.size} must be between ${c.prefix} and ${bits(c.family) - 2}`, p.size);
    }
  }
}

/** Nameservers of resolv.conf as host prefixes (/32 or /128). */
export function nameserverPrefixes(path = '/etc/resolv.conf'): Cidr[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const out: Cidr[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    try {
      const ip = parseIp(m[1]!);
      out.push({ family: ip.family, addr: ip.value, prefix: bits(ip.family) });
    } catch {
      // a nameserver we cannot parse cannot overlap anything we choose
    }
  }
  return out;
}

/**
 * First subnet of the pools that overlaps none of `avoid`. Throws
 * ERR_POOL_EXHAUSTED naming the pools when every candidate is taken.
 */
export function chooseSubnet(pools: readonly DefaultPool[], avoid: readonly Cidr[], family: 4 | 6 = 4): string {
  const tried: string[] = [];
  for (const p of pools) {
    const base = parseSubnet(p.base);
    if (base.family !== family) continue;
    tried.push(`${p.base} (size /${p.size})`);
    const step = 1n << BigInt(bits(family) - p.size);
    const end = networkOf(base) + (1n << BigInt(bits(family) - base.prefix));
    let addr = networkOf(base);
    while (addr < end) {
      const cand: Cidr = { family, addr, prefix: p.size };
      const hit = avoid.find((a) => overlaps(a, cand));
      if (!hit) return formatCidr(cand);
      // skip past the whole conflicting prefix when it is larger than one candidate
      if (hit.prefix < p.size) {
        const hitEnd = (hit.addr & mask(family, hit.prefix)) + (1n << BigInt(bits(family) - hit.prefix));
        addr = hitEnd > addr + step ? hitEnd : addr + step;
      } else {
        addr += step;
      }
    }
  }
  throw new CnmError(
    'ERR_POOL_EXHAUSTED',
    `all predefined address pools have been fully subnetted: ${tried.join(', ') || 'no IPv' + family + ' pool configured'}; remove unused networks or configure more default address pools`,
  );
}

/**
 * A ULA /48 (RFC 4193: fd00::/8 plus a 40-bit global ID) derived from a stable
 * host id — /etc/machine-id, else the hostname — as Docker does, so that one host
 * always picks its automatic IPv6 /64s from the same /48.
 */
export function ulaPrefix(): string {
  let id: string;
  try {
    id = readFileSync('/etc/machine-id', 'utf8').trim();
  } catch {
    id = '';
  }
  if (id === '') id = hostname();
  // crypto is loaded here, not with the module: the options check every command makes imports this file
  const h = process.getBuiltinModule('node:crypto').createHash('sha256').update(id).digest();
  const g = (i: number) => ((h[i]! << 8) | h[i + 1]!).toString(16);
  return `fd${h[0]!.toString(16).padStart(2, '0')}:${g(1)}:${g(3)}::/48`;
}
