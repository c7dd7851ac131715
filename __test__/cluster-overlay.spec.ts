// A simulated cluster: host netns on a shared underlay, each with its controller
// in a process of its own, joined to a real etcd on loopback. Overlay networks
// are created on one host, seen on the others, and carry real traffic between
// sandboxes of different hosts through VXLAN; peers follow the store.
import test from 'ava';
import { NetworkController } from '../ts/controller.js';
import { startDaemon } from '../ts/daemon/server.js';
import { EtcdStore } from '../ts/store/etcd-store.js';
import type { NetworkInspect } from '../ts/network.js';
import { native } from '../ts/native.js';
import type { SandboxInspect } from '../ts/sandbox.js';
import { type ClusterHost, HostError, startHost } from '../ts/sim/host-client.js';
import { type TestEtcd, etcdBin, startEtcd } from './helpers/etcd.js';
import { dockerAt, dockerBin } from './helpers/docker-cli.js';
import { type IsolatedHost, eventually, isolatedHost, ping6, pings } from './helpers/host.js';
import { startEchoServer, tcpTry } from './helpers/tcp.js';
import { HOST_IP, OUTSIDE_IP, wireOutside } from './helpers/outside.js';
import { simulatedLan as underlay } from '../ts/sim/lan.js';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dig } from './helpers/dns.js';

const withEtcd = etcdBin ? test.serial : test.serial.skip;
if (!etcdBin) console.log('cluster tests skipped: etcd is not installed (apt-get install etcd-server; .ci/run does)');

let etcd: TestEtcd;
const isolated: IsolatedHost[] = [];
const hosts: ClusterHost[] = [];
let switchNs = '';
let lan: Awaited<ReturnType<typeof underlay>> | undefined;
const VTEPS = ['192.168.78.1', '192.168.78.2', '192.168.78.3', '192.168.78.4'];

test.before(async () => {
  if (!etcdBin) return;
  etcd = await startEtcd('cluster');
  for (const [i, vtep] of VTEPS.slice(0, 3).entries()) {
    const h = await isolatedHost(`ovc${i}`);
    isolated.push(h);
    if (i === 0) {
      switchNs = h.name('sw');
      lan = await underlay(switchNs);
    }
    await lan!.plug(h.ns, vtep);
    hosts.push(await startHost({ hostNetns: h.ns, stateDir: h.stateDir, clusterStore: etcd.url.replace('http://', 'etcd://'), clusterAdvertise: vtep, clusterLeaseTtl: 3 }));
  }
});
test.after.always(async () => {
  for (const h of hosts) await h.close();
  for (const h of hosts) h.proc.kill('SIGKILL');
  if (switchNs) await native.netnsDeleteMany([switchNs]).catch(() => undefined);
  for (const h of isolated) await h.cleanup();
  await etcd?.cleanup();
});

const code = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as HostError).code;
  }
};

withEtcd('an overlay network made on one host is global: seen on the other, sandboxes on both talk through VXLAN', async (t) => {
  const [a, b] = hosts as [ClusterHost, ClusterHost];
  const net = await a.call<NetworkInspect>('createNetwork', { name: 'ov', driver: 'overlay', ipam: [{ subnet: '10.210.0.0/24' }] });
  t.is(net.Scope, 'global');
  t.is(net.Options['com.docker.network.driver.overlay.vxlanid_list'], '4096', "Docker's first VNI");
  t.true(await eventually(async () => (await b.call<Array<{ name: string; scope: string }>>('listNetworks')).some((n) => n.name === 'ov' && n.scope === 'global')));
  const sa = await a.call<SandboxInspect>('createSandbox', { name: isolated[0]!.name('sa'), net: 'ov' });
  const sb = await b.call<SandboxInspect>('createSandbox', { name: isolated[1]!.name('sb'), net: 'ov' });
  const ipA = sa.Networks.ov!.IPAddress;
  const ipB = sb.Networks.ov!.IPAddress;
  t.not(ipA, ipB, 'one address space for the cluster');
  t.true(await eventually(() => pings(isolated[0]!.name('sa'), ipB), 5000), `A ${ipA} -> B ${ipB}`);
  t.true(pings(isolated[1]!.name('sb'), ipA), 'B -> A');
  const server = await startEchoServer(isolated[1]!.name('sb'), '0.0.0.0', 80);
  try {
    t.is(tcpTry(isolated[0]!.name('sa'), ipB, 80, 'across hosts'), 'across hosts');
  } finally {
    server.kill('SIGKILL');
  }
  // the underlay MTU (1500) less VXLAN's 50
  t.is(Number((await native.listLinks(isolated[0]!.name('sa'))).find((l) => l.name === 'eth0')!.mtu), 1450);
  const ins = await a.call<NetworkInspect>('inspectNetwork', 'ov');
  t.deepEqual(
    ins.Peers?.map((p) => p.IP),
    VTEPS.slice(0, 2),
  );
  // each host's device holds exactly the other host's endpoint
  const peersOn = (i: number) => native.listPeers(isolated[i]!.ns, `ovx-${net.Id.slice(0, 10)}`);
  t.deepEqual(
    (await peersOn(0)).map((p) => [p.ips.join(), p.vtep]),
    [[ipB, VTEPS[1]]],
  );
  // a removed sandbox leaves every table
  await b.call('removeSandbox', isolated[1]!.name('sb'));
  t.true(await eventually(async () => (await peersOn(0)).length === 0, 3000), 'gone from A');
  t.false(pings(isolated[0]!.name('sa'), ipB));
  // in use on A: not removable, from either host
  t.is(await code(b.call('removeNetwork', 'ov')), 'ERR_NETWORK_IN_USE');
  await a.call('removeSandbox', isolated[0]!.name('sa'));
  await b.call('removeNetwork', 'ov');
  t.true(await eventually(async () => !(await a.call<Array<{ name: string }>>('listNetworks')).some((n) => n.name === 'ov')));
  const links = (await native.listLinks(isolated[0]!.ns)).map((l) => l.name);
  t.false(
    links.some((l) => l.startsWith('ovx-') || l.startsWith('ovb-')),
    `no overlay device left on A: ${links.join()}`,
  );
});

