/** The network part of the Docker Engine API, over a NetworkController. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IpamPoolRequest, NetworkController } from '../controller.js';
import { CnmError, invalid } from '../errors.js';
import { contains, formatCidr, networkOf, overlaps, parseCidr, parseIp } from '../net/ip.js';
import type { NetworkInspect } from '../network.js';
import type { Sandbox } from '../sandbox.js';
import { parseFilters } from './filters.js';
import { NETWORK_FILTERS, networkMatches } from '../network-filters.js';
import { decodeSegment, readJson, sendEmpty, sendJson } from './http.js';

import { PRUNE_FILTERS } from '../prune.js';
/** names Docker keeps for itself (daemon/network.IsPredefined) */
const PREDEFINED_NAMES = ['bridge', 'host', 'none', 'default'];

/** Docker's API-level IPAM check (api/types/network ValidateIPAM), with its messages. */
function validateIpam(configs: IpamPoolRequest[]): void {
  const errs: string[] = [];
  for (const c of configs) {
    if (c.subnet === undefined) continue;
    const subnet = tryParse(() => parseCidr(c.subnet!));
    if (!subnet) {
      errs.push(`invalid subnet ${c.subnet}: invalid CIDR block notation`);
      continue;
    }
    const fam = subnet.family === 6 ? 'IPv6' : 'IPv4';
    if (networkOf(subnet) !== subnet.addr) errs.push(`invalid subnet ${c.subnet}: it should be ${formatCidr(subnet)}`);
    if (c.ipRange !== undefined) {
      const r = tryParse(() => parseCidr(c.ipRange!));
      if (!r) errs.push(`invalid ip-range ${c.ipRange}: invalid CIDR block notation`);
      else if (r.family !== subnet.family) errs.push(`invalid ip-range ${c.ipRange}: parent subnet is an ${fam} block`);
      else {
        if (r.prefix < subnet.prefix) errs.push(`invalid ip-range ${c.ipRange}: CIDR block is bigger than its parent subnet ${c.subnet}`);
        if (networkOf(r) !== r.addr) errs.push(`invalid ip-range ${c.ipRange}: it should be ${formatCidr(r)}`);
        if (!overlaps(subnet, r)) errs.push(`invalid ip-range ${c.ipRange}: parent subnet ${c.subnet} doesn't contain ip-range`);
      }
    }
    const addr = (what: string, a: string | undefined) => {
      if (a === undefined) return;
      const ip = tryParse(() => parseIp(a));
      if (!ip) errs.push(`${what}: invalid address`);
      else if (ip.family !== subnet.family) errs.push(`${what}: parent subnet is an ${fam} block`);
      else if (!contains(subnet, ip)) errs.push(`${what}: parent subnet ${c.subnet} doesn't contain this address`);
    };
    addr(`invalid gateway ${c.gateway}`, c.gateway);
    for (const [k, v] of Object.entries(c.auxAddresses ?? {})) addr(`invalid auxiliary address ${k}`, v);
  }
  if (errs.length) throw invalid(`invalid network config:\n${errs.join('\n')}`, configs);
}

function tryParse<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

function str(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw invalid(`${what} must be a string`, v);
  return v;
}

function strMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(`${what} must be an object of strings`, v);
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') throw invalid(`${what}.${k} must be a string`, x);
  return v as Record<string, string>;
}

function bool(v: unknown, what: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(`${what} must be a boolean`, v);
  return v;
}

/** GET /networks: the list, without containers (as Docker does). */
function list(ctl: NetworkController, url: URL): NetworkInspect[] {
  const f = parseFilters(url.searchParams.get('filters'), NETWORK_FILTERS);
  return ctl
    .listNetworks()
    .filter((n) => networkMatches(n.record, f, () => ctl.endpointsOf(n.id).length > 0))
    .map((n) => ({ ...n.inspect(), Containers: {} }));
}

