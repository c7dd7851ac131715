/**
 * Docker's `filters` query parameter: JSON of {key: {value: true}} (current) or
 * {key: [values]} (old clients). Values of one key are ORed, keys are ANDed.
 */
import { invalid } from '../errors.js';

export type Filters = Map<string, string[]>;

export function parseFilters(raw: string | null, allowed: readonly string[]): Filters {
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
    if (!allowed.includes(k)) throw invalid(`invalid filter '${k}'`, k);
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
