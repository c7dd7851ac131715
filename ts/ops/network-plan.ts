/**
 * Network create, first step: the request checked and turned into a record,
 * without touching the store or the kernel. Pools are only checked here; the
 * network's IPAM hands them out when the network is reserved.
 */
import { CnmError, invalid } from '../errors.js';
import type { Driver } from '../drivers/driver.js';
import type { PoolRequest } from '../ipam/ipam-api.js';
import { Pool } from '../ipam/pool.js';
import { overlaps, parseSubnet } from '../net/ip.js';
import type { NetworkCreateOptions } from '../options.js';
import { currentOwner } from '../owner.js';
import type { NetworkRecord } from '../types.js';
import { newId, parseMtu } from '../validate.js';
import type { OpContext } from './context.js';

/** The longest network name taken, in UTF-8 bytes (Docker sets none; the store's keys do). */
export const MAX_NETWORK_NAME = 1024;

/** Docker's generic MTU option, which `mtu` stands for. */
export const MTU_OPTION = 'com.docker.network.driver.mtu';

export interface NetworkPlan {
  rec: NetworkRecord;
  driver: Driver;
  /** the pools the user gave (subnet set), to be handed to the IPAM */
  requested: PoolRequest[];
}

export async function planNetwork(ctx: OpContext, req: NetworkCreateOptions, predefined = false): Promise<NetworkPlan> {
  if (typeof req !== 'object' || req === null) throw invalid('network create needs options', req);
  // Docker takes any network name that is not empty (a NUL, which no tool can type, is refused)
  if (typeof req.name !== 'string' || req.name === '') throw invalid('network name must not be empty', req.name);
  if (req.name.includes('\0')) throw invalid('network name must not contain a NUL character', req.name);
  // a lone UTF-16 surrogate (JSON's "\ud800") has no UTF-8 form: stored, it would come back as another name
  if (!(req.name as string & { isWellFormed(): boolean }).isWellFormed()) {
    throw invalid('network name is not valid Unicode (it holds a lone surrogate such as \\ud800): use characters, not halves of one', req.name);
  }
  // the store keys records by name: LMDB takes keys of up to 1 978 bytes
  if (Buffer.byteLength(req.name) > MAX_NETWORK_NAME) {
    throw invalid(`network name "${req.name.slice(0, 20)}…" is too long: at most ${MAX_NETWORK_NAME} bytes`, req.name.slice(0, 100));
  }
  const driverName = req.driver ?? 'bridge';
  if (typeof driverName !== 'string' || driverName === '') throw invalid('driver name must not be empty', driverName);
  const driver = await ctx.drivers.resolve(driverName);
  if (!predefined && driver.singleton) throw invalid(`only one instance of "${driverName}" network is allowed`, driverName);
  const ipamDriver = req.ipamDriver ?? 'default';
  if (typeof ipamDriver !== 'string' || ipamDriver === '') throw invalid('IPAM driver name must not be empty', ipamDriver);
  if (ipamDriver !== 'default' && !driver.usesIpam) throw invalid(`the ${driverName} driver takes no IPAM driver`, ipamDriver);
  // an IPAM plugin must be there and implement IpamDriver
  if (driver.usesIpam) await ctx.drivers.resolveIpam(ipamDriver);
  const options = { ...req.options };
  const labels = { ...req.labels };
  const ipamOptions = { ...req.ipamOptions };
  for (const [what, rec] of [['option', options], ['label', labels], ['IPAM option', ipamOptions]] as const) {
    for (const [k, v] of Object.entries(rec)) {
      if (k === '' || typeof v !== 'string') throw invalid(`${what} ${k}: keys must be non-empty and values strings`, k);
    }
  }
  if (req.mtu !== undefined) options[MTU_OPTION] = String(parseMtu(req.mtu));
  const requested = checkPools(req, driver, driverName);
  if (req.enableIPv6 !== undefined && typeof req.enableIPv6 !== 'boolean') throw invalid('enableIPv6 must be a boolean', req.enableIPv6);
  // an IPv6 subnet asks for IPv6 as plainly as --ipv6 does
  const enableIPv6 = driver.usesIpam && (req.enableIPv6 === true || requested.some((c) => c.subnet!.includes(':')));
  if (req.enableIPv4 !== undefined && typeof req.enableIPv4 !== 'boolean') throw invalid('enableIPv4 must be a boolean', req.enableIPv4);
  const enableIPv4 = req.enableIPv4 !== false;
  if (!enableIPv4) {
    if (!driver.usesIpam) throw invalid(`the ${driverName} driver has no addresses: enableIPv4=false does not apply to it`, req.enableIPv4);
    if (!enableIPv6) throw invalid('an IPv6-only network (--ipv4=false) needs IPv6: add --ipv6 or an IPv6 --subnet', req.enableIPv4);
    const v4 = requested.find((c) => !c.subnet!.includes(':'));
    if (v4) throw invalid(`IPv4 is disabled (--ipv4=false) but subnet ${v4.subnet} is IPv4: leave it out or enable IPv4`, v4.subnet);
  }
  const rec: NetworkRecord = {
    id: newId(),
    name: req.name,
    driver: driverName,
    scope: 'local',
    created: new Date().toISOString(),
    internal: req.internal === true,
    attachable: req.attachable === true,
    enableIPv6,
    ...(enableIPv4 ? {} : { enableIPv4: false }),
    options,
    labels,
    ipam: { driver: ipamDriver, options: ipamOptions, config: [], userSubnet: requested.length > 0 },
    state: 'creating',
    owner: currentOwner(),
  };
  if (req.ipamOptions !== undefined && req.ipamOptions !== null) rec.ipam.optionsGiven = true;
  if (predefined) rec.predefined = true;
  driver.prepareNetwork(rec);
  return { rec, driver, requested };
}

/** The user's pools, each consistent in itself (Pool checks it) and none overlapping another. */
function checkPools(req: NetworkCreateOptions, driver: Driver, driverName: string): PoolRequest[] {
  const reqs = req.ipam ?? [];
  if (!Array.isArray(reqs)) throw invalid('ipam must be a list of pools', reqs);
  if (!driver.usesIpam) {
    if (reqs.some((p) => p.subnet)) throw invalid(`the ${driverName} driver takes no subnet`, reqs);
    return [];
  }
  const out: PoolRequest[] = [];
  for (const p of reqs) {
    if (!p.subnet) {
      if (p.gateway || p.ipRange) throw invalid('--gateway and --ip-range need a --subnet', p.gateway ?? p.ipRange);
      if (p.auxAddresses && Object.keys(p.auxAddresses).length > 0) throw invalid('--aux-address needs a --subnet', p.auxAddresses);
      continue;
    }
    const cfg = new Pool({ subnet: p.subnet, gateway: p.gateway, ipRange: p.ipRange, auxAddresses: p.auxAddresses }).config;
    const pr: PoolRequest = { subnet: cfg.subnet };
    if (p.gateway) pr.gateway = cfg.gateway;
    if (p.ipRange) pr.ipRange = cfg.ipRange;
    if (cfg.auxAddresses && Object.keys(cfg.auxAddresses).length > 0) pr.auxAddresses = cfg.auxAddresses;
    out.push(pr);
  }
  for (let i = 0; i < out.length; i++) {
    for (let j = i + 1; j < out.length; j++) {
      if (overlaps(parseSubnet(out[i]!.subnet!), parseSubnet(out[j]!.subnet!))) {
        throw new CnmError('ERR_SUBNET_OVERLAP', `subnets ${out[i]!.subnet} and ${out[j]!.subnet} overlap`, { subnet: out[j]!.subnet });
      }
    }
  }
  return out;
}
