/**
 * The persistence interface, libnetwork's datastore: one per scope. `local`
 * holds what belongs to this host (LMDB under the state dir); `global` holds
 * what a cluster shares (a remote, transactional store such as etcd).
 *
 * Keys are strings grouped by prefix ("net/", "ep/", "sb/", "ipam/…"); values are
 * JSON-compatible records.
 *
 * - Reads outside a transaction (`get`, `range`) are synchronous: they show what
 *   this host sees. LMDB answers them from its file; a remote backend answers
 *   them from the mirror its watches keep.
 * - `txn(fn)` runs `fn` as one atomic, serializable transaction. `fn` is
 *   synchronous and must have no effects other than through `tx` (and
 *   `onAbort` hooks): a backend that validates its reads at commit
 *   (compare-and-swap on every key read, as etcd's STM does) may run it again.
 *   Waiting for another writer, in this process or another, never blocks the
 *   event loop.
 * - Every committed transaction that changes something gets the next revision;
 *   `watch` delivers the changes under a prefix after a given revision, so a
 *   reader that was away catches up without reloading everything.
 */
import type { CnmError } from '../errors.js';

export type StoreScope = 'local' | 'global';

export interface StoreReader {
  get<T>(key: string): T | undefined;
  /** entries whose key starts with prefix, in key order */
  range<T>(prefix: string): Array<[string, T]>;
}

/** How a key is written. */
export interface PutOptions {
  /**
   * Bound to this host's lease in the cluster store: the key goes when the host
   * stops renewing it (it died, or was cut off longer than the lease's TTL).
   * Local stores keep it like any other key.
   */
  ephemeral?: boolean;
}

export interface StoreTxn extends StoreReader {
  put(key: string, value: unknown, opts?: PutOptions): void;
  del(key: string): void;
  /**
   * Run fn if this transaction does not commit, so that caches filled during it
   * (the IPAM bitmaps) can be dropped.
   */
  onAbort(fn: () => void): void;
  /**
   * Run fn once the transaction's writes are final, just before its commit, so
   * that work outside the store (the kernel's) overlaps the commit's disk flush.
   * The commit may still fail after it: the `onAbort` hooks then run as usual,
   * and undoing what fn started is the caller's. Only backends that run the
   * callback once offer it (not one that may run it again at commit).
   */
  beforeCommit?(fn: () => void): void;
}

/** One key changed by a transaction. */
export interface StoreChange {
  key: string;
  deleted: boolean;
}

/** What one revision changed (only the keys under the watched prefix). */
export interface StoreEvent {
  revision: number;
  changes: StoreChange[];
}

export interface StoreWatch {
  /** stop delivering events */
  close(): void;
}

export interface Store extends StoreReader {
  readonly scope: StoreScope;
  /** run fn atomically; resolves once the transaction has committed */
  txn<T>(fn: (tx: StoreTxn) => T): Promise<T>;
  /** the revision of the last committed change (0 for an empty store) */
  revision(): number;
  /**
   * Deliver, in order, every revision after `fromRevision` that changed a key
   * under `prefix`, then each new one as it commits (from any process). Throws
   * ERR_STORE when `fromRevision` is older than the revisions the store keeps;
   * a watcher that falls that far behind later is stopped and `onError` gets
   * ERR_STORE (reload, then watch again from the current revision).
   */
  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch;
  /**
   * Deliver to the watchers now what other processes committed, instead of at
   * the next poll (a process told that a commit happened elsewhere).
   */
  catchUp?(): void;
  /** Throw ERR_NO_SPACE when a write transaction would find no room (stores on a local file system). */
  ensureRoom?(): void;
  /** Read every record and check it, changing nothing (undefined from a store that keeps no checksums). */
  verify?(): StoreVerdict | undefined;
  close(): Promise<void>;
}

/** What a store's `verify` found: how many records it read and which are damaged. */
export interface StoreVerdict {
  /** the file checked */
  file: string;
  records: number;
  damaged: Array<{ key: string; why: string }>;
}
