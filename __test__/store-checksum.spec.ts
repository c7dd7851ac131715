// Every record of the local store carries a checksum over its key and value:
// damage inside LMDB's data pages (a flipped byte in a value, a damaged key) is
// reported as ERR_STORE_DAMAGED naming the file and the key, `verify` (and `cnm
// system check`) lists every damaged record without changing the file, and a
// store written before checksums is read as it is and rewritten with them by its
// first write.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { RootDatabase } from 'lmdb';
import { CnmError } from '../ts/errors.js';
import { LmdbStore } from '../ts/store/lmdb-store.js';
import { cliErrorCode, cnm } from './helpers/cli.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

const { open: lmdbOpen } = createRequire(import.meta.url)('lmdb') as typeof import('lmdb');

const dirs: string[] = [];
let host: IsolatedHost | undefined;
test.after.always(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await host?.cleanup();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'cnm-sum-'));
  dirs.push(d);
  return d;
}

const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** Every offset of `needle` in the file (LMDB keeps older copies of pages: all of them are hit). */
function offsets(buf: Buffer, needle: string): number[] {
  const out: number[] = [];
  const n = Buffer.from(needle);
  for (let i = buf.indexOf(n); i !== -1; i = buf.indexOf(n, i + 1)) out.push(i);
  return out;
}

/** Change one byte at each offset (+ `at`) where `pick` says so; returns how many. */
function damage(path: string, needle: string, at: number, pick: (buf: Buffer, off: number) => boolean = () => true): number {
  const buf = readFileSync(path);
  let n = 0;
  for (const off of offsets(buf, needle)) {
    if (!pick(buf, off)) continue;
    buf[off + at] = buf[off + at]! + 1;
    n++;
  }
  writeFileSync(path, buf);
  return n;
}

function damaged(t: import('ava').ExecutionContext, fn: () => unknown, path: string, key?: string): CnmError {
  const e = t.throws(fn) as CnmError;
  t.true(e instanceof CnmError, String(e));
  t.is(e.code, 'ERR_STORE_DAMAGED');
  t.true(e.message.includes(path), e.message);
  if (key) t.true(e.message.includes(key), e.message);
  return e;
}

test('a flipped byte in a value: that record reads as ERR_STORE_DAMAGED naming file and key, the others read, verify lists it alone', async (t) => {
  const dir = tmp();
  const s = LmdbStore.open(dir);
  await s.txn((tx) => {
    tx.put('net/aaa', { id: 'aaa', name: 'probe-value-AAAA' });
    tx.put('net/bbb', { id: 'bbb', name: 'plain' });
    tx.put('sb/ccc', { id: 'ccc', name: 'sandbox' });
  });
  await s.close();
  const path = s.path;
  t.true(damage(path, 'probe-value-AAAA', 6) >= 1);
  const before = sha(path);

  const r = LmdbStore.open(dir);
  damaged(t, () => r.get('net/aaa'), path, 'net/aaa');
  t.deepEqual(r.get('net/bbb'), { id: 'bbb', name: 'plain' });
  damaged(t, () => r.range('net/'), path);
  t.deepEqual(r.range('sb/'), [['sb/ccc', { id: 'ccc', name: 'sandbox' }]]);
  const v = r.verify();
  t.deepEqual(v.damaged, [{ key: 'net/aaa', why: 'its checksum does not match its contents' }]);
  t.true(v.records >= 4, 'every record read (the three, the format key, the change log)');
  // a transaction that reads it fails the same way, and commits nothing
  const e = await t.throwsAsync(r.txn((tx) => tx.get('net/aaa')));
  t.is((e as CnmError).code, 'ERR_STORE_DAMAGED');
  await r.close();
  t.is(sha(path), before, 'reading, verifying and the refused transaction left the file as it was');
});

test('a damaged key reads as damage, not as another record', async (t) => {
  const dir = tmp();
  const s = LmdbStore.open(dir);
  await s.txn((tx) => {
    tx.put('net/aaa', { id: 'aaa' });
    tx.put('net/ccc', { id: 'ccc' });
  });
  await s.close();
  // LMDB's copy of the key is the one right before the value's marker byte (0xc1)
  const n = damage(s.path, 'net/ccc', 6, (buf, off) => buf[off + 7] === 0xc1);
  t.true(n >= 1);
  const r = LmdbStore.open(dir);
  damaged(t, () => r.get('net/ccd'), s.path, 'net/ccd');
  damaged(t, () => r.range('net/'), s.path);
  t.deepEqual(
    r.verify().damaged.map((d) => [d.key, d.why]),
    [['net/ccd', 'it holds the record of key "net/ccc"']],
  );
  await r.close();
});

