// Cluster benchmarks: three hosts (host netns on a simulated LAN, each with its
// controller in a process of its own, as on real machines) joined to a real etcd
// on loopback. Times are taken inside the host processes; convergence compares
// absolute times (performance.timeOrigin + now) across processes.
//   attach to an overlay network (its etcd transactions included);
//   convergence: from connect() returning on host A until host B's VXLAN device
//   holds the peer entry, and until B's first ping to A's sandbox succeeds;
//   global IPAM allocation (one etcd transaction each);
//   3 hosts x N endpoints on one overlay: the attach time of the last 100 against the first 100.
import { execFile } from 'node:child_process';
import { native } from '../dist/index.js';
import { startHost } from '../dist/sim/host-client.js';
import { simulatedLan } from '../dist/sim/lan.js';
import { etcdBin, startEtcd } from '../dist/sim/local-etcd.js';

const now = () => performance.timeOrigin + performance.now();

/** One ping from netns `ns` to `ip` with a 1 s wait: whether it was answered. */
function pingOnce(ns, ip) {
  return new Promise((resolve) => execFile('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', '-q', ip], (err) => resolve(!err)));
}
const VTEPS = ['192.168.79.1', '192.168.79.2', '192.168.79.3'];

/** Three host netns on a LAN, each with a host process; `cluster` adds the cluster options. */
export async function startHosts(tag, stateDir, prefix, etcdUrl) {
  const hostNs = VTEPS.map((_, i) => `${tag}-${prefix}${i}`);
  const lan = await simulatedLan(`${tag}-${prefix}sw`);
  const hosts = [];
  for (const [i, ns] of hostNs.entries()) {
    await native.netnsCreate(ns);
    await lan.plug(ns, VTEPS[i]);
    const cluster = etcdUrl ? { clusterStore: etcdUrl.replace('http://', 'etcd://'), clusterAdvertise: VTEPS[i] } : {};
    hosts.push(await startHost({ hostNetns: ns, stateDir: `${stateDir}/${prefix}${i}`, ...cluster }));
  }
  return { hostNs, hosts, namespaces: [lan.switchNs, ...hostNs] };
}

/** Every host creates `endpoints` sandboxes on `net` at once; the first and last 100 of host A. */
async function perHostCreates(hosts, tag, prefix, net, endpoints, sandboxes) {
  const perHost = await Promise.all(
    hosts.map((h, i) => {
      const names = Array.from({ length: endpoints }, (_, k) => `${tag}-${prefix}${i}-${k}`);
      sandboxes.push(...names);
      return h.call('timedCreates', names, net);
    }),
  );
  return { first: perHost[0].slice(0, 100), last: perHost[0].slice(-100) };
}

/**
 * The reference for the 3 hosts x N row: the same sandbox creates on a local
 * bridge network of three hosts with no cluster, so that what grows in the
 * kernel and the local store is told apart from what the cluster adds. A
 * section of its own: the kernel reclaims thousands of namespaces for many
 * seconds after either run, which would slow whatever ran next.
 */
export async function clusterReference({ tag, stateDir, rows, summarize, endpoints }) {
  const sandboxes = [];
  let started;
  try {
    started = await startHosts(tag, stateDir, 'lh', undefined);
    for (const h of started.hosts) await h.call('createNetwork', { name: 'lbig', internal: true, ipam: [{ subnet: '10.233.0.0/16' }] });
    const { first, last } = await perHostCreates(started.hosts, tag, 'l', 'lbig', endpoints, sandboxes);
    const f = summarize(`[cluster] reference, no cluster: sandbox create on a local bridge, 3 hosts x ${endpoints}: first 100 on A`, first);
    const l = summarize(`[cluster] reference, no cluster: sandbox create on a local bridge, 3 hosts x ${endpoints}: last 100 on A`, last);
    l.target = `ratio ${(l.p50 / f.p50).toFixed(2)} (the kernel's and the local store's growth)`;
    rows.push(f, l);
  } finally {
    for (const h of started?.hosts ?? []) await h.close();
    await native.netnsDeleteMany([...sandboxes, ...(started?.namespaces ?? [])]).catch(() => undefined);
  }
}

