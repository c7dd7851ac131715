/**
 * A store whose backend can be replaced: the controller reads through a
 * read-only view (which creates nothing: no state dir, no file) until the first
 * operation that changes something opens the writable store in its place.
 * Watches follow the replacement, from the last revision they saw.
 */
import { MemoryStore } from './memory-store.js';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import type { Store, StoreEvent, StoreScope, StoreTxn, StoreVerdict, StoreWatch } from './store.js';

interface HandleWatch {
  prefix: string;
  seen: number;
  listener: (e: StoreEvent) => void;
  onError?: (e: CnmError) => void;
  inner: StoreWatch;
}

export class StoreHandle implements Store {
  private closed = false;
  private readonly watches = new Set<HandleWatch>();
  /** runs first in every transaction made through this handle (the queued commit marks) */
  prelude: ((tx: StoreTxn) => void) | undefined;
  /** runs after every transaction made through this handle has committed */
  postlude: (() => void) | undefined;

  constructor(private inner: Store) {}

  get scope(): StoreScope {
    return this.inner.scope;
  }

  /**
   * Close the current backend, then put the one `open` makes in its place (LMDB
   * does not take a second environment on one file in one process).
   */
  async replace(open: () => Store): Promise<void> {
    for (const w of this.watches) w.inner.close();
    await this.inner.close();
    this.inner = open();
    for (const w of this.watches) this.attach(w, Math.min(w.seen, this.inner.revision()));
  }

  /** Whether the backend is a file (a placeholder in memory stands for a host never set up). */
  persistent(): boolean {
    return !(this.inner instanceof MemoryStore);
  }

  private live(): Store {
    if (this.closed) throw new CnmError('ERR_CLOSED', 'the controller is closed: open a new one');
    return this.inner;
  }

  get<T>(key: string): T | undefined {
    return this.live().get<T>(key);
  }

  range<T>(prefix: string): Array<[string, T]> {
    return this.live().range<T>(prefix);
  }

  ensureRoom(): void {
    this.live().ensureRoom?.();
  }

  verify(): StoreVerdict | undefined {
    return this.live().verify?.();
  }

  async txn<T>(fn: (tx: StoreTxn) => T): Promise<T> {
    const prelude = this.prelude;
    const r = await (prelude === undefined
      ? this.live().txn(fn)
      : this.live().txn((tx) => {
          prelude(tx);
          return fn(tx);
        }));
    this.postlude?.();
    return r;
  }

  revision(): number {
    return this.live().revision();
  }

  catchUp(): void {
    this.live().catchUp?.();
  }

  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch {
    this.live();
    const w: HandleWatch = { prefix, seen: fromRevision, listener, onError, inner: { close: () => undefined } };
    this.attach(w, fromRevision);
    this.watches.add(w);
    return {
      close: () => {
        this.watches.delete(w);
        w.inner.close();
      },
    };
  }

  private attach(w: HandleWatch, from: number): void {
    w.inner = this.inner.watch(
      w.prefix,
      from,
      (e) => {
        w.seen = e.revision;
        w.listener(e);
      },
      (e) => {
        this.watches.delete(w);
        if (w.onError) w.onError(e);
        else log.error('a store watch fell behind the change log and stopped', { prefix: w.prefix, err: e });
      },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watches) w.inner.close();
    this.watches.clear();
    await this.inner.close();
  }
}
