/**
 * Revisions and watches for the stores that keep their own change log (LMDB and
 * memory). Each committing transaction that changed something writes, in the
 * same transaction, the next revision number (`meta/rev`) and one log entry
 * `rev/<16 digits>` listing the keys it changed; the entry RETAINED revisions
 * older is deleted at the same time, so the log stays bounded and a commit costs
 * one read, two writes and one delete more, whatever the log's length.
 *
 * Watchers read the log from the revision they were given. Commits of this
 * process notify them at once; commits of other processes sharing the file are
 * noticed by polling the revision (one read) while any watcher exists.
 */
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import type { StoreChange, StoreEvent, StoreReader, StoreTxn, StoreWatch } from './store.js';

/** How many revisions the log keeps. */
export const RETAINED = 10_000;
/** How often other processes' commits are looked for while someone watches. */
const POLL_MS = 100;

const REV_KEY = 'meta/rev';
const logKey = (rev: number) => `rev/${String(rev).padStart(16, '0')}`;
/** Prefixes of the log itself, which is never logged nor watched. */
const INTERNAL = ['meta/rev', 'rev/'];

type LogEntry = Array<[key: string, deleted: 0 | 1]>;

/** The revision a store is at, read inside or outside a transaction. */
export function currentRevision(r: Pick<StoreReader, 'get'>): number {
  return r.get<number>(REV_KEY) ?? 0;
}

/**
 * Write the revision and log entry of a transaction that changed `changes`
 * (key -> deleted). Called inside that transaction, just before it commits.
 */
export function appendRevision(tx: Pick<StoreTxn, 'get' | 'put' | 'del'>, changes: ReadonlyMap<string, boolean>): number | undefined {
  const entry: LogEntry = [];
  for (const [key, deleted] of changes) if (!INTERNAL.some((p) => key.startsWith(p))) entry.push([key, deleted ? 1 : 0]);
  if (entry.length === 0) return undefined;
  const rev = currentRevision(tx) + 1;
  tx.put(REV_KEY, rev);
  tx.put(logKey(rev), entry);
  if (rev > RETAINED) tx.del(logKey(rev - RETAINED));
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

  constructor(private readonly reader: () => StoreReader) {}

  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch {
    const r = this.reader();
    const now = currentRevision(r);
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
    let r: StoreReader;
    try {
      r = this.reader();
    } catch {
      return; // closed meanwhile: close() stops the watchers
    }
    const now = currentRevision(r);
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
