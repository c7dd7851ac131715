// Cluster benchmarks: three hosts (host netns on a simulated underlay, one
// controller each, in this process) joined to a real etcd on loopback.
//   attach to an overlay network (its etcd transactions included);
//   convergence: from connect() returning on host A until host B's VXLAN device
//   holds the peer entry, and until B's first ping to A's sandbox succeeds;
//   global IPAM allocation (one etcd transaction each);
//   3 hosts x N endpoints on one overlay: the attach time of the last 100 against the first 100.
import { execFile } from 'node:child_process';
import { NetworkController, native } from '../dist/index.js';
import { AddressAllocator } from '../dist/ipam/allocator.js';
import { simulatedLan } from '../dist/sim/lan.js';
import { etcdBin, startEtcd } from '../dist/sim/local-etcd.js';

const now = () => performance.now();

/** One ping from netns `ns` to `ip` with a 1 s wait: whether it was answered. */
function pingOnce(ns, ip) {
  return new Promise((resolve) => execFile('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', '-q', ip], (err) => resolve(!err)));
}
const VTEPS = ['192.168.79.1', '192.168.79.2', '192.168.79.3'];

/**
 * The reference for the 3 hosts x N row: the same sandbox creates on a local
 * bridge network of three hosts with no cluster, so that what grows in the
 * kernel and the local store is told apart from what the cluster adds. A
 * section of its own: the kernel reclaims thousands of namespaces for many
 * seconds after either run, which would slow whatever ran next.
 */
export async function clusterReference({ tag, stateDir, rows, summarize, endpoints }) {
  const hostNs = [0, 1, 2].map((i) => `${tag}-lh${i}`);
  const ctls = [];
  const names = [];
  try {
    for (const [i, ns] of hostNs.entries()) {
      await native.netnsCreate(ns);
      const ctl = await NetworkController.open({ hostNetns: ns, stateDir: `${stateDir}/local${i}` });
      await ctl.ready();
      await ctl.createNetwork({ name: 'lbig', internal: true, ipam: [{ subnet: '10.233.0.0/16' }] });
      ctls.push(ctl);
    }
    const perHost = await Promise.all(
      ctls.map(async (ctl, h) => {
        const times = [];
        for (let i = 0; i < endpoints; i++) {
          const name = `${tag}-l${h}-${i}`;
          const t = now();
          await ctl.createSandbox({ name, net: 'lbig' });
          times.push(now() - t);
          names.push(name);
        }
        return times;
      }),
    );
    const first = summarize(`[cluster] reference, no cluster: sandbox create on a local bridge, 3 hosts x ${endpoints}: first 100 on A`, perHost[0].slice(0, 100));
    const last = summarize(`[cluster] reference, no cluster: sandbox create on a local bridge, 3 hosts x ${endpoints}: last 100 on A`, perHost[0].slice(-100));
    last.target = `ratio ${(last.p50 / first.p50).toFixed(2)} (the kernel's and the local store's growth)`;
    rows.push(first, last);
  } finally {
    for (const ctl of ctls) await ctl.close().catch(() => undefined);
    await native.netnsDeleteMany([...names, ...hostNs]).catch(() => undefined);
  }
}

