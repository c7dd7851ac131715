/**
 * The persistence interface the controller uses. Keys are strings grouped by
 * prefix ("net/", "ep/", "sb/", "ipam/…"); values are JSON-compatible records.
 * `txn` runs its callback as one atomic transaction that excludes every other
 * writer, in this process and in any other process sharing the state dir.
 */
export interface StoreTxn {
  get<T>(key: string): T | undefined;
  put(key: string, value: unknown): void;
  del(key: string): void;
  /** entries whose key starts with prefix, in key order */
  range<T>(prefix: string): Array<[string, T]>;
  /**
   * Run fn if this transaction is rolled back, so that caches filled during it
   * (the IPAM bitmaps) can be dropped. Outside a transaction it does nothing.
   */
  onAbort(fn: () => void): void;
}

export interface Store extends StoreTxn {
  txn<T>(fn: (tx: StoreTxn) => T): T;
  /**
   * Queue a transaction that runs in the background, in order, without making the
   * caller wait for the disk. For marking work committed on the hot path: the fn
   * re-reads what it changes, so it never resurrects a record removed meanwhile.
   */
  txnLater(fn: (tx: StoreTxn) => void): void;
  /** wait for every queued background transaction */
  flushed(): Promise<void>;
  close(): Promise<void>;
}
