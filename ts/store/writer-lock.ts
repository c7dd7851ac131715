/**
 * The writer lock of a state dir, taken around every LMDB write transaction so
 * that LMDB's own lock, which blocks the calling thread, is only ever taken
 * uncontended. `tryAcquire` never blocks; `acquire` waits off the JS thread.
 */
export interface WriterLock {
  /** take the lock if it is free; never blocks */
  tryAcquire(): boolean;
  /** wait for the lock without blocking the event loop */
  acquire(): Promise<void>;
  release(): void;
  close(): void;
}

/** Serializes this process's writers; waiters queue in order. */
class InProcessLock implements WriterLock {
  private held = false;
  private readonly waiting: Array<() => void> = [];

  tryAcquire(): boolean {
    if (this.held) return false;
    this.held = true;
    return true;
  }

  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.held = false;
  }

  close(): void {}
}

/** The writer lock for the lock file at `path`. */
export function writerLock(_path: string): WriterLock {
  return new InProcessLock();
}
