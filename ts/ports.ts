/**
 * Published ports: Docker's `-p [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`
 * parsed into typed bindings, one per container port.
 */
import { invalid } from './errors.js';
import { parseIp } from './net/ip.js';

export type Proto = 'tcp' | 'udp' | 'sctp';

/** One port to publish, as the library takes it. */
export interface PortBinding {
  containerPort: number;
  /** default tcp */
  proto?: Proto;
  /**
   * host address (IPv4 or IPv6) to publish on, which limits the mapping to its family;
   * default: the network's host_binding_ipv4 option or the controller's `ip` (0.0.0.0:
   * every address of each family the endpoint has)
   */
  hostIp?: string;
  /** host port; 0 or absent picks an ephemeral port */
  hostPort?: number;
  /** with hostPort: pick the first free port in hostPort..hostPortEnd */
  hostPortEnd?: number;
}

/** A published port as stored with its endpoint, after allocation. */
export interface PortMappingRecord {
  proto: Proto;
  /** the host address, whose family is the mapping's: 0.0.0.0 / :: for every address of it */
  hostIp: string;
  /** 0 when routed */
  hostPort: number;
  containerPort: number;
  /** the network's gateway mode of this family is routed: the container port is open to direct routing, no host port is used */
  routed?: true;
}

/**
 * Whether a mapping is served by a userland proxy rather than the firewall: one on
 * [::1], which the kernel cannot DNAT (IPv6 has no route_localnet).
 */
export const proxied = (m: Pick<PortMappingRecord, 'hostIp'>): boolean => m.hostIp === '::1';

const PROTOS = new Set(['tcp', 'udp', 'sctp']);

function port(s: string, what: string, spec: string): number {
  if (!/^\d{1,5}$/.test(s) || Number(s) > 65535) throw invalid(`invalid ${what} "${s}" in "${spec}": expected 0-65535`, spec);
  return Number(s);
}

function range(s: string, what: string, spec: string): [number, number] {
  const [a, b] = s.split('-');
  const lo = port(a!, what, spec);
  const hi = b === undefined ? lo : port(b, what, spec);
  if (hi < lo) throw invalid(`invalid ${what} range "${s}" in "${spec}": end before start`, spec);
  return [lo, hi];
}

/** Parse one `-p` value into bindings (a container range gives one binding per port). */
export function parsePublish(spec: string): PortBinding[] {
  if (typeof spec !== 'string' || spec === '') throw invalid('port spec must not be empty', spec);
  let rest = spec;
  let proto: Proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (!PROTOS.has(p)) throw invalid(`invalid protocol "${p}" in "${spec}": expected tcp, udp or sctp`, spec);
    proto = p as Proto;
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  if (rest.startsWith('[')) {
    // an IPv6 host address: [ADDR]:HOST_PORT:CONTAINER_PORT or [ADDR]::CONTAINER_PORT
    const end = rest.indexOf(']:');
    if (end < 0) throw invalid(`invalid port spec "${spec}": expected [IPv6]:[HOST_PORT]:CONTAINER_PORT`, spec);
    hostIp = rest.slice(1, end);
    if (parseIp(hostIp, 'host IP').family !== 6) throw invalid(`host IP ${hostIp} in brackets must be IPv6`, spec);
    rest = rest.slice(end + 2);
    if (rest.split(':').length !== 2) throw invalid(`invalid port spec "${spec}": expected [IPv6]:[HOST_PORT]:CONTAINER_PORT`, spec);
  }
  const parts = rest.split(':');
  if (parts.length > 3) throw invalid(`invalid port spec "${spec}": expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, spec);
  const containerPart = parts.pop()!;
  const hostPart = parts.length ? parts.pop()! : '';
  if (parts.length) {
    hostIp = parts.pop()!;
    if (parseIp(hostIp, 'host IP').family !== 4) throw invalid(`host IP ${hostIp} must be IPv4, or IPv6 in brackets ([::1]:8080:80)`, spec);
  }
  const [cLo, cHi] = range(containerPart, 'container port', spec);
  if (cLo === 0) throw invalid(`invalid container port 0 in "${spec}"`, spec);
  const out: PortBinding[] = [];
  if (hostPart === '') {
    for (let p = cLo; p <= cHi; p++) out.push({ containerPort: p, proto, hostIp });
    return out;
  }
  const [hLo, hHi] = range(hostPart, 'host port', spec);
  const n = cHi - cLo + 1;
  if (hHi - hLo + 1 === n) {
    for (let i = 0; i < n; i++) out.push({ containerPort: cLo + i, proto, hostIp, hostPort: hLo === 0 ? 0 : hLo + i });
    return out;
  }
  if (n === 1) return [{ containerPort: cLo, proto, hostIp, hostPort: hLo, hostPortEnd: hHi }];
  throw invalid(`invalid port spec "${spec}": host and container port ranges differ in size`, spec);
}

/** Check a binding given through the library. */
export function checkBinding(b: PortBinding): Required<Pick<PortBinding, 'containerPort' | 'proto'>> & PortBinding {
  if (typeof b !== 'object' || b === null) throw invalid('a port binding must be an object', b);
  const proto = b.proto ?? 'tcp';
  if (!PROTOS.has(proto)) throw invalid(`invalid protocol "${String(proto)}": expected tcp, udp or sctp`, proto);
  for (const [k, v] of [['containerPort', b.containerPort], ['hostPort', b.hostPort], ['hostPortEnd', b.hostPortEnd]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 65535)) throw invalid(`${k} ${String(v)} must be an integer 0-65535`, v);
  }
  if (!b.containerPort) throw invalid('containerPort must be 1-65535', b.containerPort);
  if (b.hostIp !== undefined) parseIp(b.hostIp, 'host IP');
  if (b.hostPortEnd !== undefined && (b.hostPort === undefined || b.hostPortEnd < b.hostPort)) {
    throw invalid('hostPortEnd needs a hostPort not above it', b.hostPortEnd);
  }
  return { ...b, proto };
}

/** Docker's `Ports` shape: {"80/tcp": [{HostIp, HostPort}]}; a routed mapping has no host port (""). */
export function dockerPorts(maps: readonly PortMappingRecord[]): Record<string, Array<{ HostIp: string; HostPort: string }>> {
  const out: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const m of maps) (out[`${m.containerPort}/${m.proto}`] ??= []).push({ HostIp: m.hostIp, HostPort: m.routed ? '' : String(m.hostPort) });
  return out;
}