withEtcd('a host follows only the networks it has endpoints on: the others\' endpoint events never reach it', async (t) => {
  const [a, b] = hosts as [ClusterHost, ClusterHost];
  type Stats = { events: number; keys: number; watches: number; kept: string[] };
  const p1 = await a.call<NetworkInspect>('createNetwork', { name: 'ovf1', driver: 'overlay', internal: true, ipam: [{ subnet: '10.214.1.0/24' }] });
  const p2 = await a.call<NetworkInspect>('createNetwork', { name: 'ovf2', driver: 'overlay', internal: true, ipam: [{ subnet: '10.214.2.0/24' }] });
  t.true(await eventually(async () => (await b.call<Array<{ name: string }>>('listNetworks')).some((n) => n.name === 'ovf2')), 'every host sees the network list');
  const [fa, fb] = [isolated[0]!.name('fa'), isolated[1]!.name('fb')];
  await a.call('createSandbox', { name: fa, net: 'ovf1' });
  await b.call('createSandbox', { name: fb, net: 'ovf2' });
  t.deepEqual((await a.call<Stats>('clusterStats')).kept, [p1.Id]);
  t.deepEqual((await b.call<Stats>('clusterStats')).kept, [p2.Id]);
  // ten endpoints come and go on ovf1 (A only): B hears none of it
  const before = await b.call<Stats>('clusterStats');
  const names = Array.from({ length: 10 }, (_, i) => isolated[0]!.name(`fx${i}`));
  await a.call('createSandboxes', names, 'ovf1');
  await a.call('removeSandboxes', names);
  await new Promise((r) => setTimeout(r, 300));
  const after = await b.call<Stats>('clusterStats');
  t.is(after.events - before.events, 0, 'no event of a network B has no endpoint on');
  t.is(after.keys, before.keys);
  // Peers show where the network is in use, as in Docker
  t.deepEqual((await a.call<NetworkInspect>('inspectNetwork', 'ovf2')).Peers ?? [], []);
  // B joins ovf1: it follows it, with everything already there, then lets go with its last endpoint
  await b.call('connect', 'ovf1', fb);
  t.deepEqual((await b.call<Stats>('clusterStats')).kept.sort(), [p1.Id, p2.Id].sort());
  t.true(await eventually(async () => (await native.listPeers(isolated[1]!.ns, `ovx-${p1.Id.slice(0, 10)}`)).length === 1), 'B holds A\'s peer on ovf1');
  await b.call('disconnect', 'ovf1', fb);
  t.deepEqual((await b.call<Stats>('clusterStats')).kept, [p2.Id]);
  await a.call('removeSandbox', fa);
  await b.call('removeSandbox', fb);
  t.deepEqual((await a.call<Stats>('clusterStats')).kept, []);
  // removal from a host that follows neither: it still sees the networks are free and purges them
  await b.call('removeNetwork', 'ovf1');
  await b.call('removeNetwork', 'ovf2');
  t.deepEqual((await b.call<Stats>('clusterStats')).kept, []);
});

