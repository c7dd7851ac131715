/**
 * An in-memory {@link Store} for kernel-free tests and read-only views of a host
 * that has no state yet: a Map with copy-on-write transactions. A transaction
 * sees its own writes; they reach the map only when its callback returns, so a
 * callback that throws changes nothing. Values are deep-copied on write, as a
 * serializing store would. Revisions and watches work as in the LMDB store.
 */
import { CnmError } from '../errors.js';
import { Watchers, appendRevision } from './changelog.js';
import type { Store, StoreEvent, StoreReader, StoreScope, StoreTxn, StoreWatch } from './store.js';

const GONE = Symbol('deleted');
type Slot = unknown | typeof GONE;

/** Keys sort by their UTF-8 bytes, as LMDB (and etcd) sort them. */
export const byKey = ([a]: [string, unknown], [b]: [string, unknown]) => Buffer.compare(Buffer.from(a), Buffer.from(b));

class View implements StoreTxn {
  readonly writes = new Map<string, Slot>();
  readonly aborts: Array<() => void> = [];
  readonly before: Array<() => void> = [];
  constructor(private readonly base: StoreReader) {}

  onAbort(fn: () => void): void {
    this.aborts.push(fn);
  }

  beforeCommit(fn: () => void): void {
    this.before.push(fn);
  }

  get<T>(key: string): T | undefined {
    if (this.writes.has(key)) {
      const v = this.writes.get(key);
      return v === GONE ? undefined : (structuredClone(v) as T);
    }
    return this.base.get<T>(key);
  }

  put(key: string, value: unknown): void {
    this.writes.set(key, structuredClone(value));
  }

  del(key: string): void {
    this.writes.set(key, GONE);
  }

  range<T>(prefix: string): Array<[string, T]> {
    const merged = new Map<string, unknown>(this.base.range<T>(prefix));
    for (const [k, v] of this.writes) {
      if (!k.startsWith(prefix)) continue;
      if (v === GONE) merged.delete(k);
      else merged.set(k, structuredClone(v));
    }
    return ([...merged] as Array<[string, T]>).sort(byKey);
  }
}

export class MemoryStore implements Store {
  private readonly data = new Map<string, unknown>();
  private rev = 0;
  private closed = false;
  private readonly watchers = new Watchers(() => this.reader());

  constructor(readonly scope: StoreScope = 'local') {}

  private reader(): this {
    if (this.closed) throw new CnmError('ERR_CLOSED', 'the store is closed: open a new one');
    return this;
  }

  /** Number of keys held (for tests). */
  get size(): number {
    return this.data.size;
  }

  get<T>(key: string): T | undefined {
    this.reader();
    return this.data.has(key) ? (structuredClone(this.data.get(key)) as T) : undefined;
  }

  range<T>(prefix: string): Array<[string, T]> {
    this.reader();
    const out: Array<[string, T]> = [];
    for (const [k, v] of this.data) if (k.startsWith(prefix)) out.push([k, structuredClone(v) as T]);
    return out.sort(byKey);
  }

  revision(): number {
    return this.reader().rev;
  }

  catchUp(): void {
    this.reader();
    this.watchers.deliver();
  }

  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch {
    this.reader();
    return this.watchers.watch(prefix, fromRevision, listener, onError);
  }

  async txn<T>(fn: (tx: StoreTxn) => T): Promise<T> {
    this.reader();
    const view = new View(this);
    let result: T;
    try {
      result = fn(view);
      for (const b of view.before) b();
    } catch (e) {
      for (const a of view.aborts) a();
      throw e;
    }
    const changes = new Map<string, boolean>();
    for (const [k, v] of view.writes) {
      if (v !== GONE) {
        this.data.set(k, v);
        changes.set(k, false);
      } else if (this.data.delete(k)) {
        // deleting what is not there changes nothing, and takes no revision
        changes.set(k, true);
      }
    }
    this.rev =
      appendRevision(
        {
          put: (k, v) => void this.data.set(k, structuredClone(v)),
          del: (k) => void this.data.delete(k),
        },
        this.rev,
        changes,
      ) ?? this.rev;
    if (changes.size > 0) queueMicrotask(() => this.watchers.deliver());
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchers.close();
  }
}
