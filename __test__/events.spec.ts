// Network events are persisted in the host's store by whichever process makes
// the change: a library program, `cnm events`, the daemon's /events (and so
// `docker events`) all see changes made by a `cnm` command of another process,
// past ones (--since) and live ones. The log is bounded.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { type Daemon, startDaemon } from '../ts/daemon/server.js';
import { type CnmEvent, EVENT_LOG_SIZE, appendEvent, storedEvents } from '../ts/events.js';
import { MemoryStore } from '../ts/store/memory-store.js';
import { BIN, cnm } from './helpers/cli.js';
import { dockerAt, dockerBin } from './helpers/docker-cli.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
let ctl: NetworkController;
let g: string[];

test.before(async () => {
  host = await isolatedHost('evt');
  ctl = await host.open();
  g = ['--host-netns', host.ns, '--state-dir', host.stateDir];
});
test.after.always(async () => {
  await host?.cleanup();
});

/** The events of `it` until `n` have come (or 10 s). */
async function take(it: AsyncGenerator<CnmEvent>, n: number, stop: AbortController): Promise<CnmEvent[]> {
  const got: CnmEvent[] = [];
  const timer = setTimeout(() => stop.abort(), 10_000);
  for await (const e of it) {
    got.push(e);
    if (got.length >= n) break;
  }
  clearTimeout(timer);
  return got;
}

const summary = (e: CnmEvent) => `${e.Action} ${e.Actor.Attributes.name}${e.Actor.Attributes.container ? ` ${e.Actor.Attributes.container.slice(0, 12)}` : ''}`;

test.serial('changes made by a cnm command in another process reach the library, live and from the log', async (t) => {
  const stop = new AbortController();
  const live = take(ctl.events({ filters: { network: ['ev1'] } }, stop.signal), 4, stop);
  const since = Date.now() / 1000;
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.81.0.0/24', 'ev1']).code, 0);
  const sb = host.name('s1');
  t.is(cnm([...g, 'sandbox', 'create', '--net', 'ev1', sb]).code, 0);
  const id = (JSON.parse(cnm([...g, 'sandbox', 'inspect', sb]).stdout) as Array<{ Id: string }>)[0]!.Id.slice(0, 12);
  t.is(cnm([...g, 'sandbox', 'rm', sb]).code, 0);
  t.is(cnm([...g, 'network', 'rm', 'ev1']).code, 0);
  const want = ['create ev1', `connect ev1 ${id}`, `disconnect ev1 ${id}`, 'destroy ev1'];
  t.deepEqual((await live).map(summary), want, 'live, as they were committed');
  // the past, with since/until, from a fresh reader
  const past = await take(ctl.events({ since, until: Date.now() / 1000 + 0.5, filters: { network: ['ev1'] } }), 10, new AbortController());
  t.deepEqual(past.map(summary), want);
  t.true(past.every((e) => e.Type === 'network' && e.scope === 'local' && e.time === Math.floor(e.timeNano / 1e9)));
  // filters as docker's: by event, by container
  const connects = await take(ctl.events({ since, until: Date.now() / 1000 + 0.5, filters: { event: ['connect'], container: [id] } }), 10, new AbortController());
  t.deepEqual(connects.map(summary), [`connect ev1 ${id}`]);
  // and cnm events prints them as docker events does
  const r = cnm([...g, 'events', '--since', String(Math.floor(since)), '--until', String(Math.ceil(Date.now() / 1000)), '--filter', 'network=ev1']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.is(lines.length, 4, r.stdout);
  t.regex(lines[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z network create [0-9a-f]{64} \(name=ev1, type=bridge\)$/);
  t.regex(lines[1]!, new RegExp(`network connect [0-9a-f]{64} \\(container=${id}[0-9a-f]{52}, name=ev1, type=bridge\\)$`));
});

test.serial('cnm events streams live changes until stopped', async (t) => {
  const child = spawn(process.execPath, [BIN, ...g, 'events', '--format', '{{json .}}'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  // give it time to open the store and start watching
  await new Promise((r) => setTimeout(r, 800));
  await ctl.createNetwork({ name: 'ev2', ipam: [{ subnet: '10.82.0.0/24' }] });
  await ctl.removeNetwork('ev2');
  for (let i = 0; i < 100 && out.split('\n').filter(Boolean).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGINT');
  const code = await new Promise((r) => child.once('exit', r));
  t.is(code, 0);
  t.deepEqual(
    out
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as CnmEvent).Action),
    ['create', 'destroy'],
  );
});

(dockerBin ? test.serial : test.serial.skip)('docker events through cnm daemon shows a network made by a cnm command beside it', async (t) => {
  const d: Daemon = await startDaemon({ socket: join(host.tmp('evs'), 'cnm.sock'), controller: { hostNetns: host.ns, stateDir: host.stateDir } });
  try {
    const since = Math.floor(Date.now() / 1000) - 1;
    t.is(cnm([...g, 'network', 'create', '--subnet', '10.83.0.0/24', 'ev3']).code, 0);
    t.is(cnm([...g, 'network', 'rm', 'ev3']).code, 0);
    const r = await dockerAt(d.socket, 'events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'network=ev3', '--format', '{{.Action}} {{.Actor.Attributes.name}}');
    t.is(r.code, 0, r.err);
    t.deepEqual(r.out.split('\n'), ['create ev3', 'destroy ev3']);
  } finally {
    await d.close();
  }
});

test('the log keeps the last EVENT_LOG_SIZE events', async (t) => {
  const store = new MemoryStore();
  for (let i = 0; i < EVENT_LOG_SIZE + 5; i++) await store.txn((tx) => appendEvent(tx, 'create', `n${i}`, { name: `n${i}` }));
  const all = storedEvents(store);
  t.is(all.length, EVENT_LOG_SIZE);
  t.is(all[0]!.Actor.ID, 'n5');
  t.is(all.at(-1)!.Actor.ID, `n${EVENT_LOG_SIZE + 4}`);
});