withEtcd('names, subnets and VNIs are the cluster\'s: two hosts racing for one name, one wins; bad input is coded', async (t) => {
  const [a, b] = hosts as [ClusterHost, ClusterHost];
  for (let round = 0; round < 3; round++) {
    const results = await Promise.all([a, b].map((h) => code(h.call('createNetwork', { name: `race${round}`, driver: 'overlay' }))));
    t.deepEqual([...results].sort(), ['ERR_NAME_CONFLICT', 'ok'], `round ${round}: ${results.join()}`);
  }
  const first = await a.call<NetworkInspect>('inspectNetwork', 'race0');
  t.is(await code(b.call('createNetwork', { name: 'sub', driver: 'overlay', ipam: [{ subnet: first.IPAM.Config[0]!.Subnet }] })), 'ERR_SUBNET_OVERLAP');
  const vni = first.Options['com.docker.network.driver.overlay.vxlanid_list'];
  t.is(await code(b.call('createNetwork', { name: 'vni', driver: 'overlay', options: { 'com.docker.network.driver.overlay.vxlanid_list': vni } })), 'ERR_INVALID_ARGUMENT');
  for (let round = 0; round < 3; round++) await a.call('removeNetwork', `race${round}`);
  t.false((await b.call<Array<{ name: string }>>('listNetworks')).some((n) => n.name.startsWith('race') || n.name === 'sub' || n.name === 'vni'));
  // no cluster store: overlay is refused, and the advertise address must be the host's
  const plain = await isolatedHost('ovcplain');
  try {
    const ctl = await NetworkController.open({ hostNetns: plain.ns, stateDir: plain.stateDir });
    const e = await t.throwsAsync(ctl.createNetwork({ name: 'x', driver: 'overlay' }));
    t.is((e as HostError).code, 'ERR_INVALID_ARGUMENT');
    t.deepEqual(
      ctl.listNetworks().map((n) => n.name),
      ['none', 'host', 'bridge'],
    );
    await ctl.close();
    const bad = await NetworkController.open({ hostNetns: plain.ns, stateDir: plain.stateDir, clusterStore: etcd.url.replace('http://', 'etcd://'), clusterAdvertise: '192.168.78.77' });
    const e2 = await t.throwsAsync(bad.ready());
    t.is((e2 as HostError).code, 'ERR_INVALID_ARGUMENT', (e2 as Error).message);
    await bad.close();
  } finally {
    await plain.cleanup();
  }
});

withEtcd('a host killed drops out of the others\' tables when its lease ends, keeps its addresses, and comes back on restart', async (t) => {
  const [a, b] = hosts as [ClusterHost, ClusterHost];
  const net = await a.call<NetworkInspect>('createNetwork', { name: 'ovk', driver: 'overlay', ipam: [{ subnet: '10.211.0.0/24' }] });
  const [nsA, nsB] = [isolated[0]!.name('ka'), isolated[1]!.name('kb')];
  const sa = await a.call<SandboxInspect>('createSandbox', { name: nsA, net: 'ovk' });
  await b.call<SandboxInspect>('createSandbox', { name: nsB, net: 'ovk' });
  const ipA = sa.Networks.ovk!.IPAddress;
  t.true(await eventually(() => pings(nsB, ipA), 5000));
  const peersOnB = () => native.listPeers(isolated[1]!.ns, `ovx-${net.Id.slice(0, 10)}`);
  t.is((await peersOnB()).length, 1);
  a.proc.kill('SIGKILL');
  await new Promise((r) => a.proc.once('exit', r));
  const t0 = Date.now();
  t.true(await eventually(async () => (await peersOnB()).length === 0, 10_000), 'A left B\'s table');
  t.log(`A's peer left B's table ${Date.now() - t0} ms after the kill (lease TTL 3 s)`);
  // its address is still its own: not handed out again
  const other = await b.call<SandboxInspect>('createSandbox', { name: isolated[1]!.name('kc'), net: 'ovk' });
  t.not(other.Networks.ovk!.IPAddress, ipA);
  // A restarts: reconcile publishes its endpoint again, with its address, and traffic flows
  const again = await startHost({ hostNetns: isolated[0]!.ns, stateDir: isolated[0]!.stateDir, clusterStore: etcd.url.replace('http://', 'etcd://'), clusterAdvertise: VTEPS[0], clusterLeaseTtl: 3 });
  hosts[0] = again;
  t.true(await eventually(async () => (await peersOnB()).length === 1, 5000), 'A is back in B\'s table');
  t.true(await eventually(() => pings(nsB, ipA), 5000), 'B reaches A\'s sandbox at its old address');
  t.is((await again.call<SandboxInspect>('inspectSandbox', nsA)).Networks.ovk!.IPAddress, ipA);
  for (const [h, sb] of [[again, nsA], [b, nsB], [b, isolated[1]!.name('kc')]] as const) await h.call('removeSandbox', sb);
  await b.call('removeNetwork', 'ovk');
});

