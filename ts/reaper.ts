/**
 * Retired links, deleted in bulk off the caller's path.
 *
 * Deleting a veth pair or a bridge makes the kernel wait for RCU (16–25 ms each,
 * one after the other). A detach, sandbox rm or network rm instead retires the
 * links (netcore `retireLink`: down, out of their bridge, addresses removed,
 * renamed off their names, in the grave group) in well under a millisecond, and
 * this reaper deletes every retired link of the host netns in one request a
 * moment later, on a socket of its own (`reapLinks`: one wait for all of them),
 * so a burst of removals costs one wait.
 *
 * The commit of each removal writes this process's grave key; the reaper deletes
 * it once it has reaped. A process that dies in between leaves the key with a
 * dead owner, which makes the next command reconcile, and reconcile reaps.
 */
import { log } from './log.js';
import { native } from './native.js';
import { type Owner, currentOwner } from './owner.js';
import type { StoreTxn } from './store/store.js';

/**
 * A reap waits for this long a quiet spell (no retire), at most MAX_WAIT_MS after
 * the first retire it covers: deleting a bridge holds the kernel's rtnl lock for
 * part of its ~40 ms, which the operations of a burst would otherwise queue
 * behind, one reap after another.
 */
const GATHER_MS = 50;
const MAX_WAIT_MS = 500;
/** How long close() waits for the last reap. */
const FLUSH_LIMIT_MS = 10_000;
/** The group netcore puts retired links in ("cnmg"). */
export const GRAVE_GROUP = 0x636e6d67;
/** The group of retired links deleted one at a time ("cnmh": bridges, see netcore's retire.rs). */
export const GRAVE_ALONE_GROUP = 0x636e6d68;

/** Whether a link's group says it is retired (the reaper deletes it). */
export function isGrave(group: number | null | undefined): boolean {
  return group === GRAVE_GROUP || group === GRAVE_ALONE_GROUP;
}
export const GRAVE_PREFIX = 'grave/';

export interface GraveRecord {
  owner: Owner;
}

export class Reaper {
  private timer: NodeJS.Timeout | undefined;
  /** when the first retire the next reap covers came */
  private since = 0;
  private running: Promise<void> | undefined;
  private again = false;
  private noted = false;

  /** @param write runs a transaction of this process's store */
  constructor(
    private readonly hostNetns: string | null,
    private readonly write: (fn: (tx: StoreTxn) => void) => Promise<void>,
  ) {}

  /** This process's grave key. */
  static key(owner: Owner = currentOwner()): string {
    return `${GRAVE_PREFIX}${owner.pid}-${owner.start}`;
  }

  /**
   * Inside the commit of an operation that retired links: they wait for this
   * process's reap, which runs a moment after (the commit is synchronous).
   */
  note(tx: StoreTxn): void {
    tx.put(Reaper.key(), { owner: currentOwner() } satisfies GraveRecord);
    this.noted = true;
    this.schedule();
  }

  /** Reap soon: retires of a burst go together. */
  schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    const now = Date.now();
    if (this.timer === undefined) this.since = now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(GATHER_MS, this.since + MAX_WAIT_MS - now));
    this.timer = setTimeout(() => void this.start(), wait).unref();
  }

  private start(): Promise<void> {
    this.timer = undefined;
    this.running ??= this.run().finally(() => {
      this.running = undefined;
      if (this.again) this.schedule();
    });
    return this.running;
  }

  private async run(): Promise<void> {
    this.again = false;
    const noted = this.noted;
    this.noted = false;
    try {
      await native.reapLinks(this.hostNetns);
    } catch (e) {
      // left in the grave group, with the key: the next reap or reconcile deletes them
      log.warn('deleting retired links failed; they stay down and out of use until the next reap', { netns: this.hostNetns, err: e });
      this.noted ||= noted;
      return;
    }
    // links retired meanwhile keep the key for the next round
    if (noted && !this.again && !this.noted) {
      await this.write((tx) => tx.del(Reaper.key())).catch((e: unknown) => log.warn('clearing the grave key failed; the next reconcile does', { err: e }));
    }
  }

  /**
   * Reap now what waits (close): resolves once done, or after `limitMs` with a
   * warning (the grave key stays: the next reconcile deletes what is left).
   */
  async flush(limitMs = FLUSH_LIMIT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), limitMs).unref();
    });
    const drained = (async () => {
      while (this.timer || this.running) {
        if (this.running) {
          await this.running;
        } else {
          clearTimeout(this.timer);
          await this.start();
        }
      }
    })();
    try {
      if ((await Promise.race([drained, limit])) === 'late') {
        log.warn(`retired links not deleted after ${limitMs} ms; the next reconcile deletes them`, { netns: this.hostNetns });
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A name for a retired link: unique in its netns, 15 bytes at most. */
export function graveName(): string {
  return `cnmg${Math.floor(Math.random() * 0xffffffffff)
    .toString(16)
    .padStart(10, '0')}`;
}
