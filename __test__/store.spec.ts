// Kernel-free tests of the Store interface (ts/store/store.ts) for both local
// backends: the memory store, and LMDB in a temporary directory. Transactions,
// revisions, watches (in this process and from another one), the bounded change
// log, closing, the read-only view, and waiting for another process's writer.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { CnmError } from '../ts/errors.js';
import { PRUNE_EVERY, RETAINED } from '../ts/store/changelog.js';
import { LmdbStore } from '../ts/store/lmdb-store.js';
import { MemoryStore } from '../ts/store/memory-store.js';
import type { Store, StoreEvent } from '../ts/store/store.js';
import { startWorker } from './helpers/barrier.js';

const here = dirname(fileURLToPath(import.meta.url));
const storeWorker = join(here, 'helpers', 'store-worker.ts');

// every store of this file lives in a directory of its own under one temporary root
const root = mkdtempSync(join(tmpdir(), 'cnm-store-'));
const tmpDir = () => mkdtempSync(join(root, 'd-'));
test.after.always(() => rmSync(root, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * Wait until cond holds, looking every 5 ms for about `ms`; false when it never did.
 * Counted in looks, not in wall time: while another test of this file keeps the
 * event loop busy (the 10 000-commit loops below), no look is used up.
 */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (let looks = ms / 5; looks > 0; looks--) {
    if (cond()) return true;
    await sleep(5);
  }
  return cond();
}
/** Longer than the polling period of cross-process watches (100 ms), for checking that nothing more comes. */
const QUIET_MS = 300;

/** Keys in LMDB's order: by their UTF-8 bytes. */
const utf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
/** The key of a revision's entry in the change log. */
const key = (r: number) => `rev/${String(r).padStart(16, '0')}`;

const backends: Array<[string, () => Store]> = [
  ['memory store', () => new MemoryStore()],
  ['LMDB store', () => LmdbStore.open(tmpDir())],
];

/** Open a fresh store for one test, closed when the test ends. */
function fresh(t: ExecutionContext, open: () => Store): Store {
  const s = open();
  t.teardown(() => s.close());
  return s;
}

/** A watcher that records what it is given. */
function record(s: Store, prefix: string, from: number): { events: StoreEvent[]; close(): void } {
  const events: StoreEvent[] = [];
  const w = s.watch(prefix, from, (e) => events.push(e));
  return { events, close: () => w.close() };
}

// ---------------------------------------------------------------- transactions against a model

type Value = number | string | { n: number; tags: string[] };
type Op = { t: 'put'; key: string; value: Value } | { t: 'del'; key: string };
interface Txn {
  ops: Op[];
  /** the callback throws after its writes */
  fail: boolean;
}

// "k/a" and "k/a/x" share a prefix; "k" and "kk/b" lie just outside "k/"
const KEYS = ['k/a', 'k/a/x', 'k/b', 'k/c', 'k', 'kk/b'];
const valueArb: fc.Arbitrary<Value> = fc.oneof(fc.integer(), fc.string(), fc.record({ n: fc.integer(), tags: fc.array(fc.string(), { maxLength: 3 }) }));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('put' as const), key: fc.constantFrom(...KEYS), value: valueArb }),
  fc.record({ t: fc.constant('del' as const), key: fc.constantFrom(...KEYS) }),
);
const txnArb: fc.Arbitrary<Txn> = fc.record({ ops: fc.array(opArb, { maxLength: 6 }), fail: fc.boolean() });

const underK = (m: Map<string, Value>) => [...m].filter(([k]) => k.startsWith('k/')).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

/**
 * Run transactions against a Map: each sees its own writes (get and range after
 * every op), a throwing one changes nothing and runs its onAbort hook, a committed
 * one lands whole, and the revision moves by exactly one per committed change.
 */