(etcdBin && dockerBin ? test.serial : test.serial.skip)('the stock docker CLI makes an overlay network through cnm daemon on a third host; it carries traffic to the others', async (t) => {
  const b = hosts[1]!;
  const c = await isolatedHost('ovcd');
  isolated.push(c);
  await lan!.plug(c.ns, VTEPS[3]!);
  const d = await startDaemon({ socket: `${c.tmp('sock')}/cnm.sock`, controller: { hostNetns: c.ns, stateDir: c.stateDir, clusterStore: etcd.url.replace('http://', 'etcd://'), clusterAdvertise: VTEPS[3] } });
  try {
    const docker = (...a: string[]) => dockerAt(d.socket, ...a);
    let r = await docker('network', 'create', '-d', 'overlay', '--attachable', '--subnet', '10.212.0.0/24', 'dov');
    t.is(r.code, 0, r.err);
    r = await docker('network', 'ls', '--filter', 'name=dov', '--format', '{{.Name}} {{.Driver}} {{.Scope}}');
    t.is(r.out, 'dov overlay global');
    t.true(await eventually(async () => (await b.call<Array<{ name: string }>>('listNetworks')).some((n) => n.name === 'dov')));
    const sc = await d.controller.createSandbox({ name: c.name('sc') });
    r = await docker('network', 'connect', 'dov', sc.name);
    t.is(r.code, 0, r.err);
    const ipC = d.controller.getSandbox(sc.name).inspect().Networks.dov!.IPAddress;
    await b.call<SandboxInspect>('createSandbox', { name: isolated[1]!.name('db'), net: 'dov' });
    t.true(await eventually(() => pings(isolated[1]!.name('db'), ipC), 5000), `B -> C ${ipC}`);
    r = await docker('network', 'inspect', '-f', '{{.Scope}} {{range .Peers}}{{.IP}} {{end}}', 'dov');
    t.is(r.out.trim(), `global ${VTEPS[1]} ${VTEPS[3]}`);
    await b.call('removeSandbox', isolated[1]!.name('db'));
    t.is((await docker('network', 'disconnect', 'dov', sc.name)).code, 0);
    t.is((await docker('network', 'rm', 'dov')).code, 0);
  } finally {
    await d.close();
  }
});

withEtcd('etcd down: local networks work, overlay traffic flows, global operations fail in bounded time and change nothing; back: caught up', async (t) => {
  const [a, b] = [hosts[0]!, hosts[1]!];
  await a.call('createNetwork', { name: 'ovo', driver: 'overlay', ipam: [{ subnet: '10.213.0.0/24' }] });
  const [nsA, nsB] = [isolated[0]!.name('oa'), isolated[1]!.name('ob')];
  const sa = await a.call<SandboxInspect>('createSandbox', { name: nsA, net: 'ovo' });
  await b.call('createSandbox', { name: nsB, net: 'ovo' });
  const ipA = sa.Networks.ovo!.IPAddress;
  t.true(await eventually(() => pings(nsB, ipA), 5000));
  await etcd.stop();
  try {
    t.true(pings(nsB, ipA), 'the tunnels carry on without etcd');
    const local = await a.call<NetworkInspect>('createNetwork', { name: 'loc', ipam: [{ subnet: '10.214.0.0/24' }] });
    t.is(local.Scope, 'local', 'local networks keep working');
    await a.call('removeNetwork', 'loc');
    const t0 = Date.now();
    t.is(await code(a.call('createNetwork', { name: 'ovx', driver: 'overlay' })), 'ERR_CLUSTER_UNAVAILABLE');
    t.is(await code(b.call('createSandbox', { name: isolated[1]!.name('oc'), net: 'ovo' })), 'ERR_CLUSTER_UNAVAILABLE');
    t.true(Date.now() - t0 < 12_000, `both failed within ${Date.now() - t0} ms`);
    t.false(await native.netnsExists(isolated[1]!.name('oc')), 'the failed sandbox left no netns');
    t.false((await b.call<Array<{ name: string }>>('listNetworks')).some((n) => n.name === 'ovx'));
  } finally {
    await etcd.start();
  }
  // a sandbox made once etcd is back reaches A's table: the watch caught up
  const sc = await eventuallyValue(() => b.call<SandboxInspect>('createSandbox', { name: isolated[1]!.name('oc'), net: 'ovo' }), 10_000);
  const ipC = sc.Networks.ovo!.IPAddress;
  t.true(await eventually(() => pings(nsA, ipC), 5000), `A -> the new sandbox ${ipC}`);
  t.true(pings(nsB, ipA), 'and the old peers are all still there');
  for (const [h, n] of [[a, nsA], [b, nsB], [b, isolated[1]!.name('oc')]] as const) await h.call('removeSandbox', n);
  await a.call('removeNetwork', 'ovo');
});

