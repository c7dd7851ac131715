// Routed networks on a simulated cluster: three host netns on an underlay
// switch, each with its controller in a process of its own, joined to a real
// etcd on loopback, and an "outside" netns on the same underlay that is no
// host of the cluster. Each host holds a block of the network's subnet and
// routes the others' blocks via their underlay addresses: traffic between
// sandboxes of different hosts keeps its source address, traffic that leaves
// the cluster is masqueraded (unless turned off), and a host that dies drops
// out of the others' tables and gets its block back when it returns.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { native } from '../ts/native.js';
import type { NetworkInspect } from '../ts/network.js';
import type { SandboxInspect } from '../ts/sandbox.js';
import { type ClusterHost, type HostError, startHost } from '../ts/sim/host-client.js';
import { simulatedLan as underlay } from '../ts/sim/lan.js';
import { type TestEtcd, etcdBin, startEtcd } from './helpers/etcd.js';
import { type IsolatedHost, eventually, isolatedHost, pings } from './helpers/host.js';
import { startPeerServer, tcpTry } from './helpers/tcp.js';

const withEtcd = etcdBin ? test.serial : test.serial.skip;
if (!etcdBin) console.log('routed cluster tests skipped: etcd is not installed (apt-get install etcd-server; .ci/run does)');

let etcd: TestEtcd;
const isolated: IsolatedHost[] = [];
const hosts: ClusterHost[] = [];
let switchNs = '';
let outside = '';
const UNDERLAY = ['192.168.79.1', '192.168.79.2', '192.168.79.3'];
const OUTSIDE = '192.168.79.100';

const start = (i: number) =>
  startHost({ hostNetns: isolated[i]!.ns, stateDir: isolated[i]!.stateDir, clusterStore: etcd.url.replace('http://', 'etcd://'), clusterAdvertise: UNDERLAY[i], clusterLeaseTtl: 3 });

