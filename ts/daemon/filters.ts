/**
 * Docker's `filters` query parameter: JSON of {key: {value: true}} (current) or
 * {key: [values]} (old clients). Values of one key are ORed, keys are ANDed.
 */
import { invalid } from '../errors.js';

export type Filters = Map<string, string[]>;

/** `allowed` null accepts any key. */
export function parseFilters(raw: string | null, allowed: readonly string[] | null): Filters {
  const out: Filters = new Map();
  if (raw === null || raw === '') return out;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw invalid(`invalid filters: ${raw}`, raw);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`invalid filters: ${raw}`, raw);
  for (const [k, vals] of Object.entries(v)) {
    if (allowed !== null && !allowed.includes(k)) throw invalid(`invalid filter '${k}'`, k);
    const list = Array.isArray(vals) ? vals : typeof vals === 'object' && vals !== null ? Object.keys(vals) : [];
    out.set(
      k,
      list.filter((x): x is string => typeof x === 'string'),
    );
  }
  return out;
}

/** Labels filter: "key" (present) or "key=value". */
export function labelsMatch(labels: Record<string, string>, wanted: string[]): boolean {
  return wanted.every((w) => {
    const eq = w.indexOf('=');
    return eq < 0 ? w in labels : labels[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("1h30m", "10m", "1.5h", "-2s") in milliseconds, or undefined. */
function goDuration(v: string): number | undefined {
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(v);
  if (!m) return v === '0' ? 0 : undefined;
  let ms = 0;
  for (const [, n, unit] of v.slice(m[1]!.length).matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) ms += Number(n) * GO_UNITS[unit!]!;
  return m[1] === '-' ? -ms : ms;
}

/**
 * A time as Docker's `until`/`since` take it (timetypes.GetTimestamp): a Go duration
 * before `now`, unix seconds (with a fraction), or an RFC 3339 / ISO date. Milliseconds
 * since the epoch; ERR_INVALID_ARGUMENT with Docker's message otherwise.
 */
export function parseTimestamp(v: string, now = Date.now()): number {
  // "0" is the epoch, not a zero duration (as Docker's GetTimestamp has it)
  const d = v === '0' ? undefined : goDuration(v);
  if (d !== undefined) return now - d;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  // dates without a zone are local time, as in Go's time.ParseInLocation(…, time.Local)
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:\d{2})?$/.test(v)) {
    const iso = v.replace(' ', 'T');
    const t = Date.parse(/T/.test(iso) || /Z|[+-]\d{2}:\d{2}$/.test(iso) ? iso : `${iso}T00:00:00`);
    if (!Number.isNaN(t)) return t;
  }
  throw invalid(`failed to parse value as time or duration: "${v}"`, v);
}
