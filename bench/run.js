// The benchmark harness: `npm run bench [-- --json FILE] [-- --sizes 1,100,500] [-- SECTION…]`.
// SECTIONs (default: all): controller (create/rm, attach/detach, IPAM), reconcile, daemon, firewall,
// cluster (overlay across three hosts on a real etcd; `--cluster-endpoints N` per host, default 1000),
// cluster-scale (simulated hosts without a kernel on one etcd; `--scale-hosts 3,30,100`),
// cluster-reference (only when named: the 3 hosts x N row on a local bridge, no cluster),
// dns (the embedded resolver beside aardvark-dns, with dnsperf; `--dns-sandboxes N`, default 1000),
// macvlan (the macvlan endpoint beside the veth endpoint: native calls, then controller connects),
// routed (a routed network across three hosts: attach beside a bridge attach, route convergence),
// cli (a cnm command's cost as a process beside node -e 0),
// teardown (attach at scale, detach / sandbox rm / network rm and a burst's drain; `--teardown-n N`),
// peers (the same container sequence through cnm, the CNI plugins and netavark; `--peers-sizes 50,200`),
// load (a cnm daemon under `--load-clients 64` API clients and `--load-requests 20000`, its memory,
// then 1 000 sandboxes with 10 000 published ports: ls, inspect and reconcile at that scale).
// Everything runs inside a host netns of its own; the machine's network is untouched.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NetworkController, native } from '../dist/index.js';
import { AddressAllocator } from '../dist/ipam/allocator.js';
import { Pool } from '../dist/ipam/pool.js';
import { clusterBench, clusterReference } from './cluster.js';
import { clusterScaleBench } from './cluster-scale.js';
import { daemonBench } from './daemon.js';
import { dnsBench } from './dns.js';
import { macvlanBench } from './macvlan.js';
import { routedBench } from './routed.js';
import { cliBench } from './cli.js';
import { teardownBench } from './teardown.js';
import { peersBench } from './peers.js';
import { loadBench } from './load.js';
import { firewallBench } from './firewall.js';
import { ipamBench } from './ipam.js';
import { printTable, summarize } from './stats.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    json: { type: 'string' },
    sizes: { type: 'string', default: '1,100,500' },
    firewall: { type: 'string', default: 'nftables,iptables' },
    'cluster-endpoints': { type: 'string', default: '1000' },
    'scale-hosts': { type: 'string', default: '3,30,100' },
    'dns-sandboxes': { type: 'string', default: '1000' },
    'teardown-n': { type: 'string', default: '1000' },
    'peers-sizes': { type: 'string', default: '50,200' },
    'load-clients': { type: 'string', default: '64' },
    'load-requests': { type: 'string', default: '20000' },
  },
});
const sizes = values.sizes.split(',').map(Number);
const sections = ['controller', 'reconcile', 'daemon', 'firewall', 'dns', 'macvlan', 'routed', 'cli', 'teardown', 'peers', 'load', 'cluster', 'cluster-scale', 'cluster-reference'];
for (const p of positionals) if (!sections.includes(p)) throw new Error(`unknown section ${p}; known: ${sections.join(', ')}`);
// cluster-reference runs only when named: see bench/cluster.js
const want = (section) => (positionals.length === 0 && section !== 'cluster-reference') || positionals.includes(section);
const tag = `cnm-bench-${process.pid}`;
const hostNs = `${tag}-host`;
const stateDir = mkdtempSync(join(tmpdir(), 'cnm-bench-'));
const rows = [];
const now = () => performance.now();

async function time(fn) {
  const t = now();
  await fn();
  return now() - t;
}

