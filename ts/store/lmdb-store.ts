/**
 * The local store on LMDB (lmdb-js): a memory-mapped B+tree with a single writer
 * lock shared by every process that opens the file, crash-safe commits and no
 * server — the role BoltDB plays in libnetwork.
 *
 * A transaction runs synchronously once it holds the writer lock (0.15 ms on
 * this kind of machine, about half the cost of lmdb-js's asynchronous
 * transactions, which hop to a writer thread and back). Every cnm process takes
 * the state dir's writer lock (see writer-lock.ts) before LMDB's own, without
 * blocking when it is free and off the event loop when another process holds it,
 * so LMDB's lock is never waited for on the JS thread.
 */
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { RootDatabase } from 'lmdb';
import { CnmError, invalid } from '../errors.js';
import { log } from '../log.js';
import { LOG_PREFIX, Watchers, appendRevision, logKey, revisionOfKey } from './changelog.js';
import type { Store, StoreEvent, StoreTxn, StoreVerdict, StoreWatch } from './store.js';
import { ensureStateDir } from './state-dir.js';
import { MAGIC, META_MAGIC_AT, PAGE_SIZES, STORE_FILE, readHead } from './lmdb-meta.js';
import { ensureRoom, isNoSpace } from './free-space.js';
import { CHECKSUMMED, FORMAT_KEY, RecordCodec, RecordDamage, type Stored, sameKey } from './record-codec.js';
import { type WriterLock, writerLock } from './writer-lock.js';

// lmdb-js's CommonJS build: one bundled file, loaded in about half the time of
// its ES module graph (which counts in every `cnm` command's start-up). The
// native addon is the same; only this module opens databases.
const { open } = createRequire(import.meta.url)('lmdb') as typeof import('lmdb');

export { STORE_FILE } from './lmdb-meta.js';

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
    const head = readHead(fd, size);
    const magicAt = (off: number) => off + META_MAGIC_AT + 4 <= head.length && head.readUInt32LE(off + META_MAGIC_AT) === MAGIC;
    if (!magicAt(0)) throw fail('no LMDB header');
    const second = PAGE_SIZES.find((ps) => magicAt(ps));
    if (second === undefined) throw fail(`truncated to ${size} bytes, or its second meta page is overwritten`);
  } finally {
    closeSync(fd);
  }
}

/**
 * The first key after every key that starts with `prefix` (keys sort by their
 * UTF-8 bytes): the prefix with its last character moved one up.
 */
function prefixEnd(prefix: string): string {
  const last = prefix.codePointAt(prefix.length - 1)!;
  const cut = last > 0xffff ? 2 : 1;
  return prefix.slice(0, prefix.length - cut) + String.fromCodePoint(last + 1);
}

/** LMDB's largest key (lmdb-js builds with 1 978 bytes), less room for the key's encoding. */
const MAX_KEY_BYTES = 1900;

function fits(key: string): boolean {
  return key.length <= MAX_KEY_BYTES / 3 || Buffer.byteLength(key) <= MAX_KEY_BYTES;
}

/** A record under a key LMDB cannot take: the name in it was not checked for length (a bug), refused as bad input. */
function fitOrRefuse(key: string): void {
  if (!fits(key)) throw invalid(`a name is too long to be stored (${Buffer.byteLength(key)} bytes in its key; at most ${MAX_KEY_BYTES})`, key.slice(0, 100));
}

/** Marks an error thrown by a transaction's own callback, as opposed to LMDB's. */
class FromCallback {
  constructor(readonly error: unknown) {}
}

export class LmdbStore implements Store {
  readonly scope = 'local' as const;
  readonly path: string;
  private closed = false;
  private readonly watchers = new Watchers(() => this.reader());

  private readonly db: RootDatabase;

  private constructor(
    path: string,
    readOnly: boolean,
    private readonly lock: WriterLock | null,
  ) {
    this.path = path;
    this.codec = new RecordCodec(path);
    this.db = LmdbStore.openDb(path, readOnly, this.codec);
    try {
      this.codec.strict = this.read(FORMAT_KEY) === CHECKSUMMED;
    } catch (e) {
      void this.db.close();
      throw e;
    }
  }

  private readonly codec: RecordCodec;

  /** Open (creating it and its directory if needed) the store of a host's state dir. */
  static open(dir: string): LmdbStore {
    ensureStateDir(dir);
    return new LmdbStore(join(dir, STORE_FILE), false, writerLock(join(dir, 'writer.lock')));
  }

