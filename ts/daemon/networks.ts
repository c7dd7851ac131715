/** The network part of the Docker Engine API, over a NetworkController. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IpamPoolRequest, NetworkController } from '../controller.js';
import { CnmError, invalid } from '../errors.js';
import type { Network, NetworkInspect } from '../network.js';
import type { EventBus } from './events.js';
import { type Filters, labelsMatch, parseFilters } from './filters.js';
import { readJson, sendEmpty, sendJson } from './http.js';

const LIST_FILTERS = ['name', 'id', 'driver', 'label', 'type', 'scope', 'dangling'] as const;
const PRUNE_FILTERS = ['until', 'label', 'label!'] as const;

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

function matches(n: Network, f: Filters, inUse: boolean): boolean {
  const r = n.record;
  for (const [k, vals] of f) {
    if (vals.length === 0) continue;
    switch (k) {
      case 'name':
        // Docker matches names by substring
        if (!vals.some((v) => r.name.includes(v))) return false;
        break;
      case 'id':
        if (!vals.some((v) => r.id.startsWith(v))) return false;
        break;
      case 'driver':
        if (!vals.includes(r.driver)) return false;
        break;
      case 'label':
        if (!labelsMatch(r.labels, vals)) return false;
        break;
      case 'type': {
        for (const v of vals) if (v !== 'custom' && v !== 'builtin') throw invalid(`invalid filter: 'type'='${v}'`, v);
        if (!vals.includes(r.predefined ? 'builtin' : 'custom')) return false;
        break;
      }
      case 'scope':
        if (!vals.includes(r.scope)) return false;
        break;
      case 'dangling': {
        const want = vals.some((v) => v === 'true' || v === '1');
        if ((!inUse && !r.predefined) !== want) return false;
        break;
      }
    }
  }
  return true;
}

/** GET /networks: the list, without containers (as Docker does). */
function list(ctl: NetworkController, url: URL): NetworkInspect[] {
  const f = parseFilters(url.searchParams.get('filters'), LIST_FILTERS);
  return ctl
    .listNetworks()
    .filter((n) => matches(n, f, ctl.endpointsOf(n.id).length > 0))
    .map((n) => ({ ...n.inspect(), Containers: {} }));
}

async function create(ctl: NetworkController, bus: EventBus, body: Record<string, unknown>): Promise<{ Id: string; Warning: string }> {
  const name = str(body.Name, 'Name');
  if (!name) throw invalid('Name is required: give the network a name');
  if (body.Ingress === true) throw invalid('ingress networks are not supported');
  if (body.ConfigOnly === true || (body.ConfigFrom && (body.ConfigFrom as { Network?: string }).Network)) {
    throw invalid('config-only networks are not supported');
  }
  const scope = str(body.Scope, 'Scope');
  if (scope !== undefined && scope !== 'local') throw invalid(`scope ${scope} is not supported: only local networks`, scope);
  const ipamIn = (body.IPAM ?? {}) as { Driver?: unknown; Config?: unknown; Options?: unknown };
  const ipamDriver = str(ipamIn.Driver, 'IPAM.Driver') ?? 'default';
  const ipamOptions = strMap(ipamIn.Options, 'IPAM.Options');
  const configs = ipamIn.Config ?? [];
  if (!Array.isArray(configs)) throw invalid('IPAM.Config must be a list', configs);
  const ipam: IpamPoolRequest[] = configs.map((c: Record<string, unknown>, i: number) => ({
    subnet: str(c?.Subnet, `IPAM.Config[${i}].Subnet`),
    gateway: str(c?.Gateway, `IPAM.Config[${i}].Gateway`),
    ipRange: str(c?.IPRange, `IPAM.Config[${i}].IPRange`),
    auxAddresses: c?.AuxiliaryAddresses ? strMap(c.AuxiliaryAddresses, `IPAM.Config[${i}].AuxiliaryAddresses`) : undefined,
  }));
  const net = await ctl.createNetwork({
    name,
    driver: str(body.Driver, 'Driver') ?? 'bridge',
    ipam,
    internal: bool(body.Internal, 'Internal'),
    attachable: bool(body.Attachable, 'Attachable'),
    enableIPv6: bool(body.EnableIPv6, 'EnableIPv6'),
    options: strMap(body.Options, 'Options'),
    labels: strMap(body.Labels, 'Labels'),
    ipamDriver,
    ipamOptions,
  });
  bus.emit('create', net.id, { name: net.name, type: net.driver });
  return { Id: net.id, Warning: '' };
}

