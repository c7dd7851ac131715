/**
 * The writer lock of a state dir, taken around every LMDB write transaction so
 * that LMDB's own lock, which blocks the calling thread, is only ever taken
 * uncontended. A lock file (flock(2), held by the open file, released by the
 * kernel when the process dies) excludes other processes; in this process the
 * writers take turns in order before any of them touches the file, since two
 * waits on one open file would both succeed. `tryAcquire` never blocks;
 * `acquire` waits off the JS thread.
 */
import { native } from '../native.js';

export interface WriterLock {
  /** take the lock if it is free; never blocks */
  tryAcquire(): boolean;
  /** wait for the lock without blocking the event loop */
  acquire(): Promise<void>;
  release(): void;
  close(): void;
}

class FileWriterLock implements WriterLock {
  private held = false;
  private readonly waiting: Array<() => void> = [];
  private handle: number | undefined;

  constructor(path: string) {
    this.handle = native.lockFileOpen(path);
  }

  private file(): number {
    if (this.handle === undefined) throw new Error('writer lock used after close');
    return this.handle;
  }

  tryAcquire(): boolean {
    if (this.held) return false;
    if (!native.lockFileTry(this.file())) return false;
    this.held = true;
    return true;
  }

  async acquire(): Promise<void> {
    // this process's turn first, in order
    if (this.held || this.waiting.length > 0) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.held = true;
    try {
      if (!native.lockFileTry(this.file())) await native.lockFileWait(this.file());
    } catch (e) {
      this.release();
      throw e;
    }
  }

  release(): void {
    if (this.handle !== undefined) native.lockFileUnlock(this.handle);
    const next = this.waiting.shift();
    if (next) next();
    else this.held = false;
  }

  close(): void {
    if (this.handle !== undefined) native.lockFileClose(this.handle);
    this.handle = undefined;
  }
}

/** The writer lock for the lock file at `path` (created 0600 if missing). */
export function writerLock(path: string): WriterLock {
  return new FileWriterLock(path);
}
