// Another host's view of the cluster store, for store-etcd.spec.ts:
//   node --import tsx etcd-worker.ts <url> <prefix> count <key> <n>
//     n transactions, each reading <key> (a number) and writing it + 1
//   node --import tsx etcd-worker.ts <url> <prefix> claim <name> <id>
//     one transaction: if no record under `net/` has that name, put net/<id> with it
// Waits for "go" on stdin first (all workers start together), then prints one
// JSON line: { retries?, won? }.
import { writeSync } from 'node:fs';
import { EtcdStore } from '../../ts/store/etcd-store.js';

const [url, prefix, mode, a, b] = process.argv.slice(2);
const store = await EtcdStore.open({ endpoints: [url!], prefix: prefix! });
writeSync(1, 'ready\n');
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
let runs = 0;
let won: boolean | undefined;
if (mode === 'count') {
  for (let i = 0; i < Number(b); i++) {
    await store.txn((tx) => {
      runs++;
      tx.put(a!, (tx.get<number>(a!) ?? 0) + 1);
    });
  }
} else if (mode === 'claim') {
  won = await store.txn((tx) => {
    runs++;
    if (tx.range<{ name: string }>('net/').some(([, n]) => n.name === a)) return false;
    tx.put(`net/${b}`, { name: a });
    return true;
  });
} else {
  throw new Error(`unknown mode ${mode}`);
}
writeSync(1, `${JSON.stringify({ runs, won })}\n`);
await store.close();
process.stdin.destroy();
