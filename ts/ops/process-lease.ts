/**
 * The process lease: a key this process holds while its kernel work may run
 * ahead of its records. A connect's join may start before the transaction that
 * records its endpoint commits, so that the commit's disk flush overlaps the
 * kernel work (endpoints.ts); should the process die in between, the kernel
 * holds a link that no record names and no owner marks as unfinished. The
 * lease, committed by an earlier transaction, is that mark: a dead process's
 * lease makes the next command reconcile (reconcile-needed.ts), and the
 * drivers' repair removes such links. It is written by the first transaction
 * after a connect asks for it (that connect itself keeps the record first),
 * and dropped by close().
 */
import { type Owner, currentOwner, isAlive } from '../owner.js';
import type { StoreReader, StoreTxn } from '../store/store.js';

export const LEASE_PREFIX = 'lease/';

export interface LeaseRecord {
  owner: Owner;
}

export class ProcessLease {
  private wanted = false;
  private writing = false;
  private holding = false;

  /** This process's lease key. */
  static key(owner: Owner = currentOwner()): string {
    return `${LEASE_PREFIX}${owner.pid}-${owner.start}`;
  }

  /** The keys of leases whose process is dead. */
  static dead(store: StoreReader): string[] {
    return store
      .range<LeaseRecord>(LEASE_PREFIX)
      .filter(([, r]) => !isAlive(r.owner))
      .map(([k]) => k);
  }

  /** Whether the lease is committed: kernel work may then run ahead of its record. */
  get held(): boolean {
    return this.holding;
  }

  /** Ask for the lease: the next transaction of this process writes it. */
  want(): void {
    this.wanted = true;
  }

  /** Inside every transaction of this process (the store's prelude). */
  applyIn(tx: StoreTxn): void {
    if (!this.wanted || this.holding || this.writing) return;
    tx.put(ProcessLease.key(), { owner: currentOwner() } satisfies LeaseRecord);
    this.writing = true;
    tx.onAbort(() => {
      this.writing = false;
    });
  }

  /** After every committed transaction of this process. */
  committed(): void {
    if (!this.writing) return;
    this.writing = false;
    this.holding = true;
  }

  /** Give the lease up (close): no kernel work of this process is ahead of its records any more. */
  async release(write: (fn: (tx: StoreTxn) => void) => Promise<void>): Promise<void> {
    this.wanted = false;
    if (!this.holding) return;
    await write((tx) => tx.del(ProcessLease.key()));
    this.holding = false;
  }
}