async function prune(ctl: NetworkController, bus: EventBus, url: URL): Promise<{ NetworksDeleted: string[] }> {
  const f = parseFilters(url.searchParams.get('filters'), PRUNE_FILTERS);
  const until = f.get('until')?.[0];
  let cutoff = Infinity;
  if (until !== undefined) {
    const secs = /^\d+(\.\d+)?$/.test(until) ? Number(until) * 1000 : Date.parse(until);
    if (Number.isNaN(secs)) throw invalid(`invalid until filter ${until}`, until);
    cutoff = secs;
  }
  const deleted: string[] = [];
  for (const n of ctl.listNetworks()) {
    const r = n.record;
    if (r.predefined || ctl.endpointsOf(r.id).length > 0) continue;
    if (Date.parse(r.created) >= cutoff) continue;
    if (f.get('label')?.length && !labelsMatch(r.labels, f.get('label')!)) continue;
    if (f.get('label!')?.length && f.get('label!')!.some((l) => labelsMatch(r.labels, [l]))) continue;
    try {
      await ctl.removeNetwork(r.id);
      deleted.push(r.name);
      bus.emit('destroy', r.id, { name: r.name, type: r.driver });
    } catch (e) {
      // a network that got an endpoint meanwhile is simply not pruned
      if (!(e instanceof CnmError)) throw e;
    }
  }
  return { NetworksDeleted: deleted };
}

/** Handle a /networks request; returns false when the path is not ours. */
export async function handleNetworks(ctl: NetworkController, bus: EventBus, req: IncomingMessage, res: ServerResponse, path: string, url: URL): Promise<boolean> {
  const m = /^\/networks(?:\/([^/]+))?(?:\/(connect|disconnect))?\/?$/.exec(path);
  if (!m) return false;
  const [, ref, action] = m;
  const method = req.method ?? 'GET';
  const id = ref === undefined ? undefined : decodeURIComponent(ref);
  if (id === undefined && method === 'GET') {
    sendJson(res, 200, list(ctl, url));
  } else if (id === 'create' && method === 'POST' && !action) {
    sendJson(res, 201, await create(ctl, bus, await readJson(req)));
  } else if (id === 'prune' && method === 'POST' && !action) {
    sendJson(res, 200, await prune(ctl, bus, url));
  } else if (id !== undefined && !action && method === 'GET') {
    sendJson(res, 200, ctl.getNetwork(id).inspect());
  } else if (id !== undefined && !action && method === 'DELETE') {
    const n = ctl.getNetwork(id);
    await ctl.removeNetwork(n.id);
    bus.emit('destroy', n.id, { name: n.name, type: n.driver });
    sendEmpty(res, 204);
  } else if (id !== undefined && action === 'connect' && method === 'POST') {
    const body = await readJson(req);
    const container = str(body.Container, 'Container');
    if (!container) throw invalid('Container is required');
    const ec = (body.EndpointConfig ?? {}) as { IPAMConfig?: { IPv4Address?: unknown; IPv6Address?: unknown }; Aliases?: unknown };
    const aliases = ec.Aliases ?? [];
    if (!Array.isArray(aliases)) throw invalid('EndpointConfig.Aliases must be a list', aliases);
    const n = ctl.getNetwork(id);
    const ep = await ctl.connect(n.id, container, {
      ip: str(ec.IPAMConfig?.IPv4Address, 'IPAMConfig.IPv4Address'),
      ip6: str(ec.IPAMConfig?.IPv6Address, 'IPAMConfig.IPv6Address'),
      aliases: aliases as string[],
    });
    bus.emit('connect', n.id, { container: ep.sandboxId, name: n.name, type: n.driver });
    sendEmpty(res, 200);
  } else if (id !== undefined && action === 'disconnect' && method === 'POST') {
    const body = await readJson(req);
    const container = str(body.Container, 'Container');
    if (!container) throw invalid('Container is required');
    const n = ctl.getNetwork(id);
    const sb = ctl.getSandbox(container);
    await ctl.disconnect(n.id, sb.id);
    bus.emit('disconnect', n.id, { container: sb.id, name: n.name, type: n.driver });
    sendEmpty(res, 200);
  } else {
    throw new CnmError('ERR_INVALID_ARGUMENT', `${method} ${path} is not supported`);
  }
  return true;
}
