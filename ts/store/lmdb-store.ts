/**
 * The local store on LMDB (lmdb-js): a memory-mapped B+tree with a single writer
 * lock shared by every process that opens the file, crash-safe commits and no
 * server — the role BoltDB plays in libnetwork.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type RootDatabase, open } from 'lmdb';
import { CnmError } from '../errors.js';
import type { Store, StoreTxn } from './store.js';
import { ensureStateDir } from './state-dir.js';

/** File name of the database inside a host's state directory. */
export const STORE_FILE = 'cnm.mdb';

/** LMDB's meta page magic (0xBEEFC0DE), at byte 24 of each of the two meta pages. */
const MAGIC = 0xbeefc0de;
const META_MAGIC_AT = 24;

/**
 * Look at the two meta pages before LMDB maps the file: a file cut short or
 * overwritten must stop cnm with a message naming it (LMDB itself may crash on
 * such a file), and must be left exactly as it is for the user to inspect.
 */
function checkHeader(path: string): void {
  const size = statSync(path).size;
  if (size === 0) return;
  const fail = (why: string) =>
    new CnmError('ERR_STORE', `store file ${path} is damaged (${why}); cnm will not touch it: move it away to start afresh, or restore a backup`, {
      value: path,
    });
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(size, 64 * 1024 + 64));
    readSync(fd, head, 0, head.length, 0);
    const magicAt = (off: number) => off + META_MAGIC_AT + 4 <= head.length && head.readUInt32LE(off + META_MAGIC_AT) === MAGIC;
    if (!magicAt(0)) throw fail('no LMDB header');
    const second = [4096, 8192, 16384, 32768, 65536].find((ps) => magicAt(ps));
    if (second === undefined) throw fail(`truncated to ${size} bytes, or its second meta page is overwritten`);
  } finally {
    closeSync(fd);
  }
}

export class LmdbStore implements Store {
  private readonly db: RootDatabase;
  readonly path: string;

  private constructor(db: RootDatabase, path: string) {
    this.db = db;
    this.path = path;
  }

  static open(dir: string): LmdbStore {
    ensureStateDir(dir);
    const path = join(dir, STORE_FILE);
    if (existsSync(path)) checkHeader(path);
    let db: RootDatabase;
    try {
      db = open({ path, compression: false, noSubdir: true, maxReaders: 256, noMetaSync: true } as Parameters<typeof open>[0]);
      // touch it once so that corruption shows here, not in the middle of an operation
      db.getKeysCount({ limit: 1 } as never);
    } catch (e) {
      throw new CnmError('ERR_STORE', `cannot open store file ${path}: ${(e as Error).message}; it may be damaged — move it away to start afresh`, {
        value: path,
      });
    }
    return new LmdbStore(db, path);
  }

  get<T>(key: string): T | undefined {
    return this.db.get(key) as T | undefined;
  }

  put(key: string, value: unknown): void {
    this.txn((tx) => tx.put(key, value));
  }

  del(key: string): void {
    this.txn((tx) => tx.del(key));
  }

  onAbort(): void {}

  range<T>(prefix: string): Array<[string, T]> {
    const out: Array<[string, T]> = [];
    for (const { key, value } of this.db.getRange({ start: prefix, end: `${prefix}\uffff` })) {
      out.push([key as string, value as T]);
    }
    return out;
  }

  private readonly pending = new Set<Promise<unknown>>();

  txnLater(fn: (tx: StoreTxn) => void): void {
    const aborts: Array<() => void> = [];
    const p = this.db
      .transaction(() => fn(this.txView(true, aborts)))
      .catch(() => {
        for (const a of aborts) a();
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  async flushed(): Promise<void> {
    await Promise.all(this.pending);
  }

  /** inside an async transaction callback lmdb wants put/remove, inside a sync one putSync/removeSync */
  private txView(background = false, aborts?: Array<() => void>): StoreTxn {
    const db = this.db;
    return {
      onAbort: (fn) => {
        aborts?.push(fn);
      },
      get: <V>(key: string) => db.get(key) as V | undefined,
      put: (key, value) => {
        if (background) void db.put(key, value as never);
        else db.putSync(key, value as never);
      },
      del: (key) => {
        if (background) void db.remove(key);
        else db.removeSync(key);
      },
      range: <V>(prefix: string) => this.range<V>(prefix),
    };
  }

  txn<T>(fn: (tx: StoreTxn) => T): T {
    const aborts: Array<() => void> = [];
    const tx = this.txView(false, aborts);
    try {
      return this.db.transactionSync(() => fn(tx));
    } catch (e) {
      for (const a of aborts) a();
      if (e instanceof CnmError) throw e;
      throw new CnmError('ERR_STORE', `store ${this.path}: ${(e as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await this.flushed();
    await this.db.close();
  }
}
