/**
 * Room on the state dir's file system before a write transaction. LMDB grows
 * its file by writing pages past its end; when that write fails for want of
 * space, lmdb-js (3.5) reports it through a message buffer too small for the
 * message and corrupts its heap: the process crashes soon after (measured on a
 * full tmpfs: SIGSEGV or SIGABRT). So a transaction does not start unless the
 * file system has room for far more than any transaction of cnm writes, and a
 * full disk is an ERR_NO_SPACE that changed nothing.
 */
import { statfsSync } from 'node:fs';
import { CnmError } from '../errors.js';

/** What a write transaction needs free: a transaction of cnm dirties far fewer pages (a 1 000-record one about 1 MiB). */
export const RESERVE_BYTES = 4 * 1024 * 1024;

/** Throws ERR_NO_SPACE unless the file system of `dir` has `RESERVE_BYTES` + `extra` free for this user. */
export function ensureRoom(dir: string, extra = 0): void {
  let free: number;
  try {
    const s = statfsSync(dir);
    free = s.bavail * s.bsize;
  } catch {
    // no answer (a file system without statfs): the write itself will tell
    return;
  }
  const need = RESERVE_BYTES + extra;
  if (free >= need) return;
  throw new CnmError(
    'ERR_NO_SPACE',
    `no space left for the store under ${dir}: ${Math.floor(free / 1024)} KiB free, cnm needs ${Math.ceil(need / 1024)} KiB free before it writes; free some space and try again (nothing was changed)`,
    { value: dir },
  );
}

/** Whether an error of LMDB's is the file system being full. */
export function isNoSpace(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  return err?.code === 28 || err?.code === 'ENOSPC' || (typeof err?.message === 'string' && err.message.includes('No space left on device'));
}