async function runTxns(s: Store, txns: Txn[]): Promise<void> {
  const model = new Map<string, Value>();
  for (const k of KEYS) if (s.get(k) !== undefined) throw new Error('the store is not empty');
  for (const [i, txn] of txns.entries()) {
    const fail = (msg: string): never => {
      throw new Error(`transaction ${i} ${JSON.stringify(txn)}: ${msg}`);
    };
    const before = s.revision();
    const initial = new Map(model);
    const pending = new Map(model);
    const put = new Set<string>();
    let aborted = 0;
    const problems: string[] = [];
    const outcome = await s
      .txn((tx) => {
        tx.onAbort(() => aborted++);
        for (const op of txn.ops) {
          if (op.t === 'put') {
            tx.put(op.key, op.value);
            pending.set(op.key, op.value);
            put.add(op.key);
          } else {
            tx.del(op.key);
            pending.delete(op.key);
          }
          for (const k of KEYS) {
            if (JSON.stringify(tx.get(k)) !== JSON.stringify(pending.get(k))) problems.push(`inside, after ${op.t} ${op.key}: get ${k} = ${JSON.stringify(tx.get(k))}`);
          }
          if (JSON.stringify(tx.range('k/')) !== JSON.stringify(underK(pending))) problems.push(`inside, after ${op.t} ${op.key}: range k/ = ${JSON.stringify(tx.range('k/'))}`);
        }
        if (txn.fail) throw new Error('rolled back');
        return 'done';
      })
      .catch((e: unknown) => e);
    if (problems.length) fail(problems.join('; '));
    if (txn.fail) {
      if (!(outcome instanceof Error) || outcome.message !== 'rolled back') fail(`the callback's error did not come out: ${String(outcome)}`);
      if (aborted !== 1) fail(`onAbort ran ${aborted} times`);
    } else {
      if (outcome !== 'done') fail(`the callback's result did not come out: ${String(outcome)}`);
      if (aborted !== 0) fail('onAbort ran for a committed transaction');
      model.clear();
      for (const [k, v] of pending) model.set(k, v);
    }
    for (const k of KEYS) {
      if (JSON.stringify(s.get(k)) !== JSON.stringify(model.get(k))) fail(`after: get ${k} = ${JSON.stringify(s.get(k))}, want ${JSON.stringify(model.get(k))}`);
    }
    if (JSON.stringify(s.range('k/')) !== JSON.stringify(underK(model))) fail(`after: range k/ = ${JSON.stringify(s.range('k/'))}`);
    const moved = s.revision() - before;
    // a transaction takes a revision when it leaves a key written or one that existed deleted;
    // deleting what was not there (even after writing it in the same transaction) changes nothing
    const changed = [...put].some((k) => pending.has(k)) || [...initial.keys()].some((k) => !pending.has(k));
    const want = txn.fail || !changed ? 0 : 1;
    if (moved !== want) fail(`revision moved by ${moved}, want ${want}`);
  }
}