test('a store written before checksums is read as it is, rewritten with them by its first write, and strict from then on', async (t) => {
  const dir = tmp();
  const path = join(dir, 'cnm.mdb');
  // as cnm wrote it before: lmdb-js's own MessagePack, no format key
  const old = lmdbOpen({ path, compression: false, noSubdir: true }) as RootDatabase;
  old.putSync('net/old', { id: 'old', name: 'legacy', options: { a: 1 } });
  old.putSync('netname/legacy', 'old');
  // a name with a lone surrogate, which an older cnm took
  old.putSync('netname/\ud800x', 'odd');
  await old.close();

  const s = LmdbStore.open(dir);
  t.deepEqual(s.get('net/old'), { id: 'old', name: 'legacy', options: { a: 1 } });
  t.deepEqual(s.verify().damaged, [], 'records without checksums are sound before the rewrite');
  await s.txn((tx) => tx.put('net/new', { id: 'new' }));
  t.deepEqual(s.get('net/old'), { id: 'old', name: 'legacy', options: { a: 1 } }, 'the old record survives the rewrite');
  t.is(s.get('netname/legacy'), 'old');
  t.is(s.get('netname/\ud800x'), 'odd', 'a key with a lone surrogate survives the rewrite');
  t.deepEqual(s.verify().damaged, [], 'and the rewritten store is sound');
  await s.close();

  const raw = lmdbOpen({ path, compression: false, noSubdir: true, encoding: 'binary' }) as RootDatabase;
  const firstBytes = [...raw.getRange({})].map(({ key, value }) => [key, (value as Buffer)[0]]);
  t.true(
    firstBytes.every(([, b]) => b === 0xc1),
    `every value carries the marker: ${JSON.stringify(firstBytes)}`,
  );
  t.true(firstBytes.some(([k]) => k === 'meta/format'));
  await raw.close();

  // from now on, a value without a checksum is damage
  const plain = lmdbOpen({ path, compression: false, noSubdir: true }) as RootDatabase;
  plain.putSync('net/sneaky', { id: 'sneaky' });
  await plain.close();
  const r = LmdbStore.open(dir);
  damaged(t, () => r.get('net/sneaky'), path, 'net/sneaky');
  t.deepEqual(
    r.verify().damaged.map((d) => d.key),
    ['net/sneaky'],
  );
  await r.close();
});

test.serial('through the CLI: a damaged network record fails inspect with ERR_STORE_DAMAGED, and system check lists it', async (t) => {
  host = await isolatedHost('sum');
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.65.0.0/24', 'sumnet-probe']).code, 0);
  const id = cnm([...g, 'network', 'inspect', '-f', '{{.Id}}', 'sumnet-probe']).stdout.trim();
  t.regex(id, /^[0-9a-f]{64}$/);
  t.is(cnm([...g, 'system', 'check']).code, 0, 'clean at first');
  const file = join(host.stateDir, `netns-${host.ns}`, 'cnm.mdb');
  // the subnet string sits in the network's record (and in its events): change it everywhere
  t.true(damage(file, '10.65.0.0/24', 3) >= 1);
  const r = cnm([...g, 'network', 'inspect', 'sumnet-probe'], { CNM_LOG: 'debug' });
  t.is(r.code, 1);
  t.is(cliErrorCode(r), 'ERR_STORE_DAMAGED');
  t.regex(r.stderr, new RegExp(`store file ${file.replace(/[.]/g, '\\.')} is damaged: the record of key "net/${id}"`));
  const c = cnm([...g, 'system', 'check']);
  t.is(c.code, 1);
  t.regex(c.stdout, new RegExp(`damaged: record "net/${id}": its checksum does not match its contents`));
  t.regex(c.stdout, /problems found/);
});

test('a key holding a lone surrogate reads back as written (LMDB keeps it as U+FFFD; so does the copy inside)', async (t) => {
  const dir = tmp();
  const s = LmdbStore.open(dir);
  await s.txn((tx) => tx.put('netname/\ud800x', 'id1'));
  t.is(s.get('netname/\ud800x'), 'id1');
  t.deepEqual(
    s.range('netname/').map(([, v]) => v),
    ['id1'],
  );
  t.deepEqual(s.verify().damaged, []);
  await s.close();
});

test.serial('a network name holding a lone surrogate is refused as bad input, and nothing is made', async (t) => {
  const own = await isolatedHost('sur');
  const ctl = await own.open();
  try {
    const before = ctl.listNetworks().length;
    const e = await t.throwsAsync(ctl.createNetwork({ name: 'bad\ud800' }));
    t.is((e as CnmError).code, 'ERR_INVALID_ARGUMENT');
    t.regex(e!.message, /not valid Unicode/);
    t.is(ctl.listNetworks().length, before);
  } finally {
    await own.cleanup();
  }
});
