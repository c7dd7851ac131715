/**
 * Prune, as Docker's: networks no endpoint uses (never the predefined ones), and
 * sandboxes no process uses (their namespace holds no process: a workload gone,
 * as Docker's stopped containers). Filters `until` (created before) and, for
 * networks, `label` / `label!`.
 */
import { readdirSync, statSync } from 'node:fs';
import { labelsMatch, parseTimestamp } from './daemon/filters.js';
import { CnmError, invalid } from './errors.js';
import { log } from './log.js';
import type { NetworkRecord, SandboxRecord } from './types.js';

export const PRUNE_FILTERS = ['until', 'label', 'label!'] as const;

export interface PruneFilters {
  filters?: Record<string, string[]>;
}

/** The cutoff of an `until` filter (ms since the epoch), Infinity without one. */
function cutoffOf(f: Record<string, string[]>): number {
  for (const k of Object.keys(f)) if (!(PRUNE_FILTERS as readonly string[]).includes(k)) throw invalid(`invalid filter '${k}'`, k);
  const until = f.until ?? [];
  if (until.length > 1) throw invalid('more than one until filter specified', until);
  return until.length ? parseTimestamp(until[0]!) : Infinity;
}

/** Which networks prune removes (not in use is checked by the caller); the filters are checked once. */
export function networkPrunable(q: PruneFilters): (r: NetworkRecord) => boolean {
  const f = q.filters ?? {};
  const cutoff = cutoffOf(f);
  return (r) => {
    if (r.predefined || Date.parse(r.created) >= cutoff) return false;
    if (f.label?.length && !labelsMatch(r.labels, f.label)) return false;
    if (f['label!']?.length && f['label!'].some((l) => labelsMatch(r.labels, [l]))) return false;
    return true;
  };
}

/** The inodes of the network namespaces some process is in now. */
export function usedNetnsInodes(): Set<number> {
  const out = new Set<number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      out.add(statSync(`/proc/${pid}/ns/net`).ino);
    } catch {
      // gone meanwhile, or not ours to see
    }
  }
  return out;
}

/** Which sandboxes prune removes: created before the cutoff, their own namespace, no process in it. */
export function sandboxPrunable(used: Set<number>, q: PruneFilters): (sb: SandboxRecord) => boolean {
  const f = q.filters ?? {};
  const cutoff = cutoffOf(f);
  // sandboxes carry no labels: a label filter matches none
  const labelled = (f.label?.length ?? 0) > 0 || (f['label!']?.length ?? 0) > 0;
  return (sb) => {
    if (labelled || Date.parse(sb.created) >= cutoff || sb.mode === 'host' || sb.mode === 'container') return false;
    try {
      return !used.has(statSync(`/run/netns/${sb.netns}`).ino);
    } catch (e) {
      log.debug('a sandbox without its namespace file is left to reconcile, not prune', { sandbox: sb.name, err: e });
      return false;
    }
  };
}

/** Run the removals one after another; one refused meanwhile (it got used) is skipped. */
export async function removeEach(names: string[], remove: (name: string) => Promise<void>): Promise<string[]> {
  const done: string[] = [];
  for (const n of names) {
    try {
      await remove(n);
      done.push(n);
    } catch (e) {
      if (!(e instanceof CnmError)) throw e;
      log.debug('prune skipped one that changed meanwhile', { name: n, err: e });
    }
  }
  return done;
}