for (const [name, open] of backends) {
  test(`${name}: transactions are atomic, see their own writes, and take one revision per committed change (random sequences)`, async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.array(txnArb, { maxLength: 12 }), async (txns) => {
        const s = open();
        try {
          await runTxns(s, txns);
        } finally {
          await s.close();
        }
      }),
      { numRuns: name === 'LMDB store' ? 60 : 200, includeErrorInReport: true },
    );
    t.pass();
  });

  test(`${name}: revision() is 0 when empty; a read-only transaction takes none, several writes in one take one`, async (t) => {
    const s = fresh(t, open);
    t.is(s.revision(), 0);
    t.is(await s.txn((tx) => tx.get('a') ?? 'none'), 'none');
    t.is(s.revision(), 0);
    await s.txn((tx) => {
      tx.put('a', 1);
      tx.put('b', 2);
      tx.del('a');
    });
    t.is(s.revision(), 1);
    t.is(s.get('a'), undefined);
    t.is(s.get('b'), 2);
    await s.txn((tx) => tx.put('c', { deep: [1, 2] }));
    t.is(s.revision(), 2);
    t.deepEqual(s.get('c'), { deep: [1, 2] });
  });

  test(`${name}: watch delivers the revisions after fromRevision first, then new ones, in order, only under its prefix; close() stops it`, async (t) => {
    const s = fresh(t, open);
    await s.txn((tx) => tx.put('a/1', 1)); // r1
    await s.txn((tx) => tx.put('b/1', 1)); // r2: nothing under a/
    await s.txn((tx) => {
      // r3
      tx.put('a/2', 2);
      tx.put('ab/x', 0);
      tx.put('a', 0);
      tx.put('b/2', 2);
    });
    await s.txn((tx) => tx.del('a/1')); // r4
    t.is(s.revision(), 4);

    const caughtUp = record(s, 'a/', 1);
    const fromNow = record(s, 'a/', s.revision());
    const byOther = record(s, 'b/', 0);
    t.deepEqual(caughtUp.events, [], 'events come asynchronously, not from inside watch()');
    t.true(await until(() => caughtUp.events.length >= 2 && byOther.events.length >= 2));
    t.deepEqual(caughtUp.events, [
      { revision: 3, changes: [{ key: 'a/2', deleted: false }] },
      { revision: 4, changes: [{ key: 'a/1', deleted: true }] },
    ]);
    t.deepEqual(byOther.events, [
      { revision: 2, changes: [{ key: 'b/1', deleted: false }] },
      { revision: 3, changes: [{ key: 'b/2', deleted: false }] },
    ]);

    await s.txn((tx) => {
      // r5
      tx.put('a/3', 3);
      tx.put('x', 0);
    });
    await s.txn((tx) => tx.put('b/3', 3)); // r6
    await s.txn((tx) => {
      // r7
      tx.del('a/2');
      tx.put('a/4', 4);
    });
    t.true(await until(() => caughtUp.events.length >= 4 && fromNow.events.length >= 2));
    const newOnes = [
      { revision: 5, changes: [{ key: 'a/3', deleted: false }] },
      // written in key order, so that the order of one revision's changes does not matter
      {
        revision: 7,
        changes: [
          { key: 'a/2', deleted: true },
          { key: 'a/4', deleted: false },
        ],
      },
    ];
    t.deepEqual(caughtUp.events.slice(2), newOnes);
    t.deepEqual(fromNow.events, newOnes);

    caughtUp.close();
    await s.txn((tx) => tx.put('a/5', 5)); // r8
    t.true(await until(() => fromNow.events.length >= 3), 'a watcher still open gets r8');
    await sleep(QUIET_MS);
    t.is(caughtUp.events.length, 4, 'a closed watcher gets nothing more');
    t.is(fromNow.events.length, 3);
    t.is(byOther.events.length, 3, 'r6 only');
    fromNow.close();
    byOther.close();
  });

  test(`${name}: watching from a revision not reached yet delivers only what comes after it`, async (t) => {
    const s = fresh(t, open);
    await s.txn((tx) => tx.put('f/1', 1)); // r1
    const w = record(s, 'f/', 3);
    await s.txn((tx) => tx.put('f/2', 2)); // r2
    await s.txn((tx) => tx.put('f/3', 3)); // r3
    await s.txn((tx) => tx.put('f/4', 4)); // r4
    t.true(await until(() => w.events.length >= 1));
    await sleep(QUIET_MS);
    t.deepEqual(w.events, [{ revision: 4, changes: [{ key: 'f/4', deleted: false }] }]);
    w.close();
  });

  test(`${name}: a watcher that falls behind the change log is stopped with ERR_STORE, not left to miss revisions`, async (t) => {
    t.timeout(120_000);
    const s = fresh(t, open);
    const events: StoreEvent[] = [];
    let stopped: CnmError | undefined;
    s.watch('k/', 0, (e) => events.push(e), (e) => (stopped = e));
    // more commits than the log keeps, without giving the watcher a turn
    const pending: Array<Promise<unknown>> = [];
    for (let i = 1; i <= RETAINED + PRUNE_EVERY; i++) pending.push(s.txn((tx) => tx.put(`k/${i % 7}`, i)));
    await Promise.all(pending);
    t.true(await until(() => stopped !== undefined), 'the watcher was told');
    t.is(stopped?.code, 'ERR_STORE');
    t.deepEqual(events, [], 'and got no revision out of order or with a gap');
    await s.txn((tx) => tx.put('k/late', 1));
    await sleep(QUIET_MS);
    t.deepEqual(events, [], 'a stopped watcher gets nothing more');
  });

  test(`${name}: range finds every key under a prefix, whatever its characters, in UTF-8 order; deleting an absent key takes no revision`, async (t) => {
    const s = fresh(t, open);
    const keys = ['u/x', 'u/\uffff', 'u/\u{1F600}', 'u/\ue000', 'u/', 'u0', 'v/a'];
    await s.txn((tx) => {
      for (const k of keys) tx.put(k, k);
    });
    const under = (p: string) => s.range<string>(p).map(([k]) => k);
    t.deepEqual(under('u/'), keys.filter((k) => k.startsWith('u/')).sort(utf8));
    t.deepEqual(under('').filter((k) => keys.includes(k)), [...keys].sort(utf8), 'the whole store, in order');
    const rev = s.revision();
    await s.txn((tx) => tx.del('u/absent'));
    t.is(s.revision(), rev);
  });

  test(`${name}: the change log keeps RETAINED revisions (pruned every PRUNE_EVERY); watching from an older one throws ERR_STORE`, async (t) => {
    t.timeout(120_000);
    const s = fresh(t, open);
    // past a prune, and a few more
    const total = RETAINED + PRUNE_EVERY + 5;
    for (let i = 1; i <= total; i++) await s.txn((tx) => tx.put(`k/${i}`, i));
    t.is(s.revision(), total);
    // the log is bounded: its entries are the store's own `rev/` keys (changelog.ts);
    // the last prune (at revision RETAINED + PRUNE_EVERY) deleted every entry up to PRUNE_EVERY
    t.is(s.range('rev/').length, total - PRUNE_EVERY);
    t.is(s.get(key(PRUNE_EVERY)), undefined);
    t.not(s.get(key(PRUNE_EVERY + 1)), undefined);
    // what is promised: the last RETAINED revisions
    const oldest = total - RETAINED + 1;
    for (const from of [oldest - 2, 0]) {
      t.is(t.throws(() => s.watch('k/', from, () => undefined), { instanceOf: CnmError })?.code, 'ERR_STORE', `watch from ${from}`);
    }
    // the oldest revision promised is delivered: watching from just before it works
    const w = record(s, 'k/', oldest - 1);
    t.true(await until(() => w.events.length >= RETAINED));
    w.close();
    t.is(w.events.length, RETAINED);
    t.deepEqual(w.events[0], { revision: oldest, changes: [{ key: `k/${oldest}`, deleted: false }] });
    t.deepEqual(w.events.at(-1), { revision: total, changes: [{ key: `k/${total}`, deleted: false }] });
    t.true(
      w.events.every((ev, i) => ev.revision === oldest + i),
      'in order, none missing',
    );
  });

  test(`${name}: get, range, revision, watch and txn throw ERR_CLOSED after close`, async (t) => {
    const s = open();
    await s.txn((tx) => tx.put('a', 1));
    const w = s.watch('', 0, () => undefined);
    await s.close();
    for (const call of [() => s.get('a'), () => s.range(''), () => s.revision(), () => s.watch('', 0, () => undefined)]) {
      t.is(t.throws(call, { instanceOf: CnmError })?.code, 'ERR_CLOSED');
    }
    t.is((await t.throwsAsync(s.txn(() => 1), { instanceOf: CnmError }))?.code, 'ERR_CLOSED');
    // closing a watcher or the store again is harmless
    w.close();
    await s.close();
  });
}

