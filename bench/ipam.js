// IPAM benchmarks without the kernel: the in-memory pool (allocate = nextFree + take,
// release) at several sizes and fills, the memory of a /8 pool, and allocation
// persisted in an LMDB store (one transaction per allocation).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AddressAllocator } from '../dist/ipam/allocator.js';
import { Pool } from '../dist/ipam/pool.js';
import { LmdbStore } from '../dist/store/lmdb-store.js';
import { rng } from '../dist/sim/rng.js';

const now = () => performance.now();
const BATCH = 100;
const MEM_TARGET = '<= 0.002 ms p50';
const mib = (b) => (b / 2 ** 20).toFixed(2);

/** offsets are numbers or bigints depending on the Pool version: follow the pool */
function offsets(pool) {
  const big = typeof pool.nextFree() === 'bigint';
  return { off: big ? (n) => BigInt(n) : (n) => n, num: big ? (o) => Number(o) : (o) => o, none: big ? -1n : -1 };
}


/**
 * Take `fill` of the usable offsets (spread at random, so free addresses are
 * scattered), leaving the cursor at a random place; returns the number left free.
 */
function fillPool(pool, fill, size) {
  const { off } = offsets(pool);
  const rand = rng(size ^ Math.round(fill * 1000));
  const usable = size - 3;
  let free = usable;
  if (fill > 0) {
    for (let i = 2; i < size - 1; i++) {
      if (rand() < fill && !pool.reserved.has(off(i))) {
        pool.take(off(i), false);
        free--;
      }
    }
  }
  // at least one free address (a 99.9 % full /24 would otherwise have none)
  const minFree = Math.max(1, Math.round(usable * (1 - fill)));
  while (free < minFree) {
    const o = off(2 + Math.floor(rand() * (size - 3)));
    if (pool.reserved.has(o) || !(pool.isHeld ? pool.isHeld(o) : pool.bitmap.has(o))) continue;
    pool.release(o);
    free++;
  }
  pool.cursor = off(Math.floor(rand() * size));
  return free;
}

function allocate(pool) {
  const o = pool.nextFree();
  pool.take(o, true);
  return o;
}

/** per-op milliseconds over `rounds` batches: allocate a batch, then release it */
function allocRelease(pool, rounds, batch = BATCH) {
  const alloc = [];
  const rel = [];
  const held = Array.from({ length: batch });
  for (let r = 0; r < rounds; r++) {
    let t = now();
    for (let i = 0; i < batch; i++) held[i] = allocate(pool);
    alloc.push((now() - t) / batch);
    t = now();
    for (let i = 0; i < batch; i++) pool.release(held[i]);
    rel.push((now() - t) / batch);
  }
  return { alloc, rel };
}

/** per-pair milliseconds for allocate+release pairs (the fill stays constant) */
function pairsBatched(pool, rounds) {
  const out = [];
  for (let r = 0; r < rounds; r++) {
    const t = now();
    for (let i = 0; i < BATCH; i++) pool.release(allocate(pool));
    out.push((now() - t) / BATCH);
  }
  return out;
}

function pairsSingle(pool, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t = now();
    pool.release(allocate(pool));
    out.push(now() - t);
  }
  return out;
}

function warm(pool) {
  for (let i = 0; i < 2000; i++) pool.release(allocate(pool));
}

