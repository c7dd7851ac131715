/**
 * `cnm demo --hosts N`: a cluster on one machine, inside namespaces of its own.
 * An etcd on loopback with a temporary data dir; N host netns on a simulated
 * LAN (a private /24 inside a "switch" netns); on each, a controller in a
 * process of its own, as on real machines. A global overlay network, a sandbox
 * on each host, ping and TCP across hosts through VXLAN, the peers each host
 * learnt from the store; then everything removed, also on failure or Ctrl-C.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { removeSandboxFiles } from '../dns/files.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { NetworkInspect } from '../network.js';
import type { SandboxInspect } from '../sandbox.js';
import { type ClusterHost, startHost } from '../sim/host-client.js';
import { simulatedLan } from '../sim/lan.js';
import { type LocalEtcd, etcdBin, startEtcd } from '../sim/local-etcd.js';
import type { CliContext } from './context.js';
import { pingStats, tcpRoundTrips, withCleanup } from './demo-traffic.js';
import { table } from './format.js';

const LAN = '192.168.240';
const vtep = (i: number) => `${LAN}.${i + 1}`;

export async function clusterDemo(ctx: CliContext, count: number): Promise<number> {
  if (!etcdBin) throw new CnmError('ERR_INVALID_ARGUMENT', 'cnm demo --hosts needs etcd to hold the cluster: apt-get install etcd-server (it is started on loopback with a temporary data dir, never as a service)');
  const tag = `cnm-demo-${process.pid}`;
  const switchNs = `${tag}-lan`;
  const hostNs = Array.from({ length: count }, (_, i) => `${tag}-h${i + 1}`);
  const sbName = (i: number) => `${tag}-h${i + 1}-sb`;
  const stateDir = mkdtempSync(join(tmpdir(), 'cnm-demo-'));
  const hosts: ClusterHost[] = [];
  let etcd: LocalEtcd | undefined;

  const cleanup = async () => {
    for (const h of hosts) if (h.proc.exitCode === null && h.proc.signalCode === null) h.proc.kill('SIGKILL');
    // every device lives in namespaces we made: deleting them takes everything
    const mine = (await native.netnsList().catch(() => [] as string[])).filter((n) => n.startsWith(`${tag}-`));
    await native.netnsDeleteMany(mine).catch((e: unknown) => log.warn('demo clean-up: deleting its namespaces failed', { err: e }));
    await Promise.all(mine.map((n) => removeSandboxFiles(n))).catch((e: unknown) => log.warn('demo clean-up: removing sandbox files failed', { err: e }));
    await etcd?.cleanup().catch((e: unknown) => log.warn('demo clean-up: stopping etcd failed', { err: e }));
    rmSync(stateDir, { recursive: true, force: true });
  };
  return withCleanup(ctx.err, cleanup, async () => {
    etcd = await startEtcd('demo');
    ctx.out(`etcd on ${etcd.url} (loopback, temporary data dir): the cluster store`);
    const lan = await simulatedLan(switchNs);
    for (const [i, ns] of hostNs.entries()) {
      await native.netnsCreate(ns);
      await lan.plug(ns, vtep(i));
    }
    ctx.out(`${count} hosts: netns ${hostNs.join(', ')} on a simulated LAN ${LAN}.0/24 in ${switchNs} (the machine's own network is not touched)`);
    const store = etcd.url.replace('http://', 'etcd://');
    hosts.push(
      ...(await Promise.all(hostNs.map((ns, i) => startHost({ hostNetns: ns, stateDir: join(stateDir, `h${i + 1}`), clusterStore: store, clusterAdvertise: vtep(i) })))),
    );
    ctx.out(`a controller per host, each in a process of its own (pids ${hosts.map((h) => h.proc.pid).join(', ')}), joined to the cluster`);

    const t0 = performance.now();
    const net = await hosts[0]!.call<NetworkInspect>('createNetwork', { name: 'demo-ov', driver: 'overlay', attachable: true });
    ctx.out(
      `overlay network demo-ov made on h1: scope ${net.Scope}, subnet ${net.IPAM.Config[0]?.Subnet}, VNI ${net.Options['com.docker.network.driver.overlay.vxlanid_list']} (${(performance.now() - t0).toFixed(1)} ms)`,
    );
    const sbs: Array<{ ep: SandboxInspect['Networks'][string]; ms: number }> = [];
    for (const [i, h] of hosts.entries()) {
      const t = performance.now();
      const sb = await h.call<SandboxInspect>('createSandbox', { name: sbName(i), net: 'demo-ov' });
      sbs.push({ ep: sb.Networks['demo-ov']!, ms: performance.now() - t });
    }
    ctx.out('');
    ctx.out(
      table(
        ['HOST', 'VTEP', 'SANDBOX', 'ADDRESS', 'MAC', 'CREATE (ms)'],
        sbs.map(({ ep, ms }, i) => [`h${i + 1}`, vtep(i), sbName(i), `${ep.IPAddress}/${ep.IPPrefixLen}`, ep.MacAddress, ms.toFixed(1)]),
      ),
    );

    // each host to the next, around the ring; TCP from the first to the last
    const checks: string[][] = [];
    let lost = false;
    for (let i = 0; i < count; i++) {
      const j = (i + 1) % count;
      if (count === 2 && i === 1) break;
      const { loss, rtt } = await pingStats(sbName(i), sbs[j]!.ep.IPAddress);
      if (loss !== '0') lost = true;
      checks.push([`ping h${i + 1} -> h${j + 1} ${sbs[j]!.ep.IPAddress}`, `${loss}% loss`, rtt]);
    }
    const last = count - 1;
    const tcp = await tcpRoundTrips(sbName(0), sbName(last), sbs[last]!.ep.IPAddress, '7777', 100);
    checks.push([`TCP h1 -> h${last + 1} ${sbs[last]!.ep.IPAddress}:7777`, `${tcp.n} round trips`, `p50 ${tcp.p50.toFixed(3)} ms, max ${tcp.max.toFixed(3)} ms`]);
    ctx.out('');
    ctx.out(table(['CHECK (through VXLAN across hosts)', 'RESULT', 'LATENCY'], checks));
    const peers = (await hosts[0]!.call<NetworkInspect>('inspectNetwork', 'demo-ov')).Peers ?? [];
    ctx.out('');
    ctx.out(`network inspect demo-ov on h1: Peers ${peers.map((p) => p.IP).join(', ')} (each host's tables come from the store, not from learning)`);
    if (lost) throw new CnmError('ERR_KERNEL', 'ping across hosts lost packets');

    ctx.out('');
    for (const [i, h] of hosts.entries()) await h.call('removeSandbox', sbName(i));
    await hosts[0]!.call('removeNetwork', 'demo-ov');
    for (const h of hosts) await h.close();
    ctx.out(`removed sandboxes and network; stopped ${count} hosts and etcd; demo OK`);
    return 0;
  });
}