/** The value of fn once it stops throwing, within ms. */
async function eventuallyValue<T>(fn: () => Promise<T>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > until) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

withEtcd('three hosts x 50 concurrent sandboxes on one overlay network: 150 distinct addresses, every peer table exactly the store', async (t) => {
  const net = await hosts[0]!.call<NetworkInspect>('createNetwork', { name: 'ovm', driver: 'overlay', ipam: [{ subnet: '10.215.0.0/24' }] });
  const names = (i: number) => Array.from({ length: 50 }, (_, k) => isolated[i]!.name(`m${k}`));
  const t0 = Date.now();
  const ips = await Promise.all([0, 1, 2].map((i) => hosts[i]!.call<string[]>('createSandboxes', names(i), 'ovm')));
  t.log(`150 sandboxes on three hosts in ${Date.now() - t0} ms`);
  t.is(new Set(ips.flat()).size, 150, 'distinct addresses');
  const dev = `ovx-${net.Id.slice(0, 10)}`;
  const table = async (i: number) => (await native.listPeers(isolated[i]!.ns, dev)).map((p) => p.ips.join()).sort();
  for (const i of [0, 1, 2]) {
    const others = JSON.stringify(ips.filter((_, j) => j !== i).flat().sort());
    t.true(await eventually(async () => JSON.stringify(await table(i)) === others, 5000), `host ${i} holds exactly the other hosts' 100`);
  }
  t.true(pings(names(0)[7]!, ips[1]![42]!), 'and they carry traffic');
  t.true(pings(names(2)[3]!, ips[0]![11]!));
  await Promise.all([0, 1, 2].map((i) => hosts[i]!.call('removeSandboxes', names(i))));
  // every address went back, however the removals interleaved (etcd read directly)
  const probe = await EtcdStore.open({ endpoints: [etcd.url], prefix: 'cnm/default/' });
  try {
    t.deepEqual(
      probe.range(`ipam/${net.Id}/`).filter(([k]) => k.includes('/a/')),
      [],
      'no address left allocated',
    );
  } finally {
    await probe.close();
  }
  await hosts[0]!.call('removeNetwork', 'ovm');
  t.deepEqual(await native.listLinks(isolated[1]!.ns).then((l) => l.filter((x) => x.name === dev)), [], 'the device went with the last endpoint');
});

withEtcd('an overlay sandbox reaches the outside and publishes ports through the gateway bridge; an internal overlay reaches nothing', async (t) => {
  const a = hosts[0]!;
  const outside = isolated[0]!.name('out');
  await wireOutside(isolated[0]!.ns, outside);
  await a.call('createNetwork', { name: 'ovg', driver: 'overlay', ipam: [{ subnet: '10.216.0.0/24' }] });
  await a.call('createNetwork', { name: 'ovi', driver: 'overlay', internal: true, ipam: [{ subnet: '10.217.0.0/24' }] });
  const ns = isolated[0]!.name('g1');
  const sb = await a.call<SandboxInspect>('createSandbox', { name: ns, net: 'ovg', ports: [{ containerPort: 80, hostPort: 8090 }] });
  t.deepEqual(Object.keys(sb.Networks).sort(), ['cnm_gwbridge', 'ovg'], 'a second interface on the gateway bridge');
  t.deepEqual(sb.Ports['80/tcp']?.map((p) => `${p.HostIp}:${p.HostPort}`), ['0.0.0.0:8090']);
  const server = await startEchoServer(ns, '0.0.0.0', 80);
  try {
    t.true(pings(ns, OUTSIDE_IP), 'out through the gateway bridge, masqueraded');
    t.is(tcpTry(outside, HOST_IP, 8090, 'published'), 'published', 'in through a published port');
  } finally {
    server.kill('SIGKILL');
  }
  const gws = await a.call<NetworkInspect>('inspectNetwork', 'cnm_gwbridge');
  t.is(gws.Options['com.docker.network.bridge.enable_icc'], 'false');
  const iso = isolated[0]!.name('g2');
  const si = await a.call<SandboxInspect>('createSandbox', { name: iso, net: 'ovi' });
  t.deepEqual(Object.keys(si.Networks), ['ovi'], 'no gateway bridge for an internal overlay');
  t.false(pings(iso, OUTSIDE_IP));
  // leaving the overlay takes the gateway bridge interface with it
  await a.call('createNetwork', { name: 'loc2', ipam: [{ subnet: '10.218.0.0/24' }] });
  await a.call('connect', 'loc2', ns, {});
  await a.call('disconnect', 'ovg', ns);
  t.deepEqual(Object.keys((await a.call<SandboxInspect>('inspectSandbox', ns)).Networks), ['loc2']);
  for (const n of [ns, iso]) await a.call('removeSandbox', n);
  for (const n of ['ovg', 'ovi', 'loc2']) await a.call('removeNetwork', n);
});