test.before(async () => {
  if (!etcdBin) return;
  etcd = await startEtcd('routed');
  let lan: Awaited<ReturnType<typeof underlay>> | undefined;
  for (const [i, addr] of UNDERLAY.entries()) {
    const h = await isolatedHost(`rtc${i}`);
    isolated.push(h);
    if (i === 0) {
      switchNs = h.name('sw');
      lan = await underlay(switchNs);
      outside = h.name('out');
      await native.netnsCreate(outside);
      await lan.plug(outside, OUTSIDE);
    }
    await lan!.plug(h.ns, addr);
    hosts.push(await start(i));
  }
});
test.after.always(async () => {
  for (const h of hosts) await h.close().catch(() => undefined);
  for (const h of hosts) h.proc.kill('SIGKILL');
  if (switchNs) await native.netnsDeleteMany([switchNs, outside]).catch(() => undefined);
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

/** The routes of host i inside `prefix` that go via a gateway: "block via gw realm". */
function clusterRoutes(i: number, prefix: string): string[] {
  const out = execFileSync('ip', ['-n', isolated[i]!.ns, '-4', 'route', 'show'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.startsWith(prefix) && l.includes(' via '))
    .map((l) => {
      const [dst, , via] = l.split(' ');
      const realm = /realm (\S+)/.exec(l)?.[1] ?? 'none';
      return `${dst} via ${via} realm ${realm}`;
    })
    .sort();
}

const blockOf = (ip: string) => `${ip.split('.').slice(0, 3).join('.')}.0/24`;

withEtcd('three hosts: each holds a block, routes the others\' blocks, and sandboxes talk across hosts with their own addresses', async (t) => {
  const [a, b, c] = hosts as [ClusterHost, ClusterHost, ClusterHost];
  const net = await a.call<NetworkInspect>('createNetwork', { name: 'rt', driver: 'routed', ipam: [{ subnet: '10.220.0.0/16' }] });
  t.is(net.Scope, 'global');
  t.is(net.Options.block_size, '24');
  const names = [0, 1, 2].map((i) => isolated[i]!.name(`s${i}`));
  const sbs = await Promise.all([a, b, c].map((h, i) => h.call<SandboxInspect>('createSandbox', { name: names[i], net: 'rt' })));
  const ips = sbs.map((s) => s.Networks.rt!.IPAddress);
  const blocks = ips.map(blockOf);
  t.is(new Set(blocks).size, 3, `one block per host: ${ips.join(', ')}`);
  for (const [i, s] of sbs.entries()) t.is(s.Networks.rt!.Gateway, blocks[i]!.replace('.0/24', '.1'), 'the gateway is the host bridge in its block');
  // every host routes exactly the other two blocks, via their underlay addresses, tagged with the cluster realm
  for (let i = 0; i < 3; i++) {
    const want = [0, 1, 2]
      .filter((j) => j !== i)
      .map((j) => `${blocks[j]} via ${UNDERLAY[j]} realm 193`)
      .sort();
    t.true(await eventually(() => clusterRoutes(i, '10.220.').join() === want.join(), 5000), `host ${i}: ${clusterRoutes(i, '10.220.').join('; ')}`);
  }
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) if (i !== j) t.true(pings(names[i]!, ips[j]!), `${i} -> ${j}`);
  // TCP across hosts, the source address preserved (no NAT between hosts)
  const server = await startPeerServer(names[2]!, '0.0.0.0', 80);
  try {
    t.is(tcpTry(names[0]!, ips[2]!, 80, 'x'), ips[0], 'C sees A\'s sandbox address');
  } finally {
    server.kill('SIGKILL');
  }
  // leaving the cluster: masqueraded as the host's underlay address
  const out = await startPeerServer(outside, '0.0.0.0', 81);
  try {
    t.is(tcpTry(names[1]!, OUTSIDE, 81, 'x'), UNDERLAY[1], 'the outside host sees host B');
  } finally {
    out.kill('SIGKILL');
  }
  // no published ports on a routed network
  t.is(await code(a.call('createSandbox', { name: isolated[0]!.name('p'), net: 'rt', ports: [{ containerPort: 80, hostPort: 8080 }] })), 'ERR_INVALID_ARGUMENT');
  // C's last sandbox goes: its block goes back and leaves the others' tables
  await c.call('removeSandbox', names[2]);
  for (const i of [0, 1]) t.true(await eventually(() => !clusterRoutes(i, '10.220.').some((r) => r.startsWith(blocks[2]!)), 5000), `host ${i} dropped C's block`);
  t.false((await native.listLinks(isolated[2]!.ns)).some((l) => l.name.startsWith('rtb-')), 'no bridge left on C');
  t.is(await code(b.call('removeNetwork', 'rt')), 'ERR_NETWORK_IN_USE');
  await a.call('removeSandbox', names[0]);
  await b.call('removeSandbox', names[1]);
  await b.call('removeNetwork', 'rt');
  for (let i = 0; i < 3; i++) {
    t.deepEqual(clusterRoutes(i, '10.220.'), [], `no route left on host ${i}`);
    t.false((await native.listLinks(isolated[i]!.ns)).some((l) => l.name.startsWith('rtb-')), `no bridge left on host ${i}`);
  }
});

withEtcd('reconcile puts back a route to another block removed by hand', async (t) => {
  const [a, b] = hosts as [ClusterHost, ClusterHost];
  await a.call('createNetwork', { name: 'rtr', driver: 'routed', ipam: [{ subnet: '10.224.0.0/16' }] });
  const [na, nb] = [isolated[0]!.name('r0'), isolated[1]!.name('r1')];
  await a.call('createSandbox', { name: na, net: 'rtr' });
  const ipB = (await b.call<SandboxInspect>('createSandbox', { name: nb, net: 'rtr' })).Networks.rtr!.IPAddress;
  t.true(await eventually(() => pings(na, ipB), 5000));
  execFileSync('ip', ['-n', isolated[0]!.ns, 'route', 'del', blockOf(ipB)]);
  t.false(pings(na, ipB));
  const r = await a.call<{ actions: string[]; errors: string[] }>('reconcile');
  t.deepEqual(r.errors, []);
  t.deepEqual(clusterRoutes(0, '10.224.'), [`${blockOf(ipB)} via ${UNDERLAY[1]} realm 193`]);
  t.true(pings(na, ipB), 'A reaches B again');
  await a.call('removeSandbox', na);
  await b.call('removeSandbox', nb);
  await a.call('removeNetwork', 'rtr');
});

withEtcd('masquerade turned off: the outside host sees the sandbox address', async (t) => {
  const [a] = hosts as [ClusterHost];
  await a.call('createNetwork', { name: 'rtn', driver: 'routed', options: { 'com.docker.network.bridge.enable_ip_masquerade': 'false' }, ipam: [{ subnet: '10.221.0.0/16' }] });
  const name = isolated[0]!.name('n0');
  const ip = (await a.call<SandboxInspect>('createSandbox', { name, net: 'rtn' })).Networks.rtn!.IPAddress;
  // the outside host knows the way back to the network (a router would)
  execFileSync('ip', ['-n', outside, 'route', 'add', '10.221.0.0/16', 'via', UNDERLAY[0]!]);
  const out = await startPeerServer(outside, '0.0.0.0', 82);
  try {
    t.is(tcpTry(name, OUTSIDE, 82, 'x'), ip);
  } finally {
    out.kill('SIGKILL');
    execFileSync('ip', ['-n', outside, 'route', 'del', '10.221.0.0/16']);
  }
  await a.call('removeSandbox', name);
  await a.call('removeNetwork', 'rtn');
});

withEtcd('bad requests are refused with coded errors', async (t) => {
  const [a] = hosts as [ClusterHost];
  t.is(await code(a.call('createNetwork', { name: 'r6', driver: 'routed', enableIPv6: true })), 'ERR_INVALID_ARGUMENT');
  t.is(await code(a.call('createNetwork', { name: 'rb', driver: 'routed', options: { block_size: '40' } })), 'ERR_INVALID_ARGUMENT');
  t.is(await code(a.call('createNetwork', { name: 'rb', driver: 'routed', options: { block_size: '16' }, ipam: [{ subnet: '10.222.0.0/16' }] })), 'ERR_INVALID_ARGUMENT');
  t.false((await a.call<Array<{ name: string }>>('listNetworks')).some((n) => n.name === 'r6' || n.name === 'rb'));
  // without --subnet: a /16 of 10.0.0.0/8, /24 blocks
  const auto = await a.call<NetworkInspect>('createNetwork', { name: 'rauto', driver: 'routed' });
  t.regex(auto.IPAM.Config[0]!.Subnet, /^10\.\d+\.0\.0\/16$/);
  await a.call('removeNetwork', 'rauto');
});

withEtcd('a host killed leaves the others\' tables when its lease ends, and gets its block back on restart', async (t) => {
  const [a, , c] = hosts as [ClusterHost, ClusterHost, ClusterHost];
  await a.call('createNetwork', { name: 'rtk', driver: 'routed', ipam: [{ subnet: '10.223.0.0/16' }] });
  const names = [0, 1, 2].map((i) => isolated[i]!.name(`k${i}`));
  const ips = await Promise.all(hosts.map(async (h, i) => (await h.call<SandboxInspect>('createSandbox', { name: names[i], net: 'rtk' })).Networks.rtk!.IPAddress));
  const blockB = blockOf(ips[1]!);
  t.true(await eventually(() => pings(names[0]!, ips[1]!), 5000));
  hosts[1]!.proc.kill('SIGKILL');
  await new Promise((r) => hosts[1]!.proc.once('exit', r));
  const t0 = Date.now();
  for (const i of [0, 2]) t.true(await eventually(() => !clusterRoutes(i, '10.223.').some((r) => r.startsWith(blockB)), 10_000), `host ${i} dropped B's block`);
  t.log(`B's block left the others' tables ${Date.now() - t0} ms after the kill (lease TTL 3 s)`);
  t.false(pings(names[0]!, ips[1]!), 'no route to B\'s sandbox meanwhile');
  // a sandbox made on C meanwhile takes none of B's block (remembered for B)
  const other = await c.call<SandboxInspect>('createSandbox', { name: isolated[2]!.name('k3'), net: 'rtk' });
  t.not(blockOf(other.Networks.rtk!.IPAddress), blockB);
  hosts[1] = await start(1);
  for (const i of [0, 2]) t.true(await eventually(() => clusterRoutes(i, '10.223.').some((r) => r === `${blockB} via ${UNDERLAY[1]} realm 193`), 5000), `host ${i} routes B's block again`);
  t.true(await eventually(() => pings(names[0]!, ips[1]!), 5000), 'A reaches B\'s sandbox at its old address');
  t.is((await hosts[1]!.call<SandboxInspect>('inspectSandbox', names[1])).Networks.rtk!.IPAddress, ips[1]);
  // B's new sandbox takes an address of its old block
  const again = await hosts[1]!.call<SandboxInspect>('createSandbox', { name: isolated[1]!.name('k4'), net: 'rtk' });
  t.is(blockOf(again.Networks.rtk!.IPAddress), blockB);
  for (const [h, sb] of [
    [hosts[0]!, names[0]],
    [hosts[1]!, names[1]],
    [hosts[1]!, isolated[1]!.name('k4')],
    [hosts[2]!, names[2]],
    [hosts[2]!, isolated[2]!.name('k3')],
  ] as const) {
    await h.call('removeSandbox', sb);
  }
  await a.call('removeNetwork', 'rtk');
});