// ---------------------------------------------------------------- LMDB: the file, other processes

interface WorkerResult {
  revision: number;
  pid: number;
  /** hold: when the held transaction began to commit (ms since the epoch) */
  heldUntil?: number;
}

test('LMDB store: a watcher sees the commits another process makes on the same file, in order', async (t) => {
  const dir = tmpDir();
  const s = fresh(t, () => LmdbStore.open(dir));
  await s.txn((tx) => tx.put('net/0', 0));
  const w = record(s, 'net/', s.revision());
  const writes: Array<[string, unknown]> = [
    ['net/a', { id: 'a' }],
    ['other/x', 1],
    ['net/b', { id: 'b' }],
    ['net/a', null],
  ];
  const child = startWorker<WorkerResult>(storeWorker, [dir, 'commit', JSON.stringify(writes)]);
  const { revision } = await child.result;
  t.is(revision, 5);
  t.true(await until(() => w.events.length >= 3), `got ${JSON.stringify(w.events)}`);
  await sleep(QUIET_MS);
  w.close();
  t.deepEqual(w.events, [
    { revision: 2, changes: [{ key: 'net/a', deleted: false }] },
    { revision: 4, changes: [{ key: 'net/b', deleted: false }] },
    { revision: 5, changes: [{ key: 'net/a', deleted: true }] },
  ]);
  t.is(s.revision(), 5);
  t.deepEqual(s.range('net/'), [
    ['net/0', 0],
    ['net/b', { id: 'b' }],
  ]);
});

