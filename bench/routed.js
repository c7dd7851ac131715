// The `routed` section: a routed network across three hosts (host netns on a
// simulated LAN, each with its controller in a process of its own) on a real
// etcd on loopback.
//   attach: a connect to the routed network on A beside a connect to a local
//   bridge network on A, interleaved (times taken inside A's process);
//   route convergence: host C joins the network (its first sandbox there takes a
//   block) until A and B both route C's block; then C leaves (its last sandbox
//   goes) until neither does.
import { native } from '../dist/index.js';
import { etcdBin, startEtcd } from '../dist/sim/local-etcd.js';
import { startHosts } from './cluster.js';

const now = () => performance.timeOrigin + performance.now();
const tick = () => new Promise((r) => setImmediate(r));
/** host C's underlay address (see startHosts) */
const UNDERLAY_C = '192.168.79.3';

/** Whether host netns `ns` routes `block` via a gateway. */
async function routes(ns, block) {
  return (await native.listRoutes(ns, 4)).some((r) => r.dst === block && r.gateway);
}

export async function routedBench({ tag, stateDir, rows, summarize, n = 100, joins = 20 }) {
  if (!etcdBin) {
    console.log('routed section skipped: etcd is not installed (apt-get install etcd-server)');
    return;
  }
  const etcd = await startEtcd('bench-routed');
  const sandboxes = [];
  let started;
  try {
    started = await startHosts(tag, `${stateDir}/routed`, 'rh', etcd.url);
    const { hostNs, hosts } = started;
    const [a, , c] = hosts;
    await a.call('createNetwork', { name: 'brt', driver: 'routed', ipam: [{ subnet: '10.240.0.0/16' }] });
    await a.call('createNetwork', { name: 'rbr', ipam: [{ subnet: '10.241.0.0/16' }] });
    // a local network of their own for A's and C's sandboxes before they join
    for (const h of [a, c]) await h.call('createNetwork', { name: 'rseed', internal: true, ipam: [{ subnet: '10.242.0.0/16' }] });
    // B holds a block too, so that A routes something from the start
    const probe = `${tag}-rprobe`;
    await hosts[1].call('createSandbox', { name: probe, net: 'brt' });
    sandboxes.push(probe);

    const routed = [];
    const bridge = [];
    for (let i = 0; i < n; i++) {
      const [x, y] = [`${tag}-ra${i}`, `${tag}-rb${i}`];
      await a.call('createSandbox', { name: x, net: 'rseed' });
      await a.call('createSandbox', { name: y, net: 'rseed' });
      sandboxes.push(x, y);
      routed.push((await a.call('timedConnect', 'brt', x)).ms);
      bridge.push((await a.call('timedConnect', 'rbr', y)).ms);
    }
    rows.push(summarize(`[routed] attach to a routed network (N=${n} on host A)`, routed));
    rows.push(summarize(`[routed] attach to a local bridge network, same host, same run (N=${n})`, bridge));

    // convergence: C joins (takes a block) and leaves, `joins` times
    const join = [];
    const joinFromStart = [];
    const leave = [];
    const others = [hostNs[0], hostNs[1]];
    for (let i = 0; i < joins; i++) {
      const name = `${tag}-rc${i}`;
      await c.call('createSandbox', { name, net: 'rseed' });
      sandboxes.push(name);
      // C's block is the one it held before (remembered), or the first free: watch every candidate
      // from before the connect, so that the route is seen as soon as it is made
      const watching = new AbortController();
      const firstSeen = new Map();
      const watch = (async () => {
        while (!watching.signal.aborted) {
          for (const ns of others) {
            for (const r of await native.listRoutes(ns, 4)) {
              if (r.gateway === UNDERLAY_C && !firstSeen.has(`${ns}|${r.dst}`)) firstSeen.set(`${ns}|${r.dst}`, now());
            }
          }
          await tick();
        }
      })();
      const r = await c.call('timedConnect', 'brt', name);
      const block = `${r.ip.split('.').slice(0, 3).join('.')}.0/24`;
      while (!others.every((ns) => firstSeen.has(`${ns}|${block}`))) await tick();
      watching.abort();
      await watch;
      const seen = Math.max(...others.map((ns) => firstSeen.get(`${ns}|${block}`)));
      join.push(Math.max(0, seen - r.at));
      joinFromStart.push(seen - (r.at - r.ms));
      // the same for the way out: watched while the disconnect runs (its kernel work
      // goes on after the block is given back)
      const t = now();
      const gone = Promise.all(
        others.map(async (ns) => {
          while (await routes(ns, block)) await tick();
          return now();
        }),
      );
      const [done] = await Promise.all([gone, c.call('disconnect', 'brt', name)]);
      leave.push(Math.max(...done) - t);
    }
    rows.push(summarize('[routed] convergence: host C joins -> A and B route its block, after C\'s connect returned', join));
    rows.push(summarize('[routed] convergence: host C joins (its connect starts) -> A and B route its block', joinFromStart));
    rows.push(summarize('[routed] convergence: host C leaves (its disconnect starts) -> A and B drop its block', leave));
  } finally {
    for (const h of started?.hosts ?? []) await h.close();
    await native.netnsDeleteMany([...sandboxes, ...(started?.namespaces ?? [])]).catch(() => undefined);
    await etcd.cleanup();
  }
}