export async function clusterBench({ tag, stateDir, rows, summarize, endpoints = 1000 }) {
  if (!etcdBin) {
    console.log('cluster section skipped: etcd is not installed (apt-get install etcd-server)');
    return;
  }
  const etcd = await startEtcd('bench');
  const sw = `${tag}-csw`;
  const hostNs = VTEPS.map((_, i) => `${tag}-ch${i}`);
  const ctls = [];
  const sandboxes = [];
  try {
    const lan = await simulatedLan(sw);
    for (const [i, ns] of hostNs.entries()) {
      await native.netnsCreate(ns);
      await lan.plug(ns, VTEPS[i]);
      const ctl = await NetworkController.open({
        hostNetns: ns,
        stateDir: `${stateDir}/cluster${i}`,
        clusterStore: etcd.url.replace('http://', 'etcd://'),
        clusterAdvertise: VTEPS[i],
      });
      await ctl.ready();
      ctls.push(ctl);
    }
    const [a, b, c] = ctls;

    // attach and convergence, one connect at a time on A
    const ov = await a.createNetwork({ name: 'bov', driver: 'overlay', internal: true, ipam: [{ subnet: '10.230.0.0/20' }] });
    const dev = `ovx-${ov.id.slice(0, 10)}`;
    await a.createNetwork({ name: 'seed', ipam: [{ subnet: '10.231.0.0/20' }] });
    const probe = `${tag}-cprobe`;
    await b.createSandbox({ name: probe, net: 'bov' });
    sandboxes.push([b, probe]);
    const attach = [];
    const converge = [];
    for (let i = 0; i < 100; i++) {
      const name = `${tag}-ca${i}`;
      await a.createSandbox({ name, net: 'seed' });
      sandboxes.push([a, name]);
      const t0 = now();
      const ep = await a.connect('bov', name);
      const t1 = now();
      attach.push(t1 - t0);
      const want = ep.record.ipv4.split('/')[0];
      while (!(await native.listPeers(hostNs[1], dev)).some((p) => p.ips.includes(want))) await new Promise((r) => setImmediate(r));
      converge.push(now() - t1);
    }
    rows.push(summarize('[cluster] overlay attach (etcd transactions included)', attach, { target: '<= 5 ms p50' }));
    rows.push(summarize('[cluster] convergence: connect on A -> peer entry on B', converge, { target: 'p50 <= 20 ms, p99 <= 100 ms' }));

    const firstPing = [];
    for (let i = 0; i < 10; i++) {
      const name = `${tag}-cp${i}`;
      await a.createSandbox({ name, net: 'seed' });
      sandboxes.push([a, name]);
      const ep = await a.connect('bov', name);
      const t1 = now();
      const to = ep.record.ipv4.split('/')[0];
      // asynchronously: host B's controller runs in this very process and must program the peer meanwhile
      while (!(await pingOnce(probe, to))) {
        // ping waits for its answer: a failed one already took its time
      }
      firstPing.push(now() - t1);
    }
    rows.push(summarize('[cluster] convergence: connect on A -> first ping from B answered', firstPing));

    // global IPAM: one etcd transaction per address
    const alloc = new AddressAllocator(a.ctx.cluster.store);
    const rec = ov.record;
    const ipam = [];
    for (let i = 0; i < 300; i++) {
      const t = now();
      await a.ctx.cluster.store.txn((tx) => alloc.allocate(tx, rec, 4, `bench-${i}`));
      ipam.push(now() - t);
    }
    rows.push(summarize('[cluster] global IPAM allocation (etcd)', ipam));
    // scale: every host adds endpoints on one overlay network at once
    const big = await a.createNetwork({ name: 'bbig', driver: 'overlay', internal: true, ipam: [{ subnet: '10.232.0.0/16' }] });
    // the other hosts see it once their watch delivers it
    for (const ctl of [b, c]) while (!ctl.listNetworks().some((n) => n.name === 'bbig')) await new Promise((r) => setTimeout(r, 2));
    const perHost = await Promise.all(
      [a, b, c].map(async (ctl, h) => {
        const times = [];
        for (let i = 0; i < endpoints; i++) {
          const name = `${tag}-s${h}-${i}`;
          const t = now();
          await ctl.createSandbox({ name, net: 'bbig' });
          times.push(now() - t);
          sandboxes.push([ctl, name]);
        }
        return times;
      }),
    );
    const firsts = perHost[0].slice(0, 100);
    const lasts = perHost[0].slice(-100);
    const row = summarize(`[cluster] sandbox create on an overlay, 3 hosts x ${endpoints}: last 100 on A`, lasts);
    const first = summarize('first 100', firsts);
    row.target = `ratio ${(row.p50 / first.p50).toFixed(2)} to the first 100 (<= 1.3)`;
    rows.push({ ...first, name: `[cluster] sandbox create on an overlay, 3 hosts x ${endpoints}: first 100 on A` });
    rows.push(row);
    const bigDev = `ovx-${big.id.slice(0, 10)}`;
    const t0 = now();
    while ((await native.listPeers(hostNs[0], bigDev)).length < 2 * endpoints) await new Promise((r) => setTimeout(r, 5));
    rows.push(summarize(`[cluster] until A holds all ${2 * endpoints} remote peers after the last create`, [now() - t0]));
  } finally {
    // everything lives in these namespaces, the state dirs and etcd's temporary data dir
    for (const ctl of ctls) await ctl.close().catch(() => undefined);
    await native.netnsDeleteMany([...sandboxes.map(([, name]) => name), sw, ...hostNs]).catch(() => undefined);
    await etcd.cleanup();
  }
}
