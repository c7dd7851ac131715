// Concurrency of the IPAM over LMDB (kernel-free): many async tasks in one process,
// then several processes sharing one state dir, each with its own allocator and cache.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { CnmError } from '../ts/errors.js';
import { AddressAllocator } from '../ts/ipam/allocator.js';
import { LmdbStore } from '../ts/store/lmdb-store.js';
import type { NetworkRecord } from '../ts/types.js';
import { type RaceTimes, describeRace, runTogether } from './helpers/barrier.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const workerFile = join(here, 'helpers', 'ipam-worker.ts');

const dirs: string[] = [];
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cnm-ipam-conc-'));
  dirs.push(d);
  return d;
}
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function record(id: string, subnet: string): NetworkRecord {
  return { id, name: id, ipam: { config: [{ subnet, gateway: gatewayOf(subnet) }] } } as unknown as NetworkRecord;
}
function gatewayOf(subnet: string): string {
  const [a, b, c, d] = subnet.split('/')[0]!.split('.').map(Number);
  return `${a}.${b}.${c}.${d! + 1}`;
}

const ipNum = (a: string) => a.split('/')[0]!.split('.').reduce((n, o) => n * 256 + Number(o), 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface WorkerResult extends RaceTimes {
  allocated: string[];
  held: string[];
  overwrites: number;
  stolen: number;
  exhausted: number;
  statics: number;
}

/** Four workers on one state dir, started together behind the barrier. */
function race(dir: string, net: NetworkRecord, count: number, mode: 'alloc' | 'churn'): Promise<WorkerResult[]> {
  return runTogether<WorkerResult>(
    workerFile,
    [0, 1, 2, 3].map((i) => [dir, JSON.stringify(net), String(count), mode, String(i)]),
    { cwd: root },
  );
}

test('one process: 300 concurrent tasks get 300 distinct addresses in a /22', async (t) => {
  const dir = stateDir();
  const store = LmdbStore.open(dir);
  try {
    const ipam = new AddressAllocator(store);
    const net = record('conc22', '10.60.0.0/22');
    const got = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        await sleep(Math.random() * 5);
        return store.txn((tx) => ipam.allocate(tx, net, 4, `ep${i}`));
      }),
    );
    t.is(new Set(got).size, 300);
    for (const a of got) {
      t.regex(a, /^10\.60\.[0-3]\.\d+\/22$/);
      t.not(a, '10.60.0.0/22');
      t.not(a, '10.60.0.1/22');
      t.not(a, '10.60.3.255/22');
    }
    const allocs = ipam.allocations(net);
    t.is(allocs.size, 300);
    t.deepEqual([...allocs.keys()].sort(), got.map((a) => a.split('/')[0]!).sort());
  } finally {
    await store.close();
  }
});

test('four processes on one state dir: 800 distinct addresses in a /21, then churn without double holding', async (t) => {
  const dir = stateDir();
  // round 1: each worker allocates 200 as fast as it can, all starting together
  const net = record('multi21', '10.70.0.0/21');
  const round1 = await race(dir, net, 200, 'alloc');
  const all = round1.flatMap((r) => r.allocated);
  t.is(all.length, 800);
  t.is(new Set(all).size, 800, 'no address handed out to two processes');
  t.is(
    round1.reduce((n, r) => n + r.overwrites, 0),
    0,
    'no allocation record written over a live one',
  );
  // how much the workers really raced: switches of owner along the address order
  const owner = new Map(round1.flatMap((r, w) => r.allocated.map((a) => [a, w] as const)));
  const order = [...owner.keys()].sort((a, b) => ipNum(a) - ipNum(b));
  const switches = order.filter((a, i) => i > 0 && owner.get(a) !== owner.get(order[i - 1]!)).length;
  t.log(`round 1: ${describeRace(round1)}; ${switches} owner switches along the address order`);

  // round 2: on a /26 (61 usable), workers interleave dynamic and static allocations with
  // releases, so they collide, run the pool dry and wrap
  const small = record('churn26', '10.71.0.0/26');
  const round2 = await race(dir, small, 400, 'churn');
  t.is(
    round2.reduce((n, r) => n + r.overwrites, 0),
    0,
    'no allocation record written over a live one',
  );
  t.is(
    round2.reduce((n, r) => n + r.stolen, 0),
    0,
    'no worker found its address re-assigned to someone else',
  );
  const held = round2.flatMap((r) => r.held);
  t.is(new Set(held).size, held.length, 'no address held twice at the end');
  t.log(
    `round 2: ${describeRace(round2)}; ${round2.reduce((n, r) => n + r.allocated.length, 0)} allocations, ${round2.reduce((n, r) => n + r.exhausted, 0)} exhausted, ${round2.reduce((n, r) => n + r.statics, 0)} static requests, ${held.length} held at the end`,
  );

  // the store is the authority: it holds exactly what the workers hold
  const store = LmdbStore.open(dir);
  try {
    const ipam = new AddressAllocator(store);
    const a1 = ipam.allocations(net);
    t.is(a1.size, 800);
    t.deepEqual([...a1.keys()].sort(), all.map((a) => a.split('/')[0]!).sort());
    const a2 = ipam.allocations(small);
    t.deepEqual([...a2.keys()].sort(), held.map((a) => a.split('/')[0]!).sort());
    // and a fresh allocator continues without handing out any of them (or finds the /26 full)
    if (a2.size < 61) {
      const next = await store.txn((tx) => ipam.allocate(tx, small, 4, 'after'));
      t.false(held.includes(next));
    } else {
      const e = await t.throwsAsync(store.txn((tx) => ipam.allocate(tx, small, 4, 'after')), { instanceOf: CnmError });
      t.is(e?.code, 'ERR_POOL_EXHAUSTED');
    }
  } finally {
    await store.close();
  }
});
