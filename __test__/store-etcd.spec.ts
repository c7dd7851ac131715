// The global-scope store on a real etcd (loopback, temporary data dir): mirror
// reads, compare-and-swap transactions across processes, watches, and what an
// etcd outage does.
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { CnmError } from '../ts/errors.js';
import { EtcdStore } from '../ts/store/etcd-store.js';
import type { StoreEvent } from '../ts/store/store.js';
import { type TestEtcd, etcdBin, startEtcd } from './helpers/etcd.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'etcd-worker.ts');
const withEtcd = etcdBin ? test.serial : test.serial.skip;
if (!etcdBin) console.log('etcd store tests skipped: etcd is not installed (apt-get install etcd-server; .ci/run does)');

let etcd: TestEtcd;
const stores: EtcdStore[] = [];
const open = async (prefix: string, timeoutMs?: number) => {
  const s = await EtcdStore.open({ endpoints: [etcd.url], prefix, timeoutMs });
  stores.push(s);
  return s;
};

test.before(async () => {
  if (etcdBin) etcd = await startEtcd('store');
});
test.after.always(async () => {
  for (const s of stores) await s.close().catch(() => undefined);
  await etcd?.cleanup();
});

/** Start workers, let them go at once, collect their JSON lines. */
async function race(args: string[][]): Promise<Array<{ runs: number; won?: boolean }>> {
  const procs: ChildProcess[] = args.map((a) => spawn(process.execPath, ['--import', 'tsx', worker, etcd.url, ...a], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const outs = procs.map((p) => {
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    return {
      ready: new Promise<void>((resolve) => p.stdout!.on('data', () => out.includes('ready\n') && resolve())),
      done: new Promise<string>((resolve, reject) => p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`worker exited with ${code}: ${out}`))))),
    };
  });
  await Promise.all(outs.map((o) => o.ready));
  for (const p of procs) p.stdin!.write('go\n');
  const lines = await Promise.all(outs.map((o) => o.done));
  return lines.map((l) => JSON.parse(l.trim().split('\n').pop()!) as { runs: number; won?: boolean });
}

