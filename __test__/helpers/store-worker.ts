// Another process on a state dir's LMDB store, for store.spec.ts:
//   node --import tsx store-worker.ts <dir> commit <json [[key, value | null], …]>
//     one transaction per entry: put the value, or delete the key when it is null
//   node --import tsx store-worker.ts <dir> hold <ms>
//     a write transaction that puts `held` = this pid, prints `holding` from inside
//     and keeps the transaction (and so the writer lock) for <ms> before committing
// Prints one JSON line at the end: { revision, pid, heldUntil }: the revision after
// its last commit, and (hold) when the held transaction began to commit, in ms since the epoch.
import { writeSync } from 'node:fs';
import { LmdbStore } from '../../ts/store/lmdb-store.js';

let heldUntil: number | undefined;

const [dir, mode, arg] = process.argv.slice(2);
const store = LmdbStore.open(dir!);
if (mode === 'commit') {
  for (const [key, value] of JSON.parse(arg!) as Array<[string, unknown]>) {
    await store.txn((tx) => (value === null ? tx.del(key) : tx.put(key, value)));
  }
} else if (mode === 'hold') {
  await store.txn((tx) => {
    tx.put('held', process.pid);
    // written synchronously: the test must see it while this transaction is open
    writeSync(1, 'holding\n');
    const until = Date.now() + Number(arg);
    while (Date.now() < until) {
      // busy: the transaction stays open, as a slow writer's would
    }
    heldUntil = Date.now();
  });
} else {
  throw new Error(`unknown mode ${mode}`);
}
writeSync(1, `${JSON.stringify({ revision: store.revision(), pid: process.pid, heldUntil })}\n`);
await store.close();
