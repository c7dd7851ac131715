/**
 * Revisions and watches for the stores that keep their own change log (LMDB and
 * memory). Each committing transaction that changed something writes, in the
 * same transaction, one log entry `rev/<16 digits>` listing the keys it changed:
 * the store's revision is the number of its last entry. Every PRUNE_EVERY
 * revisions the entries older than the last RETAINED go, so the log stays
 * bounded and a commit costs one more write (one more page), whatever the log's
 * length.
 *
 * Watchers read the log from the revision they were given. Commits of this
 * process notify them at once; commits of other processes sharing the file are
 * noticed by polling the revision (one read) while any watcher exists.
 */
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import type { StoreChange, StoreEvent, StoreReader, StoreTxn, StoreWatch } from './store.js';

/** How many revisions the log keeps at least. */
export const RETAINED = 10_000;
/** How often the revisions older than RETAINED are deleted (so it keeps fewer than RETAINED + PRUNE_EVERY). */
export const PRUNE_EVERY = 100;
/** How often other processes' commits are looked for while someone watches. */
const POLL_MS = 100;

/** The log's keys; the log itself is never logged nor watched. */
export const LOG_PREFIX = 'rev/';
/** The key of a revision's log entry. */
export const logKey = (rev: number) => `${LOG_PREFIX}${String(rev).padStart(16, '0')}`;

/** The revision a log entry's key stands for. */
export function revisionOfKey(key: string): number {
  return Number(key.slice(LOG_PREFIX.length));
}

type LogEntry = Array<[key: string, deleted: 0 | 1]>;

/** A store as its watchers read it: entries by key, and its current revision. */
export type LogReader = Pick<StoreReader, 'get'> & { revision(): number };

/**
 * Write the log entry of a transaction that changed `changes` (key -> deleted),
 * the store being at revision `current`; returns the new revision. Called inside
 * that transaction, just before it commits.
 */
export function appendRevision(tx: Pick<StoreTxn, 'put' | 'del'>, current: number, changes: ReadonlyMap<string, boolean>): number | undefined {
  const entry: LogEntry = [];
  for (const [key, deleted] of changes) if (!key.startsWith(LOG_PREFIX)) entry.push([key, deleted ? 1 : 0]);
  if (entry.length === 0) return undefined;
  const rev = current + 1;
  tx.put(logKey(rev), entry);
  if (rev % PRUNE_EVERY === 0) {
    for (let r = Math.max(1, rev - RETAINED - PRUNE_EVERY + 1); r <= rev - RETAINED; r++) tx.del(logKey(r));
  }
  return rev;
}

interface Watcher {
  prefix: string;
  /** the last revision delivered */
  seen: number;
  listener: (e: StoreEvent) => void;
  onError?: (e: CnmError) => void;
}

function compacted(fromRevision: number, oldest: number, now: number): CnmError {
  return new CnmError('ERR_STORE', `revision ${fromRevision} is compacted: the store keeps revisions ${oldest} to ${now}; reload and watch from ${now}`, {
    value: fromRevision,
  });
}

/** The watchers of one store. */
export class Watchers {
  private readonly list = new Set<Watcher>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly reader: () => LogReader) {}

  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch {
    const r = this.reader();
    const now = r.revision();
    const oldest = Math.max(1, now - RETAINED + 1);
    if (fromRevision + 1 < oldest) throw compacted(fromRevision, oldest, now);
    // a revision not reached yet: only what comes after it is delivered
    const w: Watcher = { prefix, seen: fromRevision, listener, onError };
    this.list.add(w);
    if (!this.timer) {
      this.timer = setInterval(() => this.deliver(), POLL_MS);
      this.timer.unref();
    }
    // what happened since fromRevision comes first, asynchronously like every event
    queueMicrotask(() => this.deliver());
    return { close: () => this.remove(w) };
  }

  private remove(w: Watcher): void {
    this.list.delete(w);
    if (this.list.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Deliver every revision the watchers have not seen yet. */
  deliver(): void {
    if (this.list.size === 0) return;
    let r: LogReader;
    try {
      r = this.reader();
    } catch {
      return; // closed meanwhile: close() stops the watchers
    }
    const now = r.revision();
    for (const w of this.list) {
      while (w.seen < now && this.list.has(w)) {
        const rev = w.seen + 1;
        const entry = r.get<LogEntry>(logKey(rev));
        if (!entry) {
          // every revision has its entry until it is compacted: this watcher fell behind for good
          this.remove(w);
          const e = compacted(w.seen, Math.max(1, now - RETAINED + 1), now);
          if (w.onError) w.onError(e);
          else log.error('a store watch fell behind the change log and stopped', { prefix: w.prefix, err: e });
          break;
        }
        w.seen = rev;
        const changes: StoreChange[] = entry.filter(([k]) => k.startsWith(w.prefix)).map(([key, d]) => ({ key, deleted: d === 1 }));
        if (changes.length === 0) continue;
        try {
          w.listener({ revision: rev, changes });
        } catch (e) {
          log.error('store watch listener threw', { err: e, prefix: w.prefix, revision: rev });
        }
      }
    }
  }

  close(): void {
    this.list.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