// the issue asks for 1 000 operations (about 40 s here); CNM_CHURN_OPS sets another number
const CHURN_OPS = Number(process.env.CNM_CHURN_OPS ?? 1000);

withEtcd(`peer tables stay exact under churn: ${CHURN_OPS} random connects, disconnects and sandbox removals on three hosts, an etcd outage, a restart`, async (t) => {
  t.timeout(60_000 + CHURN_OPS * 200);
  const nets = ['ch1', 'ch2'];
  const made = await Promise.all(nets.map((n, i) => hosts[0]!.call<NetworkInspect>('createNetwork', { name: n, driver: 'overlay', ipam: [{ subnet: `10.22${i}.0.0/24` }] })));
  const store = await EtcdStore.open({ endpoints: [etcd.url], prefix: 'cnm/default/' });
  const sides = [0, 1, 2].map((i) => ({ h: () => hosts[i]!, iso: isolated[i]!, live: new Map<string, Set<string>>() }));
  // a fixed seed: the same churn every run
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  /** every host's device on every network equals the other hosts' peer records in the store */
  const exact = async () => {
    for (const [i, side] of sides.entries()) {
      for (const net of made) {
        const dev = `ovx-${net.Id.slice(0, 10)}`;
        const want = store
          .range<{ vtep: string; ips: string[]; mac: string }>(`peer/${net.Id}/`)
          .map(([, p]) => p)
          .filter((p) => p.vtep !== VTEPS[i])
          .map((p) => `${p.mac}|${p.vtep}|${p.ips.join()}`)
          .sort();
        const links = (await native.listLinks(side.iso.ns)).map((l) => l.name);
        const have = links.includes(dev) ? (await native.listPeers(side.iso.ns, dev)).map((p) => `${p.mac}|${p.vtep}|${p.ips.join()}`).sort() : [];
        // a host with no endpoint on a network has no device: it holds nothing
        const expected = [...side.live.values()].some((s) => s.has(net.Name)) ? want : [];
        if (JSON.stringify(have) !== JSON.stringify(expected)) return `host ${i} ${net.Name}: have ${have.length}, want ${expected.length}`;
      }
    }
    return 'exact';
  };
  let madeCount = 0;
  /** `count` random operations, each on a random host */
  const churn = async (count: number) => {
    for (let op = 0; op < count; op++) {
      const side = sides[rand(3)]!;
      const names = [...side.live.keys()];
      const r = rand(10);
      if (r < 4 || names.length === 0) {
        const name = side.iso.name(`c${madeCount++}`);
        const net = nets[rand(2)]!;
        await side.h().call('createSandbox', { name, net });
        side.live.set(name, new Set([net]));
      } else if (r < 7) {
        const name = names[rand(names.length)]!;
        const on = side.live.get(name)!;
        const net = nets.find((x) => !on.has(x));
        if (net) {
          await side.h().call('connect', net, name, {});
          on.add(net);
        } else {
          const off = [...on][rand(on.size)]!;
          await side.h().call('disconnect', off, name);
          on.delete(off);
        }
      } else {
        const name = names[rand(names.length)]!;
        await side.h().call('removeSandbox', name);
        side.live.delete(name);
      }
    }
  };
  try {
    await churn(Math.ceil(CHURN_OPS / 2));
    t.true(await eventually(async () => (await exact()) === 'exact', 5000), await exact());
    // etcd away for a while, then back: the watches resume, the tables stay exact
    await etcd.stop();
    await new Promise((r) => setTimeout(r, 1500));
    await etcd.start();
    t.true(await eventually(async () => (await exact()) === 'exact', 10_000), `after an etcd outage: ${await exact()}`);
    await churn(Math.floor(CHURN_OPS / 2));
    t.true(await eventually(async () => (await exact()) === 'exact', 5000), `after more churn: ${await exact()}`);
    // a restart of B: its tables are made again from the store
    await hosts[1]!.close();
    hosts[1] = await startHost({ hostNetns: isolated[1]!.ns, stateDir: isolated[1]!.stateDir, clusterStore: etcd.url.replace('http://', 'etcd://'), clusterAdvertise: VTEPS[1], clusterLeaseTtl: 3 });
    t.true(await eventually(async () => (await exact()) === 'exact', 5000), `after a restart: ${await exact()}`);
    // a stale entry put in by hand: reconcile removes it
    const fix = isolated[0]!.name('cfix');
    await hosts[0]!.call('createSandbox', { name: fix, net: 'ch1' });
    sides[0]!.live.set(fix, new Set(['ch1']));
    const dev = `ovx-${made[0]!.Id.slice(0, 10)}`;
    await native.setPeers({ netns: isolated[0]!.ns, device: dev, add: [{ mac: '02:00:00:00:00:99', ips: ['10.220.0.250'], vtep: '192.168.78.9' }] });
    t.not(await exact(), 'exact');
    await hosts[0]!.call('reconcile');
    t.is(await exact(), 'exact', 'reconcile repaired the table');
  } finally {
    for (const side of sides) for (const name of side.live.keys()) await side.h().call('removeSandbox', name).catch(() => undefined);
    for (const n of nets) await hosts[0]!.call('removeNetwork', n).catch(() => undefined);
    await store.close();
  }
});

