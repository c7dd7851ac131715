/**
 * Endpoint commit marks, written by group commit. A connect records its endpoint
 * as pending before the kernel work, and active after it. Each durable commit
 * costs a disk flush that the next one waits for (about 0.2 ms here), so the
 * active mark does not get a transaction of its own: it is queued and written by
 * the next transaction this process makes (typically the next operation's
 * reservation), or by one of its own on the next turn of the event loop when
 * nothing else comes. A transaction that does not commit gives its marks back to
 * the queue; a mark whose write keeps failing is logged and retried, and close()
 * writes what is left.
 *
 * Until its mark lands an endpoint is pending with a live owner, which every
 * reader treats as in use. If the process dies first, reconcile asks the driver
 * whether the endpoint's kernel side is complete and then finishes it (the
 * connect may have been reported done) or rolls it back.
 */
import { endpointEvent } from '../events.js';
import { fault } from '../fault.js';
import { log } from '../log.js';
import { keys } from '../records.js';
import type { StoreTxn } from '../store/store.js';
import type { EndpointRecord } from '../types.js';

const RETRY_MS = [10, 50, 200, 1000];

export class CommitMarks {
  private readonly queued = new Map<string, EndpointRecord>();
  private scheduled = false;
  private retries = 0;
  private timer: NodeJS.Timeout | undefined;

  /** @param write runs a transaction of this process's store (which applies the queued marks itself) */
  constructor(private readonly write: (fn: (tx: StoreTxn) => void) => Promise<void>) {}

  /** Queue the active mark of an endpoint whose kernel work is done. */
  add(ep: EndpointRecord): void {
    this.queued.set(keys.ep(ep.networkId, ep.id), ep);
    this.schedule(0);
  }

  /** How many marks wait to be written. */
  get size(): number {
    return this.queued.size;
  }

  /**
   * Write the queued marks inside `tx`, a transaction of this process about to
   * commit; if it does not, they go back to the queue. An endpoint removed
   * meanwhile keeps no mark.
   */
  applyIn(tx: StoreTxn): void {
    if (this.queued.size === 0) return;
    const batch = [...this.queued];
    this.queued.clear();
    // `failed`: writing a mark failed, so wait more each time; else the carrying
    // transaction was refused for its own reasons (a conflict): the marks go in the
    // next one, soon, whatever happened to earlier ones
    const requeue = (items: Array<[string, EndpointRecord]>, failed: boolean) => {
      for (const [k, ep] of items) if (!this.queued.has(k)) this.queued.set(k, ep);
      this.schedule(failed ? RETRY_MS[Math.min(this.retries++, RETRY_MS.length - 1)]! : 0);
    };
    tx.onAbort(() => requeue(batch, false));
    for (let i = 0; i < batch.length; i++) {
      const [key, ep] = batch[i]!;
      try {
        fault('connect.mark');
        const cur = tx.get<EndpointRecord>(key);
        if (cur?.state !== 'pending') continue;
        const active: EndpointRecord = { ...cur, state: 'active' };
        delete active.owner;
        tx.put(key, active);
        endpointEvent(tx, 'connect', active);
      } catch (e) {
        // a mark that cannot be written must not sink the transaction carrying it
        log.warn('writing an endpoint commit mark failed; it stays queued', { endpoint: ep.id, err: e });
        requeue(batch.slice(i), true);
        return;
      }
    }
  }

  /** Write what is queued now; true when nothing is left queued (a failure is logged and retried later). */
  async flush(): Promise<boolean> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.scheduled = false;
    if (this.queued.size === 0) return true;
    try {
      // the store applies the queue to every transaction of this process, this one too
      await this.write(() => undefined);
    } catch (e) {
      log.warn(`writing ${this.queued.size} endpoint commit mark(s) failed; they stay queued`, { err: e });
    }
    if (this.queued.size === 0) this.retries = 0;
    return this.queued.size === 0;
  }

  private schedule(ms: number): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      void this.flush();
    };
    if (ms === 0) setImmediate(run);
    else {
      this.timer = setTimeout(run, ms);
      this.timer.unref();
    }
  }
}
