// Endpoint commit marks by group commit (ts/ops/marks.ts), kernel-free: a mark
// rides on the next transaction of the process, or gets one of its own on the
// next turn; a transaction that does not commit gives its marks back; an
// endpoint removed meanwhile is not brought back; nothing is lost.
import test from 'ava';
import { CommitMarks } from '../ts/ops/marks.js';
import { keys } from '../ts/records.js';
import { MemoryStore } from '../ts/store/memory-store.js';
import { StoreHandle } from '../ts/store/store-handle.js';
import type { EndpointRecord } from '../ts/types.js';

function setup() {
  const store = new StoreHandle(new MemoryStore());
  const marks = new CommitMarks((fn) => store.txn(fn));
  store.prelude = (tx) => marks.applyIn(tx);
  return { store, marks };
}

function endpoint(i: number): EndpointRecord {
  return {
    id: `ep${i}`.padEnd(64, '0'),
    networkId: 'n'.repeat(64),
    sandboxId: 's'.repeat(64),
    ifname: 'eth0',
    hostIfname: `veth${i}`,
    mac: '',
    ipv4: `10.0.0.${i + 2}/24`,
    ipv6: '',
    gateway: '10.0.0.1',
    defaultGateway: true,
    aliases: [],
    staticIp: false,
    created: '',
    state: 'pending',
    owner: { pid: process.pid, start: '0' },
  };
}

const state = (store: StoreHandle, ep: EndpointRecord) => store.get<EndpointRecord>(keys.ep(ep.networkId, ep.id))?.state;

test('a mark rides on the next transaction: one commit for the connect that follows it', async (t) => {
  const { store, marks } = setup();
  const a = endpoint(1);
  const b = endpoint(2);
  await store.txn((tx) => tx.put(keys.ep(a.networkId, a.id), a));
  const rev = store.revision();
  marks.add(a);
  // the next operation's reservation, before the event loop turns
  await store.txn((tx) => tx.put(keys.ep(b.networkId, b.id), b));
  t.is(state(store, a), 'active');
  t.is(store.get<EndpointRecord>(keys.ep(a.networkId, a.id))?.owner, undefined, 'its owner goes with the mark');
  t.is(store.revision(), rev + 1, 'one transaction carried both');
  t.is(marks.size, 0);
});

test('with nothing else to carry it, a mark gets a transaction of its own on the next turn', async (t) => {
  const { store, marks } = setup();
  const a = endpoint(1);
  await store.txn((tx) => tx.put(keys.ep(a.networkId, a.id), a));
  marks.add(a);
  t.is(state(store, a), 'pending');
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  t.is(state(store, a), 'active');
});

test('a transaction that does not commit gives its marks back; they land with the next one', async (t) => {
  const { store, marks } = setup();
  const a = endpoint(1);
  await store.txn((tx) => tx.put(keys.ep(a.networkId, a.id), a));
  marks.add(a);
  await t.throwsAsync(
    store.txn(() => {
      throw new Error('the next operation failed');
    }),
    { message: 'the next operation failed' },
  );
  t.is(state(store, a), 'pending', 'rolled back with the transaction that carried it');
  t.is(marks.size, 1, 'and queued again');
  t.true(await marks.flush());
  t.is(state(store, a), 'active');
});

test('an endpoint removed before its mark landed is not brought back', async (t) => {
  const { store, marks } = setup();
  const a = endpoint(1);
  await store.txn((tx) => tx.put(keys.ep(a.networkId, a.id), a));
  marks.add(a);
  // the prelude runs first in this transaction: the mark lands, then the delete
  await store.txn((tx) => tx.del(keys.ep(a.networkId, a.id)));
  t.is(state(store, a), undefined);
  marks.add(a);
  t.true(await marks.flush());
  t.is(state(store, a), undefined, 'a mark for a record that is gone writes nothing');
});
