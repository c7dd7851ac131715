// A cluster driven by the `cnm` command alone (no daemon, no embedding program):
// two hosts on a simulated LAN, a real etcd on loopback. Each command exits; the
// background agent it starts holds the host's lease and keeps its peer tables,
// and goes away once the host has no endpoint on a global network.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dig, resolverPids } from './helpers/dns.js';
import { join } from 'node:path';
import test from 'ava';
import { native } from '../ts/native.js';
import { simulatedLan } from '../ts/sim/lan.js';
import { cnm } from './helpers/cli.js';
import { type TestEtcd, etcdBin, startEtcd } from './helpers/etcd.js';
import { type IsolatedHost, eventually, isolatedHost, pings } from './helpers/host.js';

const withEtcd = etcdBin ? test.serial : test.serial.skip;
if (!etcdBin) console.log('CLI cluster tests skipped: etcd is not installed (apt-get install etcd-server; .ci/run does)');

const VTEPS = ['192.168.76.1', '192.168.76.2'];
let etcd: TestEtcd;
const hosts: IsolatedHost[] = [];

test.before(async () => {
  if (!etcdBin) return;
  etcd = await startEtcd('cli');
  for (const i of [0, 1]) hosts.push(await isolatedHost(`cl${i}`));
  // no upstream DNS server on these hosts: an unknown name is NXDOMAIN, nothing is sent anywhere
  for (const h of hosts) {
    mkdirSync(`/etc/netns/${h.ns}`, { recursive: true });
    writeFileSync(`/etc/netns/${h.ns}/resolv.conf`, '# no nameserver\n');
  }
  const lan = await simulatedLan(hosts[0]!.name('sw'));
  for (const [i, h] of hosts.entries()) await lan.plug(h.ns, VTEPS[i]!);
});
test.after.always(async () => {
  // agents still alive (a failed test) are stopped with their hosts
  for (const h of hosts) {
    const rec = agentOf(h);
    if (rec) process.kill(rec.owner.pid, 'SIGKILL');
    // and its background resolver
    for (const pid of resolverPids(h.stateDir)) process.kill(pid, 'SIGKILL');
    rmSync(`/etc/netns/${h.ns}`, { recursive: true, force: true });
    await h.cleanup();
  }
  await etcd?.cleanup();
});

const run = (i: number, ...args: string[]) =>
  cnm(['--host-netns', hosts[i]!.ns, '--state-dir', hosts[i]!.stateDir, '--cluster-store', etcd.url.replace('http://', 'etcd://'), '--cluster-advertise', VTEPS[i]!, '--cluster-lease-ttl', '3', ...args]);

function agentOf(h: IsolatedHost): { owner: { pid: number }; lease: string } | undefined {
  const file = join(h.stateDir, `netns-${h.ns}`, 'cluster-agent.json');
  if (!existsSync(file)) return undefined;
  const rec = JSON.parse(readFileSync(file, 'utf8')) as { owner: { pid: number }; lease: string };
  try {
    process.kill(rec.owner.pid, 0);
    return rec;
  } catch {
    return undefined;
  }
}

const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

const ipOf = (i: number, name: string) => {
  const r = run(i, 'sandbox', 'inspect', name);
  return (JSON.parse(r.stdout) as Array<{ Networks: Record<string, { IPAddress: string }> }>)[0]!.Networks.clov!.IPAddress;
};