test('LMDB store: openReadOnly returns undefined and creates nothing where there is no store; on a store it reads and refuses txn', async (t) => {
  const parent = tmpDir();
  const missing = join(parent, 'not-there');
  t.is(LmdbStore.openReadOnly(missing), undefined);
  t.false(existsSync(missing), 'no directory made');
  t.is(LmdbStore.openReadOnly(parent), undefined);
  t.deepEqual(readdirSync(parent), [], 'nothing made in an empty directory');

  const w = LmdbStore.open(missing);
  await w.txn((tx) => tx.put('net/a', { id: 'a' }));
  await w.close();
  const files = readdirSync(missing).sort();
  const ro = LmdbStore.openReadOnly(missing);
  if (!ro) return t.fail('openReadOnly found no store where one was written');
  t.teardown(() => ro.close());
  t.deepEqual(ro.get('net/a'), { id: 'a' });
  t.deepEqual(ro.range('net/'), [['net/a', { id: 'a' }]]);
  t.is(ro.revision(), 1);
  t.is((await t.throwsAsync(ro.txn((tx) => tx.put('net/b', 1)), { instanceOf: CnmError }))?.code, 'ERR_STORE');
  t.is(ro.get('net/b'), undefined);
  t.is(ro.revision(), 1);
  t.deepEqual(readdirSync(missing).sort(), files, 'the read-only view made no file');
});

// ---------------------------------------------------------------- LMDB: waiting for another process's writer

const HOLD_MS = 500;

interface Waited {
  /** when this process called txn, and when it resolved (ms since the epoch) */
  calledAt: number;
  doneAt: number;
  /** when the other process's transaction began to commit */
  heldUntil: number;
  /** the longest time the event loop did not run a 5 ms interval */
  maxGapMs: number;
  /** what the transaction read of the other writer's commit, and that writer's pid */
  seen: unknown;
  holder: number;
}

/**
 * A child process holds the store's write transaction for HOLD_MS; meanwhile this
 * process runs a transaction on the same store, with a 5 ms interval ticking.
 */
async function txnBehindAnotherWriter(): Promise<Waited> {
  const dir = tmpDir();
  const s = LmdbStore.open(dir);
  try {
    const child = startWorker<WorkerResult>(storeWorker, [dir, 'hold', String(HOLD_MS)]);
    await child.printed('holding');
    let last = performance.now();
    let maxGapMs = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
    }, 5);
    await sleep(20);
    const calledAt = Date.now();
    const seen = await s.txn((tx) => tx.get('held'));
    const doneAt = Date.now();
    await sleep(20);
    clearInterval(timer);
    const { pid, heldUntil } = await child.result;
    return { calledAt, doneAt, heldUntil: heldUntil!, maxGapMs, seen, holder: pid };
  } finally {
    await s.close();
  }
}

/** what `txnBehindAnotherWriter` measured, for the log */
const told = (r: Waited) =>
  `called ${r.heldUntil - r.calledAt} ms before the other writer let go, waited ${r.doneAt - r.calledAt} ms; event loop still for up to ${r.maxGapMs.toFixed(0)} ms`;

test.serial('LMDB store: a transaction waits for another process’s write transaction and then sees its commit', async (t) => {
  const r = await txnBehindAnotherWriter();
  t.log(told(r));
  t.true(r.calledAt < r.heldUntil, 'txn was called while the other process held its transaction (else this run proves nothing)');
  t.true(r.doneAt >= r.heldUntil, 'txn resolved only after the other transaction let go');
  t.is(r.seen, r.holder, 'the waiting transaction read the other process’s committed write');
});

// Without the state dir's writer lock (a flock waited for off the JS thread),
// LmdbStore.txn would take LMDB's own write lock on the JS thread and the event loop
// would stand still for as long as the other process holds it (about 500 ms here).
test.serial('LMDB store: waiting for another process’s writer does not stall the event loop', async (t) => {
  const r = await txnBehindAnotherWriter();
  t.log(told(r));
  t.true(r.calledAt < r.heldUntil, 'txn was called while the other process held its transaction');
  t.true(r.maxGapMs < 100, `the event loop stood still for ${r.maxGapMs.toFixed(0)} ms while txn waited`);
});

test('a StoreHandle keeps its watches across the replacement of its backend', async (t) => {
  const { StoreHandle } = await import('../ts/store/store-handle.js');
  const dir = tmpDir();
  const h = new StoreHandle(new MemoryStore());
  t.teardown(() => h.close());
  const events: StoreEvent[] = [];
  h.watch('net/', 0, (e) => events.push(e));
  await h.replace(() => LmdbStore.open(dir));
  await h.txn((tx) => tx.put('net/a', 1));
  t.true(await until(() => events.length >= 1));
  t.deepEqual(events, [{ revision: 1, changes: [{ key: 'net/a', deleted: false }] }]);
});
