// The daemon under load, the short version of the bench's `load` section: 16
// clients and 2 000 mixed requests on a `cnm daemon` process, with a CLI loop on
// the same state dir beside them. No 5xx, every conflict the 4xx it should be,
// no CLI operation stalled behind the load, store and kernel in agreement at
// the end, and the daemon's memory does not grow from one run to the next.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';
import { type LoadResult, percentiles, rssMiB, runApiLoad } from '../ts/sim/api-load.js';
import { BIN, cnm, cnmAsync } from './helpers/cli.js';
import { apiCall } from './helpers/daemon-http.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
let daemon: ChildProcess;
let socket: string;

test.before(async () => {
  host = await isolatedHost('load');
  socket = join(host.tmp('load'), 'cnm.sock');
  daemon = spawn(process.execPath, [BIN, '--host-netns', host.ns, '--state-dir', host.stateDir, 'daemon', '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    daemon.stderr!.on('data', (b) => {
      err += b.toString();
      if (err.includes('listening on')) resolve();
    });
    daemon.once('exit', (code) => reject(new Error(`daemon exited ${code}: ${err}`)));
  });
});
test.after.always(async () => {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
  }
  await host?.cleanup();
});

function summary(r: LoadResult): string {
  return Object.entries(r.kinds)
    .map(([k, s]) => {
      const p = percentiles(s.ms);
      return `${k} ${JSON.stringify(s.statuses)} p50 ${p.p50.toFixed(1)} p99 ${p.p99.toFixed(1)} ms`;
    })
    .join('; ');
}

test.serial('16 clients, 2 000 mixed requests, a CLI loop beside: no 5xx, right 4xx, no stall, consistent, memory flat', async (t) => {
  const g = ['--host-netns', host.ns, '--state-dir', host.stateDir];
  const clients = 16;
  const sandboxes = Array.from({ length: clients }, (_, c) => host.name(`ld${c}`));
  t.is(cnm([...g, 'network', 'create', '--internal', '--subnet', '10.119.0.0/24', 'ldseed']).code, 0);
  for (const sb of sandboxes) t.is(cnm([...g, 'sandbox', 'create', '--net', 'ldseed', sb]).code, 0);
  const rss0 = rssMiB(daemon.pid!);
  // the CLI loop on the same state dir, meanwhile: each of its operations, timed
  const cliMs: number[] = [];
  let cliSeen = 0;
  const state = { loading: true };
  const cliLoop = (async () => {
    for (let i = 0; state.loading || i < 3; i++) {
      const name = `ldcli${i}`;
      let t0 = performance.now();
      const made = await cnmAsync([...g, 'network', 'create', '--subnet', `10.118.${i % 250}.0/24`, name]);
      cliMs.push(performance.now() - t0);
      t.is(made.code, 0, made.stderr);
      // the daemon sees what the CLI made (no lost update)
      if ((await apiCall(socket, 'GET', `/networks/${name}`)).status === 200) cliSeen++;
      t0 = performance.now();
      const rm = await cnmAsync([...g, 'network', 'rm', name]);
      cliMs.push(performance.now() - t0);
      t.is(rm.code, 0, rm.stderr);
    }
  })();
  const first = await runApiLoad({ socket, sandboxes, total: 2000, prefix: 'lda', subnetBase: 120 });
  const rss1 = rssMiB(daemon.pid!);
  const second = await runApiLoad({ socket, sandboxes, total: 2000, prefix: 'ldb', subnetBase: 120 });
  const rss2 = rssMiB(daemon.pid!);
  state.loading = false;
  await cliLoop;
  t.log(`run 1: ${first.requests} requests in ${first.wallMs.toFixed(0)} ms: ${summary(first)}`);
  t.log(`run 2: ${second.requests} requests in ${second.wallMs.toFixed(0)} ms`);
  t.log(`daemon RSS: ${rss0.toFixed(1)} MiB before, ${rss1.toFixed(1)} after run 1, ${rss2.toFixed(1)} after run 2`);
  const cli = percentiles(cliMs);
  t.log(`CLI beside the load: ${cliMs.length} operations, p50 ${cli.p50.toFixed(0)} ms, max ${Math.max(...cliMs).toFixed(0)} ms; the daemon saw ${cliSeen} of ${cliMs.length / 2} CLI networks`);
  for (const r of [first, second]) {
    t.deepEqual(r.unexpected, [], 'no 5xx, and every refusal the one the request could expect');
    t.deepEqual(r.left, [], 'every client removed what it made');
    t.true(r.requests >= 2000);
  }
  t.is(cliSeen, cliMs.length / 2, 'every network the CLI made was seen by the daemon');
  t.true(Math.max(...cliMs) < 10_000, 'no CLI operation stalled behind the load');
  t.true(rss2 - rss1 < 40, `memory flat from one run to the next (${(rss2 - rss1).toFixed(1)} MiB)`);
  // store and kernel agree: reconcile has nothing to do
  const dry = cnm([...g, 'system', 'reconcile', '--dry-run']);
  t.is(dry.code, 0, dry.stderr);
  t.notRegex(dry.stdout, /would (remove|restore|add|repair|delete|release)/, dry.stdout);
  t.false((await apiCall(socket, 'GET', '/networks')).body.includes('"lda'), 'nothing of the load left');
  for (const sb of sandboxes) t.is(cnm([...g, 'sandbox', 'rm', sb]).code, 0);
  t.is(cnm([...g, 'network', 'rm', 'ldseed']).code, 0);
});