withEtcd('the cnm command alone runs a cluster host: its agent holds the lease past the commands and keeps the peer tables, then goes', async (t) => {
  t.timeout(90_000);
  let r = run(0, 'network', 'create', '--driver', 'overlay', '--internal', '--subnet', '10.227.0.0/24', 'clov');
  t.is(r.code, 0, r.stderr);
  const [a, b, b2] = [hosts[0]!.name('a'), hosts[1]!.name('b'), hosts[1]!.name('b2')];
  r = run(0, 'sandbox', 'create', '--net', 'clov', a);
  t.is(r.code, 0, r.stderr);
  r = run(1, 'sandbox', 'create', '--net', 'clov', b);
  t.is(r.code, 0, r.stderr);
  const agents = hosts.map(agentOf);
  t.truthy(agents[0], 'host A has an agent');
  t.truthy(agents[1], 'host B has an agent');
  const [ipA, ipB] = [ipOf(0, a), ipOf(1, b)];
  t.true(await eventually(() => pings(a, ipB), 5000), `A -> B ${ipB}`);
  // past the lease TTL (3 s): the commands are long gone, their records are not
  await new Promise((done) => setTimeout(done, 4500));
  t.true(pings(b, ipA), 'B -> A after the TTL');
  // a sandbox made on B after A's last command: A's agent programs it
  r = run(1, 'sandbox', 'create', '--net', 'clov', b2);
  t.is(r.code, 0, r.stderr);
  const ipB2 = ipOf(1, b2);
  t.true(await eventually(() => pings(a, ipB2), 5000), `A -> B2 ${ipB2}, learnt by A's agent`);
  t.is(agentOf(hosts[1]!)?.owner.pid, agents[1]!.owner.pid, 'one agent per host, reused by later commands');
  // names across hosts, answered by each host's background resolver from the cluster store
  t.true(await eventually(() => dig(a, [b2]).answers[0] === ipB2, 5000), 'A resolves B2, made on B after A\'s last command');
  t.deepEqual(dig(b, [a]).answers, [ipA], 'B resolves A');
  t.deepEqual(dig(b, [`${a}.clov`]).answers, [ipA]);
  t.is(run(1, 'sandbox', 'rm', b2).code, 0);
  t.true(await eventually(() => dig(a, [b2], undefined, 1).status === 'NXDOMAIN', 5000), 'and B2 leaves A\'s names');
  // gone with the last global endpoint of its host
  for (const [i, n] of [[0, a], [1, b]] as const) t.is(run(i, 'sandbox', 'rm', n).code, 0);
  t.is(run(1, 'network', 'rm', 'clov').code, 0);
  t.true(await eventually(() => hosts.every((h) => agentOf(h) === undefined) && agents.every((p) => gone(p!.owner.pid)), 25_000), 'both agents exited');
  t.deepEqual(
    (await native.listLinks(hosts[0]!.ns)).filter((l) => l.name.startsWith('ovx-') || l.name.startsWith('ovb-')),
    [],
  );
});

withEtcd('a routed network through the cnm command alone: each host\'s agent keeps its routes to the other blocks', async (t) => {
  t.timeout(90_000);
  let r = run(0, 'network', 'create', '--driver', 'routed', '--subnet', '10.228.0.0/16', 'clrt');
  t.is(r.code, 0, r.stderr);
  const [a, b] = [hosts[0]!.name('ra'), hosts[1]!.name('rb')];
  r = run(0, 'sandbox', 'create', '--net', 'clrt', a);
  t.is(r.code, 0, r.stderr);
  // B joins after A's last command: A's agent learns B's block from the store
  r = run(1, 'sandbox', 'create', '--net', 'clrt', b);
  t.is(r.code, 0, r.stderr);
  const ip = (i: number, name: string) => (JSON.parse(run(i, 'sandbox', 'inspect', name).stdout) as Array<{ Networks: Record<string, { IPAddress: string }> }>)[0]!.Networks.clrt!.IPAddress;
  const [ipA, ipB] = [ip(0, a), ip(1, b)];
  t.not(ipA.split('.')[2], ipB.split('.')[2], 'one block per host');
  t.true(await eventually(() => pings(a, ipB), 5000), `A -> B ${ipB}, routed by A's agent`);
  t.true(pings(b, ipA), 'B -> A');
  t.true(await eventually(() => dig(a, [b]).answers[0] === ipB, 5000), 'A resolves B');
  // past the lease TTL (3 s): the blocks are held by the agents
  await new Promise((done) => setTimeout(done, 4500));
  t.true(pings(a, ipB), 'A -> B after the TTL');
  for (const [i, n] of [[0, a], [1, b]] as const) t.is(run(i, 'sandbox', 'rm', n).code, 0);
  t.is(run(0, 'network', 'rm', 'clrt').code, 0);
  t.true(await eventually(() => hosts.every((h) => agentOf(h) === undefined), 25_000), 'both agents exited');
  for (const h of hosts) {
    t.deepEqual((await native.listLinks(h.ns)).filter((l) => l.name.startsWith('rtb-')).map((l) => l.name), [], 'no bridge left');
    t.deepEqual((await native.listRoutes(h.ns, 4)).filter((x) => x.dst.startsWith('10.228.')).map((x) => x.dst), [], 'no route left');
  }
});
