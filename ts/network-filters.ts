/**
 * Docker's network list filters (name, id, driver, label, type, scope,
 * dangling), shared by the daemon's GET /networks, the library's
 * listNetworks({ filters }) and the CLI's network ls --filter. Values of one key
 * are ORed, keys are ANDed.
 */
import { type Filters, labelsMatch } from './daemon/filters.js';
import { byText } from './compare.js';
import { invalid } from './errors.js';
import { allNetworks, endpointsOfNetwork } from './records.js';
import type { StoreTxn } from './store/store.js';
import type { NetworkRecord } from './types.js';

export const NETWORK_FILTERS = ['name', 'id', 'driver', 'label', 'type', 'scope', 'dangling'] as const;

/** Filters given as an object ({ driver: ['bridge'] }), checked against the known keys. */
export function networkFilters(f: Record<string, string[] | string> | undefined): Filters {
  const out: Filters = new Map();
  for (const [k, v] of Object.entries(f ?? {})) {
    if (!(NETWORK_FILTERS as readonly string[]).includes(k)) throw invalid(`invalid filter '${k}': expected one of ${NETWORK_FILTERS.join(', ')}`, k);
    const vals = Array.isArray(v) ? v : [v];
    if (vals.some((x) => typeof x !== 'string')) throw invalid(`filter '${k}' takes strings`, v);
    out.set(k, vals);
  }
  return out;
}

export function networkMatches(r: NetworkRecord, f: Filters, inUse: (n: NetworkRecord) => boolean): boolean {
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
        if ((!r.predefined && !inUse(r)) !== want) return false;
        break;
      }
    }
  }
  return true;
}

/** This host's networks and the cluster's (`global`, when in one) that are ready, in creation order. */
export function networkListing(store: Pick<StoreTxn, 'get' | 'range'>, global: NetworkRecord[]): NetworkRecord[] {
  return [...allNetworks(store).filter((n) => n.scope !== 'global'), ...global]
    .filter((n) => n.state === 'ready')
    .sort((a, b) => byText(a.created, b.created));
}

/** The listed networks that match Docker's `network ls` filters; `inUse` is asked only by `dangling`. */
export function filterListing(listed: NetworkRecord[], filters: Record<string, string[] | string> | undefined, inUse: (n: NetworkRecord) => boolean): NetworkRecord[] {
  const f = networkFilters(filters);
  return f.size === 0 ? listed : listed.filter((n) => networkMatches(n, f, inUse));
}

/** Whether an endpoint is on the network, read from the store. */
export function storeInUse(store: Pick<StoreTxn, 'get' | 'range'>): (n: NetworkRecord) => boolean {
  return (n) => endpointsOfNetwork(store, n.id).length > 0;
}
