/**
 * The pools of a new network for the built-in IPAMs (local and cluster): the
 * user's subnets as given, then an automatic IPv4 one from `v4Pools` (unless
 * IPv4 is off or given) and an automatic IPv6 /64 of this host's ULA prefix
 * (when IPv6 is on and none is given), clear of `exclude` and of each other.
 */
import { type Cidr, parseSubnet } from '../net/ip.js';
import { type DefaultPool, chooseSubnet, ulaPrefix } from './default-pools.js';
import type { PoolsRequest } from './ipam-api.js';
import { Pool, type PoolConfig } from './pool.js';

const isV6 = (c: PoolConfig) => c.subnet.includes(':');

export async function poolsFor({ network, requested, exclude }: PoolsRequest, v4Pools: readonly DefaultPool[]): Promise<PoolConfig[]> {
  const out: PoolConfig[] = [];
  for (const p of requested) {
    if (!p.subnet) continue;
    // Pool checks the gateway, range and auxiliary addresses against the subnet
    const cfg: PoolConfig = new Pool({ subnet: p.subnet, gateway: p.gateway, ipRange: p.ipRange, auxAddresses: p.auxAddresses }).config;
    if (!p.gateway) cfg.gatewayAuto = true;
    out.push(cfg);
  }
  const needV4 = network.enableIPv4 !== false && !out.some((c) => !isV6(c));
  const needV6 = network.enableIPv6 && !out.some(isV6);
  if (!needV4 && !needV6) return out;
  const avoid: Cidr[] = [...(await exclude()), ...out.map((c) => parseSubnet(c.subnet))];
  if (needV4) {
    const subnet = chooseSubnet(v4Pools, avoid);
    out.push({ ...new Pool({ subnet }).config, auto: true });
    avoid.push(parseSubnet(subnet));
  }
  if (needV6) out.push({ ...new Pool({ subnet: chooseSubnet([{ base: ulaPrefix(), size: 64 }], avoid, 6) }).config, auto: true });
  return out;
}
