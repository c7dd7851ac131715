// A child process for ipam-concurrency.spec.ts: opens the LMDB store of a shared
// state dir, builds its own AddressAllocator and races the other workers.
//   node --import tsx __test__/helpers/ipam-worker.ts <stateDir> <netJson> <count> [alloc|churn] [worker]
// Says `ready` once loaded and starts on `go` (see barrier.ts); then prints one JSON
// line: { allocated, held, overwrites, stolen, exhausted, statics, goAt, firstAt, doneAt }.
import { CnmError } from '../../ts/errors.js';
import { AddressAllocator } from '../../ts/ipam/allocator.js';
import { LmdbStore } from '../../ts/store/lmdb-store.js';
import type { StoreTxn } from '../../ts/store/store.js';
import type { NetworkRecord } from '../../ts/types.js';
import { waitForGo } from './barrier.js';

const [stateDir, netJson, countArg, mode = 'alloc', worker = String(process.pid)] = process.argv.slice(2);
const net = JSON.parse(netJson!) as NetworkRecord;
const count = Number(countArg);
const store = LmdbStore.open(stateDir!);
const ipam = new AddressAllocator(store);
ipam.poolsOf(net); // load before the barrier, so the race is on allocation only

let overwrites = 0; // an allocation record written over a live one: a double allocation
let stolen = 0; // our own record found holding someone else's endpoint
let exhausted = 0;
let statics = 0;
const allocated: string[] = [];
const held = new Map<string, string>(); // "addr/prefix" -> endpoint id

/** the store transaction, watching every allocation record written */
function watched(tx: StoreTxn): StoreTxn {
  return {
    get: (k) => tx.get(k),
    range: (p) => tx.range(p),
    del: (k) => tx.del(k),
    onAbort: (fn) => tx.onAbort(fn),
    put: (k, v) => {
      if (k.includes('/a/') && tx.get(k) !== undefined) overwrites++;
      tx.put(k, v);
    },
  };
}

const keyOf = (addr: string) => {
  const ip = addr.split('/')[0]!;
  const cfg = net.ipam.config.find((c) => sameNet(c.subnet, ip))!;
  return `ipam/${net.id}/${cfg.subnet}/a/${ip}`;
};
const ipNum = (s: string) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
function sameNet(subnet: string, ip: string): boolean {
  const [base, len] = subnet.split('/');
  const size = 2 ** (32 - Number(len));
  return Math.floor(ipNum(ip) / size) === Math.floor(ipNum(base!) / size);
}

async function allocate(ep: string, staticIp?: string): Promise<boolean> {
  try {
    const addr = await store.txn((tx) => ipam.allocate(watched(tx), net, 4, ep, staticIp));
    allocated.push(addr);
    held.set(addr, ep);
    return true;
  } catch (e) {
    if (!(e instanceof CnmError)) throw e;
    if (e.code === 'ERR_POOL_EXHAUSTED') exhausted++;
    else if (e.code !== 'ERR_ADDRESS_IN_USE') throw e;
    return false;
  }
}

async function release(addr: string): Promise<void> {
  const ep = held.get(addr)!;
  await store.txn((tx) => {
    const rec = tx.get<{ endpointId: string }>(keyOf(addr));
    if (rec?.endpointId !== ep) stolen++;
    ipam.release(tx, net, addr);
  });
  held.delete(addr);
}

const goAt = await waitForGo();
let firstAt = 0; // when this worker's first transaction committed
const stamp = () => (firstAt ||= Date.now());

if (mode === 'alloc') {
  for (let i = 0; i < count; i++) {
    if (!(await allocate(`w${worker}-${i}`))) throw new Error(`allocation ${i} failed`);
    stamp();
  }
} else {
  // churn: interleave dynamic and static allocations with releases of our own addresses
  const [base, len] = net.ipam.config[0]!.subnet.split('/');
  const baseParts = base!.split('.').map(Number);
  const size = 2 ** (32 - Number(len));
  for (let i = 0; i < count; i++) {
    const r = Math.random();
    if (held.size > 0 && r < 0.4) {
      const list = [...held.keys()];
      await release(list[Math.floor(Math.random() * list.length)]!);
    } else if (r < 0.55) {
      const off = 2 + Math.floor(Math.random() * (size - 3));
      const v = baseParts.reduce((a, o) => a * 256 + o, 0) + off;
      const ip = [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');
      statics++;
      await allocate(`w${worker}-${i}`, ip);
    } else {
      await allocate(`w${worker}-${i}`);
    }
    stamp();
  }
}
const doneAt = Date.now();
await store.close();
process.stdout.write(`${JSON.stringify({ allocated, held: [...held.keys()], overwrites, stolen, exhausted, statics, goAt, firstAt, doneAt })}\n`);
