/**
 * The state directory: created 0700, refused when it is a symlink or writable by
 * others, since whoever can write it can make cnm program the kernel.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { CnmError } from '../errors.js';

function checkPath(dir: string): void {
  if (typeof dir !== 'string' || dir === '' || dir.includes('\0')) {
    throw new CnmError('ERR_INVALID_ARGUMENT', `state dir must be a non-empty path, got ${JSON.stringify(dir)}`, { value: dir });
  }
}

/** Check an existing state dir without creating anything; a missing one is fine. */
export function checkStateDir(dir: string): void {
  checkPath(dir);
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new CnmError('ERR_PERMISSION', `cannot look at state dir ${dir}: ${(e as Error).message}`, { value: dir }, { cause: e });
  }
  if (st.isSymbolicLink()) {
    throw new CnmError('ERR_PERMISSION', `state dir ${dir} is a symlink; point --state-dir at the real directory`, { value: dir });
  }
  if (!st.isDirectory()) {
    throw new CnmError('ERR_INVALID_ARGUMENT', `state dir ${dir} is not a directory`, { value: dir });
  }
  if ((st.mode & 0o002) !== 0) {
    throw new CnmError('ERR_PERMISSION', `state dir ${dir} is world-writable; run chmod 700 ${dir}`, { value: dir });
  }
}

/** Create the state dir (0700) if needed, then check it. */
export function ensureStateDir(dir: string): void {
  checkPath(dir);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new CnmError('ERR_PERMISSION', `cannot create state dir ${dir}: ${(e as Error).message}`, { value: dir }, { cause: e });
  }
  checkStateDir(dir);
}