export async function ipamBench(rows, { summarize, rounds = 200 }) {
  // --- in memory, IPv4
  for (const [subnet, size] of [
    ['10.0.0.0/24', 2 ** 8],
    ['10.0.0.0/16', 2 ** 16],
    ['10.0.0.0/8', 2 ** 24],
  ]) {
    const prefix = subnet.split('/')[1];
    for (const fill of [0, 0.5, 0.999]) {
      const pool = new Pool({ subnet });
      const free = fillPool(pool, fill, size);
      const pct = `${fill * 100}%`;
      if (fill < 0.99) {
        // batches of allocations then their releases: the fill moves by at most a batch
        const batch = Math.min(BATCH, Math.floor(free / 2));
        warm(pool);
        const { alloc, rel } = allocRelease(pool, rounds, batch);
        rows.push(summarize(`ipam allocate in memory (/${prefix}, ${pct} full)`, alloc, { target: MEM_TARGET, batch }));
        rows.push(summarize(`ipam release in memory (/${prefix}, ${pct} full)`, rel, { target: MEM_TARGET, batch }));
      } else {
        // 99.9 %: allocate+release pairs, so the fill stays where it is
        warm(pool);
        const name = `ipam allocate+release pair in memory (/${prefix}, ${pct} full, ${free} free)`;
        rows.push(summarize(name, pairsBatched(pool, rounds), { target: MEM_TARGET, batch: BATCH }));
        if (size === 2 ** 24) {
          const single = pairsSingle(pool, 20000);
          const sorted = [...single].sort((a, b) => a - b);
          const p999 = sorted[Math.floor(sorted.length * 0.999)];
          rows.push(summarize(`${name}, each timed`, single, { target: '<= 0.1 ms worst', p999 }));
        }
      }
    }
  }

  // --- the worst search: a /8 with one free address just below the cursor, so every
  // allocation scans the whole range to its end and wraps (one summary pass)
  {
    const pool = new Pool({ subnet: '10.0.0.0/8' });
    const { off } = offsets(pool);
    for (let i = 3; i < 2 ** 24 - 1; i++) pool.take(off(i), false);
    pool.cursor = off(2);
    const single = pairsSingle(pool, 2000);
    rows.push(summarize('ipam allocate+release pair in memory (/8, 1 free address: full scan and wrap), each timed', single, { target: '<= 0.1 ms worst' }));
  }

  // --- in memory, IPv6 /64 (sparse set): only low fills make sense for 2^64 addresses
  let v6;
  try {
    v6 = new Pool({ subnet: 'fd00:cafe::/64' });
  } catch (e) {
    v6 = undefined;
    rows.push({ name: `ipam IPv6 /64 skipped: ${e.message}`, n: 0 });
  }
  if (v6) {
    warm(v6);
    const { alloc, rel } = allocRelease(v6, rounds);
    rows.push(summarize('ipam allocate in memory (IPv6 /64, empty)', alloc, { target: MEM_TARGET, batch: BATCH }));
    rows.push(summarize('ipam release in memory (IPv6 /64, empty)', rel, { target: MEM_TARGET, batch: BATCH }));
    for (let i = 0; i < 100000; i++) allocate(v6);
    const held = allocRelease(v6, rounds);
    rows.push(summarize('ipam allocate in memory (IPv6 /64, 100 000 held)', held.alloc, { target: MEM_TARGET, batch: BATCH }));
    rows.push(summarize('ipam release in memory (IPv6 /64, 100 000 held)', held.rel, { target: MEM_TARGET, batch: BATCH }));
  }

  // --- memory of a /8 pool
  globalThis.gc?.();
  const before = process.memoryUsage();
  const big = new Pool({ subnet: '10.0.0.0/8' });
  globalThis.gc?.();
  const after = process.memoryUsage();
  const ab = after.arrayBuffers - before.arrayBuffers;
  const heap = after.heapUsed - before.heapUsed;
  rows.push({
    name: `ipam /8 pool memory: ${mib(ab)} MiB array buffers, ${mib(heap)} MiB heap`,
    n: 1,
    bytes: ab,
    heapBytes: heap,
    target: '<= 2.1 MiB',
  });
  void big.subnet;

  // --- persisted: one LMDB transaction per allocation / release
  const dir = mkdtempSync(join(tmpdir(), 'cnm-bench-ipam-'));
  const store = LmdbStore.open(dir);
  try {
    const ipam = new AddressAllocator(store);
    const net = { id: 'bench-ipam', name: 'bench-ipam', ipam: { config: [{ subnet: '10.99.0.0/16', gateway: '10.99.0.1' }] } };
    const alloc = [];
    const addrs = [];
    for (let i = 0; i < 2000; i++) {
      const t = now();
      addrs.push(await store.txn((tx) => ipam.allocate(tx, net, 4, `ep${i}`)));
      alloc.push(now() - t);
    }
    rows.push(summarize('ipam allocate persisted (LMDB, one txn each, /16)', alloc));
    const rel = [];
    for (const a of addrs) {
      const t = now();
      await store.txn((tx) => ipam.release(tx, net, a));
      rel.push(now() - t);
    }
    rows.push(summarize('ipam release persisted (LMDB, one txn each, /16)', rel));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