async function create(ctl: NetworkController, body: Record<string, unknown>): Promise<{ Id: string; Warning: string }> {
  const name = str(body.Name, 'Name');
  if (!name) throw invalid('Name is required: give the network a name');
  if (PREDEFINED_NAMES.includes(name)) throw new CnmError('ERR_PREDEFINED_NETWORK', `operation is not permitted on predefined ${name} network `, { value: name });
  const driver = str(body.Driver, 'Driver') ?? 'bridge';
  // Docker forbids a second host or null network (403), before looking at anything else
  if (driver === 'host' || driver === 'null') throw new CnmError('ERR_PREDEFINED_NETWORK', `only one instance of "${driver}" network is allowed`, { value: driver });
  if (body.Ingress === true) throw invalid('ingress networks are not supported');
  if (body.ConfigOnly === true || (body.ConfigFrom && (body.ConfigFrom as { Network?: string }).Network)) {
    throw invalid('config-only networks are not supported');
  }
  const scope = str(body.Scope, 'Scope');
  if (scope !== undefined && scope !== 'local') throw invalid(`scope ${scope} is not supported: only local networks`, scope);
  const ipamIn = (body.IPAM ?? {}) as { Driver?: unknown; Config?: unknown; Options?: unknown };
  const ipamDriver = str(ipamIn.Driver, 'IPAM.Driver') ?? 'default';
  // the docker CLI always sends IPAM.Options ({} for none); Docker shows what was sent
  const ipamOptions = ipamIn.Options === undefined || ipamIn.Options === null ? undefined : strMap(ipamIn.Options, 'IPAM.Options');
  const configs = ipamIn.Config ?? [];
  if (!Array.isArray(configs)) throw invalid('IPAM.Config must be a list', configs);
  const ipam: IpamPoolRequest[] = configs.map((c: Record<string, unknown>, i: number) => ({
    subnet: str(c?.Subnet, `IPAM.Config[${i}].Subnet`),
    gateway: str(c?.Gateway, `IPAM.Config[${i}].Gateway`),
    ipRange: str(c?.IPRange, `IPAM.Config[${i}].IPRange`),
    auxAddresses: c?.AuxiliaryAddresses ? strMap(c.AuxiliaryAddresses, `IPAM.Config[${i}].AuxiliaryAddresses`) : undefined,
  }));
  validateIpam(ipam);
  const net = await ctl
    .createNetwork({
      name,
      driver,
      ipam,
      internal: bool(body.Internal, 'Internal'),
      attachable: bool(body.Attachable, 'Attachable'),
      enableIPv6: bool(body.EnableIPv6, 'EnableIPv6'),
      enableIPv4: bool(body.EnableIPv4, 'EnableIPv4'),
      options: strMap(body.Options, 'Options'),
      labels: strMap(body.Labels, 'Labels'),
      ipamDriver,
      ipamOptions,
    })
    .catch((e: unknown) => {
      // Docker looks an unknown driver up as a plugin and answers with the plugin error
      if (e instanceof CnmError && e.code === 'ERR_UNKNOWN_DRIVER' && e.details.value === driver && e.message.startsWith('unknown network driver')) {
        throw new CnmError('ERR_UNKNOWN_DRIVER', `plugin "${driver}" not found`, e.details);
      }
      throw e;
    });
  return { Id: net.id, Warning: '' };
}

async function prune(ctl: NetworkController, url: URL): Promise<{ NetworksDeleted: string[] }> {
  const f = parseFilters(url.searchParams.get('filters'), PRUNE_FILTERS);
  return { NetworksDeleted: await ctl.pruneNetworks({ filters: Object.fromEntries(f) }) };
}

/** The sandbox named by a connect/disconnect body, with Docker's messages when there is none. */
function container(ctl: NetworkController, body: Record<string, unknown>): Sandbox {
  const ref = str(body.Container, 'Container');
  if (!ref) throw invalid('invalid name or ID supplied: ""', body.Container);
  try {
    return ctl.getSandbox(ref);
  } catch (e) {
    if (e instanceof CnmError && e.code === 'ERR_SANDBOX_NOT_FOUND') throw new CnmError('ERR_SANDBOX_NOT_FOUND', `No such container: ${ref}`, e.details);
    throw e;
  }
}

