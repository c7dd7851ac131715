/**
 * Host port reservations in the store, so that two publishes of one port never
 * both succeed, in one process or several. Keys are `port/<proto>/<port>/<hostIp>`;
 * each family is apart (Docker's rule, per family): a port is taken for a host IP
 * when that IP or its family's any-address (0.0.0.0, ::) holds it, and taken for
 * the any-address when any IP of its family holds it.
 *
 * A binding without a host IP is published on the default one; when that is
 * 0.0.0.0, on every address of each family the endpoint has, with the same host
 * port in both (Docker 27), so `-p 80` gives 0.0.0.0:P and [::]:P. A binding on
 * [::1] is served by a userland proxy, to the endpoint's IPv6 address or, if it
 * has none, its IPv4 one.
 */
import { CnmError, invalid } from './errors.js';
import { log } from './log.js';
import { formatIp, parseIp } from './net/ip.js';
import type { PortBinding, PortMappingRecord, Proto } from './ports.js';
import type { StoreTxn } from './store/store.js';

const ANY4 = '0.0.0.0';
const ANY6 = '::';
const key = (proto: Proto, port: number, ip: string) => `port/${proto}/${port}/${ip}`;
const cursorKey = (proto: Proto) => `portcur/${proto}`;
const isV6 = (ip: string) => ip.includes(':');
const anyOf = (ip: string) => (isV6(ip) ? ANY6 : ANY4);

export interface PortReservation {
  endpointId: string;
}

/** What the endpoint offers each family: no address, NAT (DNAT on host addresses) or routed. */
export interface PortFamilies {
  v4: 'none' | 'nat' | 'routed';
  v6: 'none' | 'nat' | 'routed';
}

function taken(tx: StoreTxn, proto: Proto, port: number, ip: string): boolean {
  if (ip === anyOf(ip)) {
    const prefix = `port/${proto}/${port}/`;
    return tx.range(prefix).some(([k]) => isV6(k.slice(prefix.length)) === isV6(ip));
  }
  return tx.get(key(proto, port, ip)) !== undefined || tx.get(key(proto, port, anyOf(ip))) !== undefined;
}

/**
 * The endpoint's family a host address publishes to: its own, but [::1], served
 * by a userland proxy, reaches an endpoint without IPv6 on its IPv4 address.
 */
function familyOf(ip: string, fam: PortFamilies): 'v4' | 'v6' {
  if (ip === '::1' && fam.v6 === 'none') return 'v4';
  return isV6(ip) ? 'v6' : 'v4';
}

/** The host addresses one binding is published on, by family. */
function hostIps(b: PortBinding & { proto: Proto }, defaultIp: string, fam: PortFamilies): string[] {
  const has = (ip: string) => fam[familyOf(ip, fam)] !== 'none';
  if (b.hostIp !== undefined) {
    const ip = formatIp(parseIp(b.hostIp, 'host IP'));
    if (ip === '::1' && b.proto === 'sctp') {
      throw invalid(`cannot publish sctp port ${b.containerPort} on [::1]: the kernel cannot forward from ::1 and the userland proxy serves tcp and udp only`, b.hostIp);
    }
    if (!has(ip)) {
      throw invalid(`cannot publish port ${b.containerPort} on host address ${ip}: the endpoint has no IPv${isV6(ip) ? 6 : 4} address`, b.hostIp);
    }
    return [ip];
  }
  if (defaultIp === ANY4) return [ANY4, ANY6].filter(has);
  if (has(defaultIp)) return [defaultIp];
  // an IPv6-only endpoint with a specific IPv4 default (or the reverse): every address of its family
  return [isV6(defaultIp) ? ANY4 : ANY6].filter(has);
}

/**
 * Reserve host ports for bindings inside the caller's transaction. `ephemeral` is
 * the range used when no host port is given (ip_local_port_range, as Docker does).
 * Routed families get a record and no reservation: no host port is used.
 */
export function reservePorts(
  tx: StoreTxn,
  bindings: ReadonlyArray<PortBinding & { proto: Proto }>,
  defaultIp: string,
  ephemeral: readonly [number, number],
  endpointId: string,
  fam: PortFamilies,
): PortMappingRecord[] {
  const out: PortMappingRecord[] = [];
  for (const b of bindings) {
    const ips = hostIps(b, defaultIp, fam);
    const routed = ips.filter((ip) => fam[familyOf(ip, fam)] === 'routed');
    for (const ip of routed) {
      if (b.hostPort || ip !== anyOf(ip)) {
        log.warn('host address and port ignored: the network is in routed mode, where container ports are reached directly', { containerPort: b.containerPort, hostIp: ip, hostPort: b.hostPort });
      }
      out.push({ proto: b.proto, hostIp: familyOf(ip, fam) === 'v6' ? ANY6 : ANY4, hostPort: 0, containerPort: b.containerPort, routed: true });
    }
    const nat = ips.filter((ip) => !routed.includes(ip));
    if (nat.length === 0) continue;
    const free = (p: number) => nat.every((ip) => !taken(tx, b.proto, p, ip));
    const shown = nat.map((ip) => (isV6(ip) ? `[${ip}]` : ip)).join(' and ');
    let hostPort = -1;
    if (b.hostPort) {
      const hi = b.hostPortEnd ?? b.hostPort;
      for (let p = b.hostPort; p <= hi && hostPort < 0; p++) if (free(p)) hostPort = p;
      if (hostPort < 0) {
        const what = hi === b.hostPort ? `${b.hostPort}` : `${b.hostPort}-${hi}`;
        throw new CnmError('ERR_PORT_ALLOCATED', `Bind for ${shown}:${what} failed: port is already allocated (${b.proto})`, { value: `${nat[0]}:${what}/${b.proto}` });
      }
    } else {
      const [lo, hi] = ephemeral;
      const last = tx.get<number>(cursorKey(b.proto)) ?? hi;
      const size = hi - lo + 1;
      for (let i = 1; i <= size; i++) {
        const p = lo + ((last - lo + i) % size);
        if (free(p)) {
          hostPort = p;
          break;
        }
      }
      if (hostPort < 0) throw new CnmError('ERR_PORT_ALLOCATED', `no free host port in ${lo}-${hi} for ${b.proto} on ${shown}`, { value: `${lo}-${hi}` });
      tx.put(cursorKey(b.proto), hostPort);
    }
    for (const ip of nat) {
      tx.put(key(b.proto, hostPort, ip), { endpointId } satisfies PortReservation);
      out.push({ proto: b.proto, hostIp: ip, hostPort, containerPort: b.containerPort });
    }
  }
  return out;
}

export function releasePorts(tx: StoreTxn, maps: readonly PortMappingRecord[]): void {
  for (const m of maps) if (!m.routed) tx.del(key(m.proto, m.hostPort, m.hostIp));
}