  /**
   * Open an existing store for reading only, creating nothing: undefined when the
   * state dir holds no store yet. Its `txn` refuses to write.
   */
  static openReadOnly(dir: string): LmdbStore | undefined {
    const path = join(dir, STORE_FILE);
    if (!existsSync(path) || !existsSync(`${path}-lock`)) return undefined;
    return new LmdbStore(path, true, null);
  }

  private static openDb(path: string, readOnly: boolean, encoder: RecordCodec): RootDatabase {
    if (existsSync(path)) checkHeader(path);
    try {
      const db = open({ path, compression: false, noSubdir: true, maxReaders: 256, noMetaSync: true, readOnly, encoder } as Parameters<typeof open>[0]);
      // touch it once so that corruption shows here, not in the middle of an operation
      db.getKeysCount({ limit: 1 } as never);
      return db;
    } catch (e) {
      throw new CnmError(
        'ERR_STORE',
        `cannot open store file ${path}: ${(e as Error).message}; it may be damaged — move it away to start afresh`,
        { value: path },
        { cause: e },
      );
    }
  }

  private check(): void {
    if (this.closed) throw new CnmError('ERR_CLOSED', `store ${this.path} is closed: open a new controller`, { value: this.path });
  }

  private reader(): this {
    this.check();
    return this;
  }

  get<T>(key: string): T | undefined {
    this.check();
    // nothing is stored under a key LMDB cannot take (a lookup of a user's very long name)
    if (!fits(key)) return undefined;
    return this.read(key) as T | undefined;
  }

  /** The record under a key, its checksum and the key inside it checked. */
  private read(key: string): unknown {
    let s: Stored | undefined;
    try {
      s = this.db.get(key) as Stored | undefined;
    } catch (e) {
      throw this.damage(e, `the record of key ${JSON.stringify(key)}`, key);
    }
    return this.unwrap(key, s);
  }

  private unwrap(key: string, s: Stored | undefined): unknown {
    if (s === undefined) return undefined;
    if (s.key !== undefined && !sameKey(s.key, key)) throw this.codec.damaged(`it holds the record of key ${JSON.stringify(s.key)}`, `the record of key ${JSON.stringify(key)}`, key);
    return s.value;
  }

  /** A decoder's RecordDamage as ERR_STORE_DAMAGED; anything else as it is. */
  private damage(e: unknown, where: string, key?: string): unknown {
    return e instanceof RecordDamage ? this.codec.damaged(e.why, where, key, e.cause) : e;
  }

  range<T>(prefix: string): Array<[string, T]> {
    this.check();
    const out: Array<[string, T]> = [];
    if (!fits(prefix)) return out;
    try {
      for (const { key, value } of this.db.getRange(prefix === '' ? {} : { start: prefix, end: prefixEnd(prefix) })) {
        out.push([key as string, this.unwrap(key as string, value as Stored) as T]);
      }
    } catch (e) {
      // lmdb-js decodes before it yields: the damaged record is the one after the last good key
      const after = out.length ? `the record after key ${JSON.stringify(out[out.length - 1]![0])}` : `the first record`;
      throw this.damage(e, `${after} under prefix ${JSON.stringify(prefix)}`);
    }
    return out;
  }

  /**
   * Read every record and check it (checksum, decoding, the key inside it),
   * changing nothing: what `cnm system check` reports. A damaged B-tree (LMDB
   * cannot walk its pages) is reported as one more damaged entry.
   */
  verify(): StoreVerdict {
    this.check();
    const verdict: StoreVerdict = { file: this.path, records: 0, damaged: [] };
    let last = '';
    try {
      for (const key of this.db.getKeys({})) {
        const k = typeof key === 'string' ? key : String(key);
        last = k;
        verdict.records++;
        const bytes = this.db.getBinary(key);
        const why = bytes === undefined ? 'its key is listed but its value cannot be read' : this.codec.check(k, bytes);
        if (why !== undefined) verdict.damaged.push({ key: k, why });
      }
    } catch (e) {
      verdict.damaged.push({ key: last, why: `LMDB cannot walk its pages past this key (${(e as Error).message})` });
    }
    return verdict;
  }

  revision(): number {
    this.check();
    return this.lastRevision();
  }

  /** the last revision this process knows of; other processes may have added more */
  private known: number | undefined;

  /**
   * The number of the last log entry: a cursor step from the end of the log's
   * keys the first time, then a point read past the last one known (catching up
   * on other processes' commits), which costs far less than a cursor.
   */
  private lastRevision(): number {
    if (this.known === undefined) {
      this.known = 0;
      for (const key of this.db.getKeys({ start: prefixEnd(LOG_PREFIX), end: LOG_PREFIX, reverse: true, limit: 1 })) this.known = revisionOfKey(key as string);
    }
    while (this.db.doesExist(logKey(this.known + 1))) this.known++;
    return this.known;
  }