/** Handle a /networks request; returns false when the path is not ours. */
export async function handleNetworks(ctl: NetworkController, req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<boolean> {
  const m = /^\/networks(?:\/([^/]+))?(?:\/(connect|disconnect))?\/?$/.exec(path);
  if (!m) return false;
  const [, ref, action] = m;
  const method = req.method ?? 'GET';
  const id = ref === undefined ? undefined : decodeSegment(ref);
  if (id === undefined && method === 'GET') {
    sendJson(res, 200, list(ctl, url));
  } else if (id === 'create' && method === 'POST' && !action) {
    sendJson(res, 201, await create(ctl, await readJson(req)));
  } else if (id === 'prune' && method === 'POST' && !action) {
    sendJson(res, 200, await prune(ctl, url));
  } else if (id !== undefined && !action && method === 'GET') {
    const n = ctl.getNetwork(id);
    // ?scope= narrows the lookup: a local network is not found as a swarm one
    const scope = url.searchParams.get('scope');
    if (scope && scope !== n.record.scope) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${id} not found`, { value: id });
    sendJson(res, 200, n.inspect());
  } else if (id !== undefined && !action && method === 'DELETE') {
    const n = ctl.getNetwork(id);
    await ctl.removeNetwork(n.id);
    sendEmpty(res, 204);
  } else if (id !== undefined && action === 'connect' && method === 'POST') {
    const body = await readJson(req);
    const ec = (body.EndpointConfig ?? {}) as {
      IPAMConfig?: { IPv4Address?: unknown; IPv6Address?: unknown; LinkLocalIPs?: unknown } | null;
      Aliases?: unknown;
      Links?: unknown;
      MacAddress?: unknown;
      DriverOpts?: unknown;
    };
    const ll = ec.IPAMConfig?.LinkLocalIPs ?? [];
    if (!Array.isArray(ll) || ll.some((a) => typeof a !== 'string')) throw invalid('IPAMConfig.LinkLocalIPs must be a list of addresses', ll);
    const driverOpts = ec.DriverOpts ?? undefined;
    if (driverOpts !== undefined && driverOpts !== null && (typeof driverOpts !== 'object' || Array.isArray(driverOpts))) throw invalid('EndpointConfig.DriverOpts must be an object', driverOpts);
    const aliases = ec.Aliases ?? [];
    if (!Array.isArray(aliases)) throw invalid('EndpointConfig.Aliases must be a list', aliases);
    // docker network connect --link NAME:ALIAS
    const links = ec.Links ?? undefined;
    if (links !== undefined && links !== null && !Array.isArray(links)) throw invalid('EndpointConfig.Links must be a list', links);
    // Docker resolves the container first: an unknown one is reported whatever the network
    const sb = container(ctl, body);
    const n = ctl.getNetwork(id);
    await ctl.connect(n.id, sb.id, {
      ip: str(ec.IPAMConfig?.IPv4Address, 'IPAMConfig.IPv4Address'),
      ip6: str(ec.IPAMConfig?.IPv6Address, 'IPAMConfig.IPv6Address'),
      aliases: aliases as string[],
      links: Array.isArray(links) && links.length ? (links as string[]) : undefined,
      mac: str(ec.MacAddress, 'EndpointConfig.MacAddress') || undefined,
      linkLocalIps: ll as string[],
      driverOpts: (driverOpts ?? undefined) as Record<string, string> | undefined,
    });
    sendEmpty(res, 200);
  } else if (id !== undefined && action === 'disconnect' && method === 'POST') {
    const sb = container(ctl, await readJson(req));
    const n = ctl.getNetwork(id);
    await ctl.disconnect(n.id, sb.id).catch((e: unknown) => {
      if (e instanceof CnmError && e.code === 'ERR_NOT_CONNECTED') {
        throw new CnmError('ERR_NOT_CONNECTED', `container ${sb.id} is not connected to the network ${n.name}`, e.details);
      }
      throw e;
    });
    sendEmpty(res, 200);
  } else {
    throw new CnmError('ERR_INVALID_ARGUMENT', `${method} ${path} is not supported`);
  }
  return true;
}
