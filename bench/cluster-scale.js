// The cluster store at scale: many simulated hosts on one real etcd (loopback),
// all in this process. A simulated host is a controller's cluster part with no
// kernel: its own etcd client, mirror, lease and host record, the cluster IPAM,
// and PeerSync programming an in-memory peer table instead of a VXLAN device.
// An attach does what an overlay attach does in the store: follow the network,
// allocate an address and publish the peer record with it (one CAS transaction).
//
// Workload per run of H hosts: ceil(H/5) overlay networks; host i has endpoints
// on networks i and i+1 (mod the count), so about 10 hosts share each network;
// every host attaches `perHost` endpoints: once all hosts at once (throughput,
// queueing included), once paced at `rate` attaches per second in all (latency).
// Measured: attach time; convergence (attach returning on one host -> the peer in
// the table of each other host on that network), p50/p99; watch events delivered
// per host against what one host mirroring the whole cluster receives; etcd
// requests per second; keys mirrored per host.
import { randomBytes } from 'node:crypto';
import { Cluster, PARTITIONED, clusterKeys } from '../dist/cluster/cluster.js';
import { PeerRecordHooks } from '../dist/cluster/peer-hooks.js';
import { PeerSync } from '../dist/cluster/peer-sync.js';
import { ClusterIpam } from '../dist/ipam/cluster-ipam.js';
import { EtcdStore } from '../dist/store/etcd-store.js';
import { etcdBin, startEtcd } from '../dist/sim/local-etcd.js';

const now = () => performance.now();
const newId = () => randomBytes(32).toString('hex');
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** A peer table in memory that notes when each MAC arrived. */
function memoryTable(onAdd) {
  const devs = new Map();
  const dev = (d) => devs.get(d) ?? devs.set(d, new Map()).get(d);
  return {
    list: async (d) => [...dev(d).values()],
    set: async (d, add, remove) => {
      for (const p of remove) dev(d).delete(p.mac);
      for (const p of add) {
        dev(d).set(p.mac, p);
        onAdd(d, p.mac);
      }
    },
  };
}

async function simHost(url, prefix, i, onAdd) {
  const store = await EtcdStore.open({ endpoints: [url], prefix, partitioned: PARTITIONED });
  await store.grantLease(30);
  const hostId = newId();
  const cluster = await Cluster.simulated(store, hostId, `10.255.${i >> 8}.${i & 255}`);
  const peers = new PeerSync(cluster, memoryTable((d, mac) => onAdd(i, d, mac)));
  peers.start();
  const ipam = new ClusterIpam(store, hostId, store);
  // the peer record goes with the address, as on a real host
  ipam.hooks = new PeerRecordHooks(cluster);
  return { i, store, cluster, peers, ipam };
}

/** One overlay attach's store work, as the cluster IPAM and OverlayDriver.join do it; the peer's MAC. */
async function attach(h, net, epId) {
  const letGo = await h.cluster.hold(net.id);
  try {
    // one transaction: the address, and the peer record with it
    await h.ipam.requestAddress(net, 4, undefined, epId);
    await h.peers.activate(net.id, net.id);
    return h.store.get(clusterKeys.peer(net.id, epId)).mac;
  } finally {
    letGo();
  }
}

function networkRecord(i, run) {
  return {
    id: newId(),
    name: `scale${run}-${i}`,
    driver: 'overlay',
    scope: 'global',
    created: new Date().toISOString(),
    internal: true,
    attachable: true,
    enableIPv6: false,
    options: { 'com.docker.network.driver.overlay.vxlanid_list': String(4096 + i) },
    labels: {},
    ipam: { driver: 'default', options: {}, config: [{ subnet: `10.${100 + (i >> 8)}.${i & 255}.0/24`, gateway: `10.${100 + (i >> 8)}.${i & 255}.1` }], userSubnet: true },
    state: 'ready',
  };
}