export async function clusterBench({ tag, stateDir, rows, summarize, endpoints = 1000 }) {
  if (!etcdBin) {
    console.log('cluster section skipped: etcd is not installed (apt-get install etcd-server)');
    return;
  }
  const etcd = await startEtcd('bench');
  const sandboxes = [];
  let started;
  try {
    started = await startHosts(tag, stateDir, 'ch', etcd.url);
    const { hostNs, hosts } = started;
    const [a, b, c] = hosts;

    // attach and convergence, one connect at a time on A
    const ov = await a.call('createNetwork', { name: 'bov', driver: 'overlay', internal: true, ipam: [{ subnet: '10.230.0.0/20' }] });
    const dev = `ovx-${ov.Id.slice(0, 10)}`;
    await a.call('createNetwork', { name: 'seed', ipam: [{ subnet: '10.231.0.0/20' }] });
    const probe = `${tag}-cprobe`;
    await b.call('createSandbox', { name: probe, net: 'bov' });
    sandboxes.push(probe);
    /** a new sandbox on A (on a local network), then its connect to the overlay, timed on A */
    const connectNew = async (name) => {
      await a.call('createSandbox', { name, net: 'seed' });
      sandboxes.push(name);
      return a.call('timedConnect', 'bov', name);
    };
    const attach = [];
    const converge = [];
    for (let i = 0; i < 100; i++) {
      const r = await connectNew(`${tag}-ca${i}`);
      attach.push(r.ms);
      while (!(await native.listPeers(hostNs[1], dev)).some((p) => p.ips.includes(r.ip))) await new Promise((res) => setImmediate(res));
      converge.push(Math.max(0, now() - r.at));
    }
    rows.push(summarize('[cluster] overlay attach (etcd transactions included)', attach, { target: '<= 5 ms p50' }));
    rows.push(summarize('[cluster] convergence: connect on A -> peer entry on B', converge, { target: 'p50 <= 20 ms, p99 <= 100 ms' }));

    const firstPing = [];
    for (let i = 0; i < 10; i++) {
      const r = await connectNew(`${tag}-cp${i}`);
      // ping waits for its answer: a failed one already took its time
      while (!(await pingOnce(probe, r.ip))) {
        /* again */
      }
      firstPing.push(now() - r.at);
    }
    rows.push(summarize('[cluster] convergence: connect on A -> first ping from B answered', firstPing));

    // global IPAM: one etcd transaction per address
    rows.push(summarize('[cluster] global IPAM allocation (etcd)', await a.call('ipamTimes', 'bov', 300)));

    // scale: every host adds endpoints on one overlay network at once
    const big = await a.call('createNetwork', { name: 'bbig', driver: 'overlay', internal: true, ipam: [{ subnet: '10.232.0.0/16' }] });
    // the other hosts see it once their watch delivers it
    for (const h of [b, c]) while (!(await h.call('listNetworks')).some((n) => n.name === 'bbig')) await new Promise((r) => setTimeout(r, 2));
    const { first, last } = await perHostCreates(hosts, tag, 's', 'bbig', endpoints, sandboxes);
    const f = summarize(`[cluster] sandbox create on an overlay, 3 hosts x ${endpoints}: first 100 on A`, first);
    const l = summarize(`[cluster] sandbox create on an overlay, 3 hosts x ${endpoints}: last 100 on A`, last);
    l.target = `ratio ${(l.p50 / f.p50).toFixed(2)} to the first 100 (<= 1.3)`;
    rows.push(f, l);
    const bigDev = `ovx-${big.Id.slice(0, 10)}`;
    const t0 = now();
    while ((await native.listPeers(hostNs[0], bigDev)).length < 2 * endpoints) await new Promise((r) => setTimeout(r, 5));
    rows.push(summarize(`[cluster] until A holds all ${2 * endpoints} remote peers after the last create`, [now() - t0]));
  } finally {
    // everything lives in these namespaces, the state dirs and etcd's temporary data dir
    for (const h of started?.hosts ?? []) await h.close();
    await native.netnsDeleteMany([...sandboxes, ...(started?.namespaces ?? [])]).catch(() => undefined);
    await etcd.cleanup();
  }
}