  catchUp(): void {
    this.check();
    this.watchers.deliver();
  }

  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch {
    this.check();
    return this.watchers.watch(prefix, fromRevision, listener, onError);
  }

  async txn<T>(fn: (tx: StoreTxn) => T): Promise<T> {
    this.check();
    if (this.lock === null) throw new CnmError('ERR_STORE', `store ${this.path} was opened read-only`, { value: this.path });
    // the fast path stays synchronous: no hop when nobody else writes
    if (!this.lock.tryAcquire()) await this.lock.acquire();
    try {
      this.check();
      this.ensureRoom();
      return this.run(fn);
    } finally {
      this.lock.release();
    }
  }

  private run<T>(fn: (tx: StoreTxn) => T): T {
    const db = this.db;
    const aborts: Array<() => void> = [];
    const early: Array<() => void> = [];
    // whether each key touched existed before the transaction: what it leaves is logged
    const existed = new Map<string, boolean>();
    const touch = (key: string) => {
      if (!existed.has(key)) existed.set(key, db.doesExist(key));
    };
    const tx: StoreTxn = {
      get: <V>(key: string) => (fits(key) ? (this.read(key) as V | undefined) : undefined),
      range: <V>(prefix: string) => this.range<V>(prefix),
      put: (key, value) => {
        fitOrRefuse(key);
        touch(key);
        db.putSync(key, [key, value] as never);
      },
      del: (key) => {
        if (!fits(key)) return;
        touch(key);
        db.removeSync(key);
      },
      onAbort: (a) => void aborts.push(a),
      beforeCommit: (b) => void early.push(b),
    };
    const raw = { put: (k: string, v: unknown) => void db.putSync(k, [k, v] as never), del: (k: string) => void db.removeSync(k) };
    const changes = new Map<string, boolean>();
    let committed: number | undefined;
    let upgraded = false;
    let result: T;
    try {
      result = db.transactionSync(() => {
        if (!this.codec.strict) upgraded = this.addChecksums();
        let r: T;
        try {
          r = fn(tx);
        } catch (e) {
          throw new FromCallback(e);
        }
        // deleting what was not there (even after writing it here) changes nothing
        for (const [key, before] of existed) {
          const now = db.doesExist(key);
          if (now || before) changes.set(key, !now);
        }
        committed = appendRevision(raw, this.lastRevision(), changes);
        try {
          for (const b of early) b();
        } catch (e) {
          throw new FromCallback(e);
        }
        return r;
      });
    } catch (e) {
      for (const a of aborts) a();
      if (e instanceof FromCallback) throw e.error;
      if (e instanceof RecordDamage) throw this.damage(e, 'a record read while adding checksums');
      if (isNoSpace(e) || isNoSpace((e as Error).cause)) {
        throw new CnmError('ERR_NO_SPACE', `store ${this.path}: the file system is full; free some space and try again (the transaction was not committed)`, { value: this.path }, { cause: e });
      }
      throw new CnmError('ERR_STORE', `store ${this.path}: ${(e as Error).message}`, { value: this.path }, { cause: e });
    }
    if (upgraded) this.codec.strict = true;
    if (committed !== undefined) {
      this.known = committed;
      queueMicrotask(() => this.watchers.deliver());
    }
    return result;
  }

  /** ERR_NO_SPACE unless the file system has room for a transaction (see free-space.ts). */
  ensureRoom(): void {
    if (this.lock === null) return;
    // the rewrite that adds checksums writes the whole store once more
    ensureRoom(dirname(this.path), this.codec.strict ? 0 : statSync(this.path).size);
  }

  /**
   * Inside the first write transaction on a store from before checksums: every
   * record written again with its checksum, and the format key that makes a
   * value without one count as damage from then on. True once the store is so.
   */
  private addChecksums(): boolean {
    if (this.read(FORMAT_KEY) === CHECKSUMMED) return true;
    const db = this.db;
    const all: Array<[string, unknown]> = [];
    for (const { key, value } of db.getRange({})) {
      if (typeof key === 'string') all.push([key, this.unwrap(key, value as Stored)]);
      else log.warn(`store ${this.path}: dropping an entry under a key that is not a string (not cnm's)`, { key: String(key) });
    }
    for (const { key } of db.getRange({})) if (typeof key !== 'string') db.removeSync(key);
    for (const [key, value] of all) db.putSync(key, [key, value] as never);
    db.putSync(FORMAT_KEY, [FORMAT_KEY, CHECKSUMMED] as never);
    if (all.length) log.info(`store ${this.path}: ${all.length} record(s) rewritten with checksums`);
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchers.close();
    this.lock?.close();
    await this.db.close();
  }
}
