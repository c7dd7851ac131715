/**
 * An in-memory {@link Store} for kernel-free tests: a sorted-on-read Map with
 * copy-on-write transactions. A transaction sees its own writes; they reach the
 * map only when its callback returns, so a callback that throws changes nothing.
 * Values are deep-copied on write, as a serializing store would.
 */
import type { Store, StoreTxn } from './store.js';

const GONE = Symbol('deleted');
type Slot = unknown | typeof GONE;

class View implements StoreTxn {
  readonly writes = new Map<string, Slot>();
  readonly aborts: Array<() => void> = [];
  constructor(private readonly base: StoreTxn) {}

  onAbort(fn: () => void): void {
    this.aborts.push(fn);
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
    return [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) as Array<[string, T]>;
  }
}

export class MemoryStore implements Store {
  private readonly data = new Map<string, unknown>();
  /** the innermost open transaction; nested ones stack on it */
  private current: StoreTxn | undefined;

  private readonly committed: StoreTxn = {
    get: <T>(key: string) => (this.data.has(key) ? (structuredClone(this.data.get(key)) as T) : undefined),
    put: (key, value) => void this.data.set(key, structuredClone(value)),
    del: (key) => void this.data.delete(key),
    onAbort: () => undefined,
    range: <T>(prefix: string) => {
      const out: Array<[string, T]> = [];
      for (const [k, v] of this.data) if (k.startsWith(prefix)) out.push([k, structuredClone(v) as T]);
      return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    },
  };

  /** Number of keys held (for tests). */
  get size(): number {
    return this.data.size;
  }

  get<T>(key: string): T | undefined {
    return (this.current ?? this.committed).get<T>(key);
  }

  put(key: string, value: unknown): void {
    this.txn((tx) => tx.put(key, value));
  }

  del(key: string): void {
    this.txn((tx) => tx.del(key));
  }

  range<T>(prefix: string): Array<[string, T]> {
    return (this.current ?? this.committed).range<T>(prefix);
  }

  onAbort(fn: () => void): void {
    this.current?.onAbort(fn);
  }

  txn<T>(fn: (tx: StoreTxn) => T): T {
    const parent = this.current ?? this.committed;
    const view = new View(parent);
    this.current = view;
    let result: T;
    try {
      result = fn(view);
    } catch (e) {
      for (const a of view.aborts) a();
      throw e;
    } finally {
      this.current = parent === this.committed ? undefined : parent;
    }
    // an enclosing transaction that fails later undoes this one too
    for (const a of view.aborts) parent.onAbort(a);
    for (const [k, v] of view.writes) {
      if (v === GONE) parent.del(k);
      else parent.put(k, v);
    }
    return result;
  }

  txnLater(fn: (tx: StoreTxn) => void): void {
    try {
      this.txn(fn);
    } catch {
      // like LmdbStore: a failed background transaction is dropped
    }
  }

  async flushed(): Promise<void> {}

  async close(): Promise<void> {}
}
