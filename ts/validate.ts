/** Input checks shared by the library, the CLI and the daemon. */
import { invalid } from './errors.js';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Network and sandbox names: Docker's container-name rule, bounded in length. */
export function checkName(kind: string, name: unknown, max = 64): string {
  if (typeof name !== 'string' || name === '') throw invalid(`${kind} name must not be empty`, name);
  if (name.length > max) throw invalid(`${kind} name "${name.slice(0, 20)}…" is too long: at most ${max} characters`, name);
  if (!NAME_RE.test(name)) {
    throw invalid(`invalid ${kind} name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`, name);
  }
  return name;
}

/** Linux interface names: 1-15 bytes, no '/', ':' or whitespace. */
export function checkIfname(name: unknown, what = 'interface name'): string {
  if (typeof name !== 'string' || name === '') throw invalid(`${what} must not be empty`, name);
  if (Buffer.byteLength(name) > 15) throw invalid(`${what} "${name}" is too long: Linux allows at most 15 bytes`, name);
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) throw invalid(`invalid ${what} "${name}"`, name);
  return name;
}

export function parseBool(key: string, v: string): boolean {
  const s = v.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off'].includes(s)) return false;
  throw invalid(`option ${key}=${v}: expected true or false`, v);
}

export function parseMtu(v: string | number, what = 'mtu'): number {
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 68 || n > 65535) throw invalid(`${what} ${v} is invalid: expected an integer between 68 and 65535`, v);
  return n;
}

/** Parse "k=v" pairs (CLI --opt/--label) into a record. */
export function parseKv(list: readonly string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw invalid(`invalid ${what} "${item}": expected key=value`, item);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** 64 hex characters, like Docker's ids. */
export function newId(): string {
  return globalThis.crypto.getRandomValues(new Uint8Array(32)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '');
}