withEtcd('reconcile frees the addresses its host took for endpoints it no longer has; never another host\'s, never one in flight', async (t) => {
  const a = hosts[0]!;
  const net = await a.call<NetworkInspect>('createNetwork', { name: 'ovr', driver: 'overlay', internal: true, ipam: [{ subnet: '10.226.0.0/24' }] });
  const sa = await a.call<SandboxInspect>('createSandbox', { name: isolated[0]!.name('ra'), net: 'ovr' });
  const probe = await EtcdStore.open({ endpoints: [etcd.url], prefix: 'cnm/default/' });
  try {
    const hostOf = (vtep: string) => probe.range<{ id: string; advertise: string }>('host/').find(([, h]) => h.advertise === vtep)![1].id;
    const key = (ip: string) => `ipam/${net.Id}/10.226.0.0/24/a/${ip}`;
    // what a crash between a host's steps leaves: addresses whose endpoint that host no longer has
    await probe.txn((tx) => {
      tx.put(key('10.226.0.200'), { endpointId: 'gone-a', host: hostOf(VTEPS[0]!), at: 0 });
      tx.put(key('10.226.0.201'), { endpointId: 'gone-b', host: hostOf(VTEPS[1]!), at: 0 });
      tx.put(key('10.226.0.202'), { endpointId: 'in-flight', host: hostOf(VTEPS[0]!), at: Date.now() });
    });
    const rep = await a.call<{ actions: string[] }>('reconcile');
    const freed = rep.actions.filter((x) => x.startsWith('free leaked address'));
    t.deepEqual(freed, ['free leaked address 10.226.0.200 on ovr']);
    t.true(await eventually(() => probe.get(key('10.226.0.200')) === undefined, 3000), 'A\'s orphan is free');
    t.truthy(probe.get(key('10.226.0.201')), 'B\'s is B\'s to judge (B may be down and come back)');
    t.truthy(probe.get(key('10.226.0.202')), 'a connect in flight keeps its address');
    t.truthy(probe.get(key(sa.Networks.ovr!.IPAddress)), 'a live endpoint keeps its address');
    await probe.txn((tx) => {
      tx.del(key('10.226.0.201'));
      tx.del(key('10.226.0.202'));
    });
  } finally {
    await probe.close();
  }
  await a.call('removeSandbox', isolated[0]!.name('ra'));
  await a.call('removeNetwork', 'ovr');
});

withEtcd('a dual-stack overlay network carries IPv4 and IPv6 between hosts', async (t) => {
  const [a, b] = [hosts[0]!, hosts[1]!];
  const net = await a.call<NetworkInspect>('createNetwork', { name: 'ov6', driver: 'overlay', internal: true, ipam: [{ subnet: '10.225.0.0/24' }, { subnet: 'fd00:225::/64' }] });
  t.true(net.EnableIPv6);
  t.true(await eventually(async () => (await b.call<Array<{ name: string }>>('listNetworks')).some((n) => n.name === 'ov6')));
  const [nsA, nsB] = [isolated[0]!.name('v6a'), isolated[1]!.name('v6b')];
  await a.call('createSandbox', { name: nsA, net: 'ov6' });
  const sb = await b.call<SandboxInspect>('createSandbox', { name: nsB, net: 'ov6' });
  const ip6 = sb.Networks.ov6!.GlobalIPv6Address;
  t.regex(ip6, /^fd00:225::/);
  t.true(await eventually(() => pings(nsA, sb.Networks.ov6!.IPAddress), 5000), 'IPv4 across');
  t.true(await eventually(() => ping6(nsA, ip6), 5000), `IPv6 across to ${ip6}`);
  await a.call('removeSandbox', nsA);
  await b.call('removeSandbox', nsB);
  await a.call('removeNetwork', 'ov6');
});

