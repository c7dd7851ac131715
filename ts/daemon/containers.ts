/**
 * Containers, as far as networking goes: cnm's sandboxes served as Docker's
 * containers (`GET /containers/json`, `GET /containers/{id}/json`), so that
 * `docker inspect SANDBOX` and clients that read a network's containers work.
 * Only the network part is real; the rest has Docker's shape and empty values.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NetworkController } from '../controller.js';
import { CnmError } from '../errors.js';
import type { Sandbox, SandboxInspect, SandboxNetwork } from '../sandbox.js';
import { parseFilters } from './filters.js';
import { decodeSegment, sendJson } from './http.js';

/** Docker's EndpointSettings of one network (without cnm's InterfaceName). */
function endpointSettings(n: SandboxNetwork): Record<string, unknown> {
  const { InterfaceName: _, ...docker } = n;
  return docker;
}

function networks(i: SandboxInspect): Record<string, Record<string, unknown>> {
  return Object.fromEntries(Object.entries(i.Networks).map(([name, n]) => [name, endpointSettings(n)]));
}

/** Docker's Ports of a container list entry, from NetworkSettings.Ports. */
function portList(i: SandboxInspect): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const [key, binds] of Object.entries(i.Ports)) {
    const [port, type] = key.split('/');
    for (const b of binds ?? []) out.push({ IP: b.HostIp, PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: type });
  }
  return out;
}

const unix = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** One entry of GET /containers/json, from the sandbox's inspect. */
export function containerSummary(i: SandboxInspect): Record<string, unknown> {
  return {
    Id: i.Id,
    Names: [`/${i.Name}`],
    Image: '',
    ImageID: '',
    Command: '',
    Created: unix(i.Created),
    Ports: portList(i),
    Labels: {},
    State: 'running',
    Status: 'Up',
    HostConfig: { NetworkMode: i.NetworkMode },
    NetworkSettings: { Networks: networks(i) },
    Mounts: [],
  };
}

/** GET /containers/{id}/json. */
export function containerInspect(sb: Sandbox): Record<string, unknown> {
  const i = sb.inspect();
  const files = `/etc/netns/${sb.record.netns}`;
  return {
    Id: i.Id,
    Created: i.Created,
    Path: '',
    Args: [],
    State: { Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: i.Created, FinishedAt: '0001-01-01T00:00:00Z' },
    Image: '',
    ResolvConfPath: `${files}/resolv.conf`,
    HostnamePath: `${files}/hostname`,
    HostsPath: `${files}/hosts`,
    LogPath: '',
    Name: `/${i.Name}`,
    RestartCount: 0,
    Driver: '',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: {
      NetworkMode: i.NetworkMode,
      Dns: i.Dns,
      DnsSearch: i.DnsSearch,
      DnsOptions: i.DnsOptions,
      ExtraHosts: i.ExtraHosts,
      Links: i.Links,
      PortBindings: Object.fromEntries(Object.entries(i.Ports).map(([k, v]) => [k, v])),
    },
    GraphDriver: { Name: '', Data: null },
    Mounts: [],
    Config: { Hostname: i.Hostname, Domainname: '', User: '', ExposedPorts: i.ExposedPorts, Env: [], Cmd: null, Image: '', Labels: {} },
    NetworkSettings: {
      Bridge: '',
      SandboxID: i.Id,
      SandboxKey: i.SandboxKey,
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: i.Ports,
      Networks: networks(i),
    },
  };
}

/** The sandbox a container reference names (id, id prefix, name or /name), with Docker's message. */
function sandboxOf(ctl: NetworkController, ref: string): Sandbox {
  try {
    return ctl.getSandbox(ref.replace(/^\//, ''));
  } catch (e) {
    if (e instanceof CnmError && (e.code === 'ERR_SANDBOX_NOT_FOUND' || e.code === 'ERR_INVALID_ARGUMENT')) throw new CnmError('ERR_SANDBOX_NOT_FOUND', `No such container: ${ref}`, { value: ref });
    throw e;
  }
}

/** Whether a sandbox passes the list's filters (id, name, network, status, label). */
function passes(i: SandboxInspect, f: Map<string, string[]>): boolean {
  const any = (k: string, ok: (v: string) => boolean) => !f.get(k)?.length || f.get(k)!.some(ok);
  return (
    any('id', (v) => i.Id.startsWith(v)) &&
    any('name', (v) => i.Name.includes(v.replace(/^\//, ''))) &&
    any('network', (v) => Object.entries(i.Networks).some(([name, n]) => name === v || n.NetworkID.startsWith(v))) &&
    any('status', (v) => v === 'running') &&
    // sandboxes carry no labels
    !f.get('label')?.length
  );
}

/** Handle a /containers request; returns false when the path is not ours. */
export function handleContainers(ctl: NetworkController, req: IncomingMessage, res: ServerResponse, path: string, url: URL): boolean {
  const method = req.method ?? 'GET';
  if (path === '/containers/json' && method === 'GET') {
    const f = parseFilters(url.searchParams.get('filters'), ['id', 'name', 'network', 'status', 'label', 'ancestor', 'before', 'since', 'exited', 'health', 'isolation', 'is-task', 'publish', 'expose', 'volume']);
    sendJson(
      res,
      200,
      ctl
        .listSandboxes()
        .map((sb) => sb.inspect())
        .filter((i) => passes(i, f))
        .map(containerSummary),
    );
    return true;
  }
  const m = /^\/containers\/([^/]+)\/json$/.exec(path);
  if (m && method === 'GET') {
    sendJson(res, 200, containerInspect(sandboxOf(ctl, decodeSegment(m[1]!))));
    return true;
  }
  return false;
}