/** One run at `hosts` simulated hosts; returns its figures. */
async function scaleRun(url, hosts, perHost, run, rate) {
  const prefix = `cnm/scale${run}/`;
  const netCount = Math.max(1, Math.ceil(hosts / 5));
  const nets = Array.from({ length: netCount }, (_, i) => networkRecord(i, run));
  const membersOf = (h) => [...new Set([h % netCount, (h + 1) % netCount])];
  /** mac -> publish time and network; (host, mac) -> arrival */
  const published = new Map();
  const arrived = new Map();
  const onAdd = (host, _dev, mac) => {
    if (!arrived.has(`${host}|${mac}`)) arrived.set(`${host}|${mac}`, now());
  };
  const t0 = now();
  const sims = [];
  for (let i = 0; i < hosts; i++) sims.push(await simHost(url, prefix, i, onAdd));
  const joinMs = now() - t0;
  // one observer mirrors everything: what each host would receive without partitions
  const observer = await EtcdStore.open({ endpoints: [url], prefix });
  try {
    await sims[0].store.txn((tx) => {
      for (const n of nets) {
        tx.put(`net/${n.id}`, n);
        tx.put(`netname/${n.name}`, n.id);
        tx.put(`vni/${4096 + nets.indexOf(n)}`, n.id);
      }
    });
    for (const s of sims) while (!s.store.get(`net/${nets.at(-1).id}`)) await new Promise((r) => setTimeout(r, 2));
    // every host has its networks, their peer tables kept (its first endpoint there would do this)
    await Promise.all(
      sims.map(async (s) =>
        Promise.all(
          membersOf(s.i).map(async (n) => {
            await s.cluster.keep(nets[n].id);
            await s.peers.activate(nets[n].id, nets[n].id);
          }),
        ),
      ),
    );
    const before = sims.map((s) => s.store.stats());
    const obsBefore = observer.stats().events;
    const attachMs = [];
    const t1 = now();
    await Promise.all(
      sims.map(async (s) => {
        const mine = membersOf(s.i);
        for (let k = 0; k < perHost; k++) {
          // paced: the cluster's attaches spread evenly at `rate` per second
          if (rate > 0) {
            const due = t1 + ((k * hosts + s.i) * 1000) / rate;
            if (due > now()) await new Promise((r) => setTimeout(r, due - now()));
          }
          const net = nets[mine[k % mine.length]];
          const ta = now();
          const mac = await attach(s, net, newId());
          const tb = now();
          attachMs.push(tb - ta);
          published.set(mac, { at: tb, net: nets.indexOf(net), host: s.i });
        }
      }),
    );
    const attachPhase = now() - t1;
    // converged: every other host on the endpoint's network holds it
    const want = [];
    for (const [mac, p] of published) for (const s of sims) if (s.i !== p.host && membersOf(s.i).includes(p.net)) want.push([`${s.i}|${mac}`, p.at]);
    const deadline = now() + 60_000;
    while (want.some(([k]) => !arrived.has(k)) && now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const missing = want.filter(([k]) => !arrived.has(k)).length;
    const converge = want.filter(([k]) => arrived.has(k)).map(([k, at]) => Math.max(0, arrived.get(k) - at));
    const phase = now() - t1;
    const after = sims.map((s) => s.store.stats());
    const events = after.map((a, i) => a.events - before[i].events);
    const requests = after.reduce((n, a, i) => n + a.requests - before[i].requests, 0);
    const conflicts = after.reduce((n, a, i) => n + a.conflicts - before[i].conflicts, 0);
    // the observer has every change of the run (it may lag the hosts under load)
    const last = Math.max(...sims.map((s) => s.store.revision()));
    while (observer.revision() < last && now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return {
      hosts,
      networks: netCount,
      endpoints: hosts * perHost,
      joinMs,
      attachMs,
      attachPhase,
      converge,
      missing,
      eventsPerHost: mean(events),
      eventsMaxHost: Math.max(...events),
      eventsFullMirror: observer.stats().events - obsBefore,
      requestsPerSecond: requests / (phase / 1000),
      conflicts,
      keysPerHost: mean(after.map((a) => a.keys)),
      keysTotal: observer.stats().keys,
    };
  } finally {
    await observer.close();
    for (const s of sims) {
      s.peers.stop();
      await s.store.close({ revoke: true }).catch(() => undefined);
    }
  }
}

/** The scale runs at each host count; rows for the bench table, details printed. */
export async function clusterScaleBench({ rows, summarize, hosts = [3, 30, 100], perHost = 10, rate = 100 }) {
  if (!etcdBin) {
    console.log('cluster-scale section skipped: etcd is not installed (apt-get install etcd-server)');
    return [];
  }
  const etcd = await startEtcd('scale');
  const out = [];
  try {
    let run = 0;
    for (const h of hosts) {
      // all at once (throughput, queueing included), then paced (latency)
      for (const pace of [0, rate]) {
        const r = await scaleRun(etcd.url, h, perHost, run++, pace);
        out.push({ ...r, rate: pace });
        const how = pace ? `${pace} attaches/s` : 'all hosts at once';
        rows.push(summarize(`[scale ${h} hosts, ${how}] attach (store work only; ${r.endpoints} endpoints, ${r.networks} networks)`, r.attachMs));
        rows.push(
          summarize(`[scale ${h} hosts, ${how}] convergence: attach -> peer in each other member's table`, r.converge, {
            target: r.missing ? `${r.missing} never arrived` : 'p50 <= 20 ms, p99 <= 100 ms',
          }),
        );
        console.log(
          `[scale ${h} hosts, ${how}] events per host: mean ${r.eventsPerHost.toFixed(0)}, max ${r.eventsMaxHost} (a host mirroring the whole cluster: ${r.eventsFullMirror}); ` +
            `etcd requests/s ${r.requestsPerSecond.toFixed(0)} (${r.conflicts} transactions ran again after a conflict); keys mirrored per host ${r.keysPerHost.toFixed(0)} of ${r.keysTotal}; ` +
            `join of all hosts ${r.joinMs.toFixed(0)} ms; attach phase ${r.attachPhase.toFixed(0)} ms`,
        );
      }
    }
  } finally {
    await etcd.cleanup();
  }
  return out;
}
