/**
 * Where a host's state lives, found after the options, the host netns and the
 * state dir are checked; nothing is opened or created (and lmdb-js not loaded).
 */
import { join } from 'node:path';
import { CnmError } from '../errors.js';
import { netnsFileExists } from '../net/netns-file.js';
import { type Checked, checkOptions } from '../ops/options.js';
import type { ControllerOptions } from '../options.js';
import { checkStateDir } from './state-dir.js';

/** Where a host's state lives by default. */
export const DEFAULT_STATE_DIR = '/var/lib/cnm';

export interface StoreLocation {
  checked: Checked;
  /** the state dir (every host's state) */
  base: string;
  /** this host's dir under it */
  hostDir: string;
}

export function locateStore(opts: ControllerOptions): StoreLocation {
  const checked = checkOptions(opts);
  const host = opts.hostNetns ?? null;
  // a plain lstat (the name is checked above): a read-only command then never loads the native addon
  if (host !== null && !netnsFileExists(host)) {
    throw new CnmError('ERR_NETNS_NOT_FOUND', `host netns ${host} does not exist (create it with "ip netns add ${host}")`, { netns: host });
  }
  const base = opts.stateDir ?? DEFAULT_STATE_DIR;
  // the base dir is checked too: it holds every host's state
  checkStateDir(base);
  return { checked, base, hostDir: join(base, host === null ? 'root' : `netns-${host}`) };
}