async function cleanup() {
  const mine = (await native.netnsList()).filter((n) => n.startsWith(tag));
  await native.netnsDeleteMany(mine);
  // the files of sandboxes a section left to this cleanup
  if (existsSync('/etc/netns')) for (const d of readdirSync('/etc/netns')) if (d.startsWith(tag)) rmSync(`/etc/netns/${d}`, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  if (want('controller')) {
    await native.netnsCreate(hostNs);
    const ctl = await NetworkController.open({ stateDir, hostNetns: hostNs });
    // the host set-up (firewall base rules, predefined networks) is not what is timed
    await ctl.ready();

    // network create / rm
    const create = [];
    const rm = [];
    for (let i = 0; i < 30; i++) {
      create.push(await time(() => ctl.createNetwork({ name: `bn${i}`, ipam: [{ subnet: `10.200.${i}.0/24` }] })));
    }
    for (let i = 0; i < 30; i++) rm.push(await time(() => ctl.removeNetwork(`bn${i}`)));
    rows.push(summarize('network create', create, { target: '<= 3 ms p50' }));
    rows.push(summarize('network rm', rm));

    // attach / detach at N sandboxes on one network; netns creation timed on its own
    await ctl.createNetwork({ name: 'seed', ipam: [{ subnet: '10.128.0.0/16' }] });
    for (const n of sizes) {
      const net = `bench${n}`;
      await ctl.createNetwork({ name: net, ipam: [{ subnet: `10.${100 + sizes.indexOf(n)}.0.0/16` }] });
      const names = Array.from({ length: n }, (_, i) => `${tag}-n${n}-${i}`);
      const nsCreate = [];
      for (const name of names) nsCreate.push(await time(() => native.netnsCreate(name)));
      rows.push(summarize(`netns create (N=${n})`, nsCreate));
      // sandboxes need a record: bind them as sandboxes via the seed network, then time
      // the attach to the benchmark network (a second, full veth attach: eth1)
      await native.netnsDeleteMany(names);
      for (const name of names) await ctl.createSandbox({ name, net: 'seed' });
      const attach = [];
      for (const name of names) attach.push(await time(() => ctl.connect(net, name)));
      rows.push(summarize(`endpoint attach (N=${n})`, attach, { target: '<= 1.5 ms p50' }));
      const detach = [];
      for (const name of names) detach.push(await time(() => ctl.disconnect(net, name)));
      rows.push(summarize(`endpoint detach (N=${n})`, detach));
      const sbRm = [];
      for (const name of names) sbRm.push(await time(() => ctl.removeSandbox(name)));
      rows.push(summarize(`sandbox rm (N=${n})`, sbRm));
      await ctl.removeNetwork(net);
    }

    // IPAM: in memory, and persisted in the store (one transaction per allocation)
    const pool = new Pool({ subnet: '10.0.0.0/16' });
    const mem = [];
    for (let i = 0; i < 20000; i++) {
      const t = now();
      const off = pool.nextFree();
      pool.take(off, true);
      mem.push(now() - t);
    }
    rows.push(summarize('ipam allocate in memory (/16)', mem));
    const ipam = new AddressAllocator(ctl.store);
    const seed = ctl.getNetwork('seed').record;
    const persisted = [];
    for (let i = 0; i < 2000; i++) {
      persisted.push(await time(() => ctl.store.txn((tx) => ipam.allocate(tx, seed, 4, `bench-${i}`))));
    }
    rows.push(summarize('ipam allocate persisted (/16)', persisted));
    await ipamBench(rows, { summarize });
    await ctl.close();
  }

  // reconcile with 1 000 endpoints in the store and the kernel (target: under 1 s)
  if (want('reconcile')) {
    await native.netnsCreate(`${tag}-rc`);
    const rc = await NetworkController.open({ stateDir: `${stateDir}/reconcile`, hostNetns: `${tag}-rc` });
    await rc.createNetwork({ name: 'many', ipam: [{ subnet: '10.140.0.0/20' }] });
    const many = Array.from({ length: 1000 }, (_, i) => `${tag}-r${i}`);
    for (let i = 0; i < many.length; i += 50) {
      await Promise.all(many.slice(i, i + 50).map((name) => rc.createSandbox({ name, net: 'many' })));
    }
    const samples = [];
    for (let i = 0; i < 5; i++) samples.push(await time(() => rc.reconcile()));
    rows.push(summarize('reconcile, 1000 endpoints', samples, { target: '< 1000 ms' }));
    await native.netnsDeleteMany(many);
    await rc.reconcile();
    await rc.close();
  }

  if (want('daemon')) await daemonBench({ tag, stateDir, rows, summarize });

  for (const backend of want('firewall') ? values.firewall.split(',').filter(Boolean) : []) {
    await firewallBench({ backend, tag, stateDir, rows });
  }

  if (want('macvlan')) await macvlanBench({ tag, stateDir, rows, summarize });

  if (want('routed')) await routedBench({ tag, stateDir, rows, summarize });

  if (want('cli')) await cliBench({ tag, stateDir, rows, summarize });

  if (want('teardown')) await teardownBench({ tag, stateDir, rows, summarize, n: Number(values['teardown-n']) });

  if (want('peers')) await peersBench({ tag, stateDir, rows, summarize, sizes: values['peers-sizes'].split(',').map(Number) });

  if (want('load')) await loadBench({ tag, stateDir, rows, summarize, clients: Number(values['load-clients']), requests: Number(values['load-requests']) });

  if (want('dns')) await dnsBench({ tag, stateDir, rows, summarize, sandboxes: Number(values['dns-sandboxes']) });

  if (want('cluster')) await clusterBench({ tag, stateDir, rows, summarize, endpoints: Number(values['cluster-endpoints']) });
  if (want('cluster-reference')) await clusterReference({ tag, stateDir, rows, summarize, endpoints: Number(values['cluster-endpoints']) });
  if (want('cluster-scale')) await clusterScaleBench({ rows, summarize, hosts: values['scale-hosts'].split(',').map(Number) });

  printTable(rows);
  if (values.json) writeFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), rows }, null, 2));
} finally {
  await cleanup();
}