withEtcd('a host gone for good keeps its addresses until it is forgotten; a live host cannot be', async (t) => {
  const [a, c] = [hosts[0]!, hosts[2]!];
  type HostInfo = { id: string; alive: boolean; addresses: number; advertise: string };
  await a.call('createNetwork', { name: 'ovz', driver: 'overlay', internal: true, ipam: [{ subnet: '10.228.0.0/24' }] });
  const sc = await c.call<SandboxInspect>('createSandbox', { name: isolated[2]!.name('z1'), net: 'ovz' });
  const ipC = sc.Networks.ovz!.IPAddress;
  const idC = (await a.call<HostInfo[]>('clusterHosts')).find((h) => h.advertise === VTEPS[2])!.id;
  t.is(await code(a.call('forgetClusterHost', idC)), 'ERR_INVALID_ARGUMENT', 'refused while C is alive');
  c.proc.kill('SIGKILL');
  // its lease runs out (TTL 3 s): C is gone, still holding its address
  t.true(await eventually(async () => (await a.call<HostInfo[]>('clusterHosts')).some((h) => h.id === idC && !h.alive && h.addresses === 1), 8000));
  t.is(await a.call<number>('forgetClusterHost', idC.slice(0, 12)), 1);
  t.false((await a.call<HostInfo[]>('clusterHosts')).some((h) => h.id === idC), 'nothing left of C');
  // its address is free again
  const again = await a.call<SandboxInspect>('createSandbox', { name: isolated[0]!.name('z2'), net: 'ovz', ip: ipC });
  t.is(again.Networks.ovz!.IPAddress, ipC);
  t.is(await code(a.call('forgetClusterHost', 'ffffffffffff')), 'ERR_INVALID_ARGUMENT');
  await a.call('removeSandbox', isolated[0]!.name('z2'));
});

withEtcd('names resolve across hosts on an overlay network, and leave with their sandbox', async (t) => {
  const [a, b] = hosts as [ClusterHost, ClusterHost];
  // no upstream server on these hosts: an unknown name is NXDOMAIN, nothing is sent anywhere
  for (const h of isolated.slice(0, 2)) {
    mkdirSync(`/etc/netns/${h.ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${h.ns}/resolv.conf`, '# no nameserver\n');
  }
  try {
    await a.call('serveDns');
    await b.call('serveDns');
    await a.call('createNetwork', { name: 'ovdns', driver: 'overlay', ipam: [{ subnet: '10.215.0.0/24' }] });
    const na = isolated[0]!.name('dnsa');
    const nb = isolated[1]!.name('dnsb');
    const sa = await a.call<SandboxInspect>('createSandbox', { name: na, net: 'ovdns', aliases: ['svc'] });
    const sb = await b.call<SandboxInspect>('createSandbox', { name: nb, net: 'ovdns' });
    const [ipA, ipB] = [sa.Networks.ovdns!.IPAddress, sb.Networks.ovdns!.IPAddress];
    t.true(await eventually(() => dig(nb, [na]).answers[0] === ipA, 3000), 'B resolves A, on another host');
    t.deepEqual(dig(nb, ['svc']).answers, [ipA], 'by its alias');
    t.deepEqual(dig(nb, [`${na}.ovdns`]).answers, [ipA]);
    t.deepEqual(dig(nb, ['-x', ipA]).answers, [`${na}.ovdns.`]);
    t.true(await eventually(() => dig(na, [nb]).answers[0] === ipB, 3000), 'and A resolves B');
    await a.call('removeSandbox', na);
    t.true(await eventually(() => dig(nb, [na], undefined, 1).status === 'NXDOMAIN', 3000), 'gone on the other host too');
    t.is(dig(nb, ['svc'], undefined, 1).status, 'NXDOMAIN');
    await b.call('removeSandbox', nb);
    await a.call('removeNetwork', 'ovdns');
  } finally {
    for (const h of isolated.slice(0, 2)) rmSync(`/etc/netns/${h.ns}`, { recursive: true, force: true });
  }
});
