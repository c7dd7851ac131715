/**
 * Host port reservations in the store, so that two publishes of one port never
 * both succeed, in one process or several. Keys are `port/<proto>/<port>/<hostIp>`:
 * a port is taken for a host IP when that IP or 0.0.0.0 holds it, and taken for
 * 0.0.0.0 when any IP holds it — Docker's rule.
 */
import { CnmError } from './errors.js';
import type { PortBinding, PortMappingRecord, Proto } from './ports.js';
import type { StoreTxn } from './store/store.js';

const ANY = '0.0.0.0';
const key = (proto: Proto, port: number, ip: string) => `port/${proto}/${port}/${ip}`;
const cursorKey = (proto: Proto) => `portcur/${proto}`;

export interface PortReservation {
  endpointId: string;
}

function taken(tx: StoreTxn, proto: Proto, port: number, ip: string): boolean {
  if (ip === ANY) return tx.range(`port/${proto}/${port}/`).length > 0;
  return tx.get(key(proto, port, ip)) !== undefined || tx.get(key(proto, port, ANY)) !== undefined;
}

/**
 * Reserve host ports for bindings inside the caller's transaction. `ephemeral` is
 * the range used when no host port is given (ip_local_port_range, as Docker does).
 */
export function reservePorts(
  tx: StoreTxn,
  bindings: ReadonlyArray<PortBinding & { proto: Proto }>,
  defaultIp: string,
  ephemeral: readonly [number, number],
  endpointId: string,
): PortMappingRecord[] {
  const out: PortMappingRecord[] = [];
  for (const b of bindings) {
    const ip = b.hostIp ?? defaultIp;
    let hostPort: number;
    if (b.hostPort) {
      const hi = b.hostPortEnd ?? b.hostPort;
      let found = -1;
      for (let p = b.hostPort; p <= hi && found < 0; p++) if (!taken(tx, b.proto, p, ip)) found = p;
      if (found < 0) {
        const what = hi === b.hostPort ? `${b.hostPort}` : `${b.hostPort}-${hi}`;
        throw new CnmError('ERR_PORT_ALLOCATED', `Bind for ${ip}:${what} failed: port is already allocated (${b.proto})`, { value: `${ip}:${what}/${b.proto}` });
      }
      hostPort = found;
    } else {
      const [lo, hi] = ephemeral;
      const last = tx.get<number>(cursorKey(b.proto)) ?? hi;
      const size = hi - lo + 1;
      hostPort = -1;
      for (let i = 1; i <= size; i++) {
        const p = lo + ((last - lo + i) % size);
        if (!taken(tx, b.proto, p, ip)) {
          hostPort = p;
          break;
        }
      }
      if (hostPort < 0) throw new CnmError('ERR_PORT_ALLOCATED', `no free host port in ${lo}-${hi} for ${b.proto}`, { value: `${lo}-${hi}` });
      tx.put(cursorKey(b.proto), hostPort);
    }
    tx.put(key(b.proto, hostPort, ip), { endpointId } satisfies PortReservation);
    out.push({ proto: b.proto, hostIp: ip, hostPort, containerPort: b.containerPort });
  }
  return out;
}

export function releasePorts(tx: StoreTxn, maps: readonly PortMappingRecord[]): void {
  for (const m of maps) tx.del(key(m.proto, m.hostPort, m.hostIp));
}
