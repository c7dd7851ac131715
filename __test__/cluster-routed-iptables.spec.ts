// The routed driver on two simulated hosts whose firewall is the iptables backend
// (cluster-routed.spec.ts runs nftables): the cluster realm's RETURN rule keeps
// traffic between blocks un-NATed, and reconcile leaves the network's rules be.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { skipReason } from './helpers/tools.js';
import { native } from '../ts/native.js';
import type { SandboxInspect } from '../ts/sandbox.js';
import { type ClusterHost, startHost } from '../ts/sim/host-client.js';
import { simulatedLan as underlay } from '../ts/sim/lan.js';
import { etcdBin, startEtcd } from './helpers/etcd.js';
import { isolatedHost, pings } from './helpers/host.js';
import { startPeerServer, tcpTry } from './helpers/tcp.js';
const withEtcd = etcdBin && !skipReason(['iptables', 'iptables-save'], 'the routed iptables test') ? test : test.skip;
if (!etcdBin) console.log('routed iptables test skipped: etcd is not installed (apt-get install etcd-server; .ci/run does)');

withEtcd('a routed network on hosts with the iptables backend: no NAT between blocks, NAT out of the cluster', async (t) => {
  const etcd = await startEtcd('rtipt');
  const iso = [await isolatedHost('rti0'), await isolatedHost('rti1')];
  const sw = iso[0]!.name('sw');
  const lan = await underlay(sw);
  const out = iso[0]!.name('out');
  await native.netnsCreate(out);
  await lan.plug(out, '192.168.77.100');
  const hosts: ClusterHost[] = [];
  for (const [i, h] of iso.entries()) { await lan.plug(h.ns, `192.168.77.${i + 1}`); hosts.push(await startHost({ hostNetns: h.ns, stateDir: h.stateDir, firewall: 'iptables', clusterStore: etcd.url.replace('http://', 'etcd://'), clusterAdvertise: `192.168.77.${i + 1}`, clusterLeaseTtl: 3 })); }
  await hosts[0]!.call('createNetwork', { name: 'rt', driver: 'routed', ipam: [{ subnet: '10.230.0.0/16' }] });
  const ips: string[] = [];
  for (const [i, h] of hosts.entries()) ips.push((await h.call<SandboxInspect>('createSandbox', { name: iso[i]!.name('s'), net: 'rt' })).Networks.rt!.IPAddress);
  t.true(execFileSync('ip', ['netns', 'exec', iso[0]!.ns, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' }).includes('-A CNM-POSTROUTING -m realm --realm 0xc100c1 -j RETURN'));
  t.true(pings(iso[0]!.name('s'), ips[1]!));
  const srv = await startPeerServer(iso[1]!.name('s'), '0.0.0.0', 80);
  t.is(tcpTry(iso[0]!.name('s'), ips[1]!, 80, 'x'), ips[0], 'the other host sees the sandbox address');
  srv.kill();
  const o = await startPeerServer(out, '0.0.0.0', 80);
  t.is(tcpTry(iso[0]!.name('s'), '192.168.77.100', 80, 'x'), '192.168.77.1', 'the outside host sees the host');
  o.kill();
  t.deepEqual((await hosts[0]!.call<{ errors: string[] }>('reconcile')).errors, []);
  t.true(pings(iso[0]!.name('s'), ips[1]!), 'still after a reconcile');
  for (const h of hosts) await h.close();
  await native.netnsDeleteMany([sw, out]);
  for (const h of iso) await h.cleanup();
  await etcd.cleanup();
});
