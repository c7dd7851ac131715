// The `load` section (`--load-clients 64`, `--load-requests 20000`): a `cnm daemon`
// process on a host netns of its own, driven by that many Engine API clients at
// once with mixed requests (create, connect, inspect, list, disconnect, rm,
// prune, conflicts; see dist/sim/api-load.js), twice: p50/p99 per request kind,
// answers that were not what they should be (5xx, a wrong 4xx), and the
// daemon's memory before, after the first run and after the second. Then the
// scale of one host: 1 000 sandboxes with 10 published ports each on one network
// (10 000 mappings), and what the daemon's memory, `network ls`, `network
// inspect` of that network and a reconcile cost then.
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../dist/index.js';
import { rssMiB, runApiLoad } from '../dist/sim/api-load.js';
import { api } from './daemon.js';

const BIN = fileURLToPath(new URL('../bin/cnm.js', import.meta.url));

function cnm(args) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`cnm ${args.join(' ')}: ${stderr}`)) : resolve({ ms: performance.now() - t, stdout })));
  });
}

export async function loadBench({ tag, stateDir, rows, summarize, clients = 64, requests = 20000 }) {
  const host = `${tag}-load`;
  const dir = `${stateDir}/load`;
  const socket = join(stateDir, 'load.sock');
  await native.netnsCreate(host);
  const g = ['--host-netns', host, '--state-dir', dir];
  const daemon = spawn(process.execPath, [BIN, ...g, 'daemon', '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  const sandboxes = Array.from({ length: clients }, (_, c) => `${tag}-ld${c}`);
  const many = [];
  try {
    await new Promise((resolve, reject) => {
      let err = '';
      daemon.stderr.on('data', (b) => {
        err += b;
        if (err.includes('listening on')) resolve();
      });
      daemon.once('exit', (code) => reject(new Error(`cnm daemon exited ${code}: ${err}`)));
    });
    await cnm([...g, 'network', 'create', '--internal', '--subnet', '10.119.0.0/16', 'ldseed']);
    for (const sb of sandboxes) await cnm([...g, 'sandbox', 'create', '--net', 'ldseed', sb]);
    const rss = [rssMiB(daemon.pid)];
    for (const [run, prefix] of [
      [1, 'lda'],
      [2, 'ldb'],
      [3, 'ldc'],
    ]) {
      const r = await runApiLoad({ socket, sandboxes, total: requests, prefix, subnetBase: 120 });
      // after the daemon's own background work (reaping, commit marks) has settled, and
      // it has been quiet long enough (2 s) to give the burst's heap back
      await new Promise((resolve) => setTimeout(resolve, 3000));
      rss.push(rssMiB(daemon.pid));
      const bad = r.unexpected.length;
      rows.push({ name: `[load] run ${run}: ${r.requests} requests from ${clients} clients (wall ms; req/s in target)`, n: r.requests, p50: r.wallMs, target: `${((r.requests / r.wallMs) * 1000).toFixed(0)} req/s, ${bad} unexpected answer(s) (target 0)` });
      if (run === 1) {
        for (const [kind, s] of Object.entries(r.kinds)) {
          const row = summarize(`[load] ${kind} (${clients} clients at once)`, s.ms);
          row.target = JSON.stringify(s.statuses);
          rows.push(row);
        }
      }
      if (bad) console.error(r.unexpected.slice(0, 10).join('\n'));
    }
    rows.push({
      name: `[load] daemon RSS MiB: after run 1, 2, 3 (p50/p90/p99 columns; ${rss[0].toFixed(0)} before)`,
      n: 3,
      p50: rss[1],
      p90: rss[2],
      p99: rss[3],
      target: `run 2 grew ${(rss[2] - rss[1]).toFixed(1)} MiB, run 3 ${(rss[3] - rss[2]).toFixed(1)} MiB (flat: ~0 once warm)`,
    });
    for (const sb of sandboxes) await cnm([...g, 'sandbox', 'rm', sb]);

    // one host at scale: 1 000 sandboxes with 10 published ports each
    await api(socket, false, 'POST', '/networks/create', { Name: 'ldpub', IPAM: { Config: [{ Subnet: '10.200.0.0/16' }] } });
    const t0 = performance.now();
    const ctlOpts = { hostNetns: host, stateDir: dir };
    const { NetworkController } = await import('../dist/index.js');
    const ctl = await NetworkController.open(ctlOpts);
    try {
      for (let i = 0; i < 1000; i++) {
        const name = `${tag}-m${i}`;
        many.push(name);
        await ctl.createSandbox({ name, net: 'ldseed' });
        await ctl.connect('ldpub', name, { ports: Array.from({ length: 10 }, (_, k) => ({ containerPort: 80 + k, hostPort: 20000 + i * 10 + k })) });
      }
    } finally {
      await ctl.close();
    }
    const built = performance.now() - t0;
    const rssScale = rssMiB(daemon.pid);
    const ls = [];
    const inspect = [];
    const apiList = [];
    for (let i = 0; i < 10; i++) {
      ls.push((await cnm([...g, 'network', 'ls'])).ms);
      inspect.push((await api(socket, false, 'GET', '/networks/ldpub')).ms);
      apiList.push((await api(socket, false, 'GET', '/networks')).ms);
    }
    const rec = [];
    for (let i = 0; i < 3; i++) rec.push((await cnm([...g, 'system', 'reconcile', '--dry-run'])).ms);
    rows.push({ name: '[load] 1 000 sandboxes x 10 published ports made (library, ms)', n: 1000, p50: built });
    rows.push({ name: '[load] daemon RSS MiB with 1 000 sandboxes and 10 000 ports', n: 1, p50: rssScale });
    rows.push(summarize('[load] cnm network ls (CLI process) at that scale', ls));
    rows.push(summarize('[load] GET /networks/{id} of the network with 1 000 endpoints', inspect));
    rows.push(summarize('[load] GET /networks at that scale', apiList));
    rows.push(summarize('[load] cnm system reconcile --dry-run at that scale (CLI process)', rec));
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((r) => (daemon.exitCode === null ? daemon.once('exit', r) : r()));
    await native.netnsDeleteMany([...sandboxes, ...many, host]).catch(() => undefined);
  }
}