withEtcd('reads come from the mirror, a commit is visible at once, watches deliver each revision in order', async (t) => {
  const a = await open('cnm/t1/');
  const b = await open('cnm/t1/');
  const seen: StoreEvent[] = [];
  const w = b.watch('net/', b.revision(), (e) => seen.push(e));
  await a.txn((tx) => {
    tx.put('net/1', { name: 'one' });
    tx.put('net/2', { name: 'two' });
    tx.put('other/x', 1);
  });
  t.deepEqual(a.get('net/1'), { name: 'one' }, 'read your writes');
  const r1 = a.revision();
  await a.txn((tx) => tx.del('net/2'));
  t.true(a.revision() > r1);
  t.deepEqual(
    a.range('net/').map(([k]) => k),
    ['net/1'],
  );
  // b's mirror follows through its watch
  const until = Date.now() + 3000;
  while (seen.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  w.close();
  t.deepEqual(
    seen.map((e) => e.changes),
    [
      [
        { key: 'net/1', deleted: false },
        { key: 'net/2', deleted: false },
      ],
      [{ key: 'net/2', deleted: true }],
    ],
  );
  t.deepEqual(b.get('net/1'), { name: 'one' });
  t.is(b.get('net/2'), undefined);
  t.is(b.revision(), a.revision());
  // a watch from the past replays what this host saw since it opened
  const replay: number[] = [];
  const w2 = b.watch('', r1 - 1, (e) => replay.push(e.revision));
  await new Promise((r) => setTimeout(r, 20));
  w2.close();
  t.deepEqual(replay, [r1, a.revision()]);
  // another cluster's prefix is another world
  const other = await open('cnm/t1x/');
  t.deepEqual(other.range(''), []);
  // a throwing callback changes nothing
  await t.throwsAsync(
    a.txn((tx) => {
      tx.put('net/3', {});
      throw new Error('no');
    }),
  );
  t.is(a.get('net/3'), undefined);
});

withEtcd('four processes incrementing one key lose no update; of five claiming one name exactly one wins', async (t) => {
  const counts = await race([0, 1, 2, 3].map(() => ['cnm/t2/', 'count', 'counter', '50']));
  const s = await open('cnm/t2/');
  t.is(s.get('counter'), 200, 'every increment is there');
  const runs = counts.reduce((n, c) => n + c.runs, 0);
  t.true(runs >= 200, `${runs} callback runs for 200 commits (the conflicts ran again)`);
  const claims = await race([0, 1, 2, 3, 4].map((i) => ['cnm/t2/', 'claim', 'web', `id${i}`]));
  t.is(claims.filter((c) => c.won).length, 1, JSON.stringify(claims));
  await new Promise((r) => setTimeout(r, 50));
  t.is(s.range<{ name: string }>('net/').filter(([, n]) => n.name === 'web').length, 1);
});

withEtcd('etcd down: reads answer from the mirror, writes fail with ERR_CLUSTER_UNAVAILABLE in bounded time; back: caught up without a reload', async (t) => {
  const a = await open('cnm/t3/', 1500);
  await a.txn((tx) => tx.put('net/a', { name: 'a' }));
  const events: StoreEvent[] = [];
  a.watch('net/', a.revision(), (e) => events.push(e));
  await etcd.stop();
  t.deepEqual(a.get('net/a'), { name: 'a' }, 'reads keep answering');
  const t0 = Date.now();
  const e = await t.throwsAsync(a.txn((tx) => tx.put('net/b', { name: 'b' })));
  const took = Date.now() - t0;
  t.is((e as CnmError).code, 'ERR_CLUSTER_UNAVAILABLE', (e as Error).message);
  t.true(took < 4000, `failed after ${took} ms`);
  const e2 = await t.throwsAsync(EtcdStore.open({ endpoints: [etcd.url], prefix: 'cnm/t3/', timeoutMs: 1500 }));
  t.is((e2 as CnmError).code, 'ERR_CLUSTER_UNAVAILABLE');
  await etcd.start();
  // another host writes once etcd is back; a catches up through its resumed watch
  const b = await open('cnm/t3/');
  await b.txn((tx) => tx.put('net/c', { name: 'c' }));
  const until = Date.now() + 10_000;
  while (a.get('net/c') === undefined && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(a.get('net/c'), { name: 'c' });
  t.is(a.get('net/b'), undefined, 'the failed write changed nothing');
  t.deepEqual(
    events.flatMap((x) => x.changes.map((c) => c.key)),
    ['net/c'],
    'the watch went on, with no gap and no reload',
  );
  await a.txn((tx) => tx.put('net/d', { name: 'd' }));
  t.deepEqual(b.get('net/d') ?? (await new Promise((r) => setTimeout(r, 200)).then(() => b.get('net/d'))), { name: 'd' });
});

const openP = async () => {
  const s = await EtcdStore.open({ endpoints: [etcd.url], prefix: 'cnm/tp/', partitioned: ['ipam/', 'peer/'] });
  stores.push(s);
  return s;
};

withEtcd('partitioned keys: a store mirrors and hears only the partitions it follows; a CAS on one sees the others commit', async (t) => {
  const a = await openP();
  const b = await openP();
  await a.follow('peer/n1/');
  await a.follow('peer/n2/');
  await b.follow('peer/n2/');
  const heard: string[] = [];
  b.watch('', b.revision(), (e) => heard.push(...e.changes.map((c) => c.key)));
  const before = b.stats().events;
  await a.txn((tx) => {
    tx.put('peer/n1/e1', { ip: '1' });
    tx.put('net/n1', { name: 'one' });
  });
  await a.txn((tx) => tx.put('peer/n2/e2', { ip: '2' }));
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(heard.sort(), ['net/n1', 'peer/n2/e2'], 'B hears the shared keys and the partition it follows, not n1');
  t.is(b.stats().events - before, 2);
  t.deepEqual(b.get('peer/n2/e2'), { ip: '2' });
  t.deepEqual(b.range('peer/'), [['peer/n2/e2', { ip: '2' }]], 'a range over every partition holds the followed ones');
  // a key of a partition not followed is neither read nor written: that would be a bug
  t.is(t.throws(() => b.get('peer/n1/e1'))?.code, 'ERR_INTERNAL');
  await t.throwsAsync(b.txn((tx) => tx.put('peer/n1/e9', 1)), { code: 'ERR_INTERNAL' });
  // following loads what is there, then keeps it: CAS against another host's writes still holds
  await b.follow('peer/n1/');
  t.deepEqual(b.get('peer/n1/e1'), { ip: '1' });
  const order: string[] = [];
  await Promise.all(
    [a, b].map((s, i) =>
      s.txn((tx) => {
        if (tx.range('peer/n1/').length >= 2) throw new Error('taken');
        tx.put(`peer/n1/claim${i}`, i);
        order.push(String(i));
      }).catch(() => order.push(`lost${i}`)),
    ),
  );
  t.is(a.range('peer/n1/').length, 2, 'one of two claims on a full range committed');
  t.true(order.some((o) => o.startsWith('lost')));
  // dropped: its keys leave the mirror and its events stop
  b.unfollow('peer/n1/');
  t.false(b.following('peer/n1/'));
  t.is(b.stats().keys, b.range('').length);
  t.false(b.range('').some(([k]) => k.startsWith('peer/n1/')));
  const n = b.stats().events;
  await a.txn((tx) => tx.put('peer/n1/e3', 3));
  await new Promise((r) => setTimeout(r, 200));
  t.is(b.stats().events, n, 'no event of an unfollowed partition');
});
