// Ports published on [::1]: the kernel cannot DNAT ::1, so a userland proxy in the
// host netns serves them. Real TCP and UDP from the host netns to [::1].
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { native } from '../ts/native.js';
import { Proxies } from '../ts/proxy/proxies.js';
import { type IsolatedHost, eventually, isolatedHost } from './helpers/host.js';
import { startEchoServer, startUdpEchoServer, tcpTry, udpTry } from './helpers/tcp.js';

let host: IsolatedHost;
let ctl: NetworkController;
let proxies: Proxies;
const servers: ChildProcess[] = [];
const serve = async (p: Promise<ChildProcess>) => {
  servers.push(await p);
};
const mine = async (sb: { id: string }) => {
  const eps = new Set(ctl.sandboxEndpoints(sb.id).map((e) => e.id));
  return (await proxies.list()).filter((p) => eps.has(p.id.split('/')[0]!));
};

test.before(async () => {
  host = await isolatedHost('lo6');
  ctl = await host.open({ firewall: 'nftables' });
  proxies = new Proxies(host.ns, join(host.stateDir, `netns-${host.ns}`));
  await ctl.createNetwork({ name: 'dual', ipam: [{ subnet: '10.131.1.0/24' }, { subnet: 'fd00:131:1::/64' }] });
  await ctl.createNetwork({ name: 'only4', ipam: [{ subnet: '10.131.2.0/24' }] });
});
test.after.always(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await host?.cleanup();
});

test.serial('TCP and UDP published on [::1] answer from the host, through a proxy, not the firewall', async (t) => {
  const sb = await ctl.createSandbox({
    name: host.name('w'),
    net: 'dual',
    ports: [
      { containerPort: 80, hostIp: '::1', hostPort: 18080 },
      { containerPort: 53, hostIp: '::1', hostPort: 18053, proto: 'udp' },
      { containerPort: 80, hostPort: 18081 },
    ],
  });
  await serve(startEchoServer(sb.netns, '::', 80));
  await serve(startUdpEchoServer(sb.netns, '::', 53));
  t.is(tcpTry(host.ns, '::1', 18080, 'tcp6-lo'), 'tcp6-lo');
  t.is(udpTry(host.ns, '::1', 18053, 'udp6-lo'), 'udp6-lo');
  // the firewall's own mapping of the same container port keeps working
  t.is(tcpTry(host.ns, '127.0.0.1', 18081, 'tcp4-lo'), 'tcp4-lo');
  t.deepEqual(
    sb.inspect().Ports['80/tcp']!.map((b) => `${b.HostIp}:${b.HostPort}`),
    ['::1:18080', '0.0.0.0:18081', ':::18081'],
  );
  const running = await mine(sb);
  t.deepEqual(running.map((p) => `${p.proto}:${p.listenPort}->${p.targetIp}:${p.targetPort}`).sort(), [
    `tcp:18080->${sb.inspect().Networks.dual!.GlobalIPv6Address}:80`,
    `udp:18053->${sb.inspect().Networks.dual!.GlobalIPv6Address}:53`,
  ]);
  const fw = await native.firewallState('nftables', host.ns);
  t.false(
    fw.ports.some((p) => p.hostIp === '::1'),
    'no firewall entry for ::1',
  );
  // disconnecting stops them, and the port is free at once
  await ctl.removeSandbox(sb.name);
  t.deepEqual(await mine(sb), []);
  t.is(tcpTry(host.ns, '::1', 18080, 'x', 500), null);
  const again = await ctl.createSandbox({ name: host.name('w2'), net: 'dual', ports: [{ containerPort: 80, hostIp: '::1', hostPort: 18080 }] });
  await serve(startEchoServer(again.netns, '::', 80));
  t.is(tcpTry(host.ns, '::1', 18080, 'again'), 'again');
  await ctl.removeSandbox(again.name);
});

test.serial('[::1] reaches an endpoint without IPv6 on its IPv4 address', async (t) => {
  const sb = await ctl.createSandbox({ name: host.name('v4'), net: 'only4', ports: [{ containerPort: 80, hostIp: '::1', hostPort: 18090 }] });
  await serve(startEchoServer(sb.netns, '0.0.0.0', 80));
  t.is(tcpTry(host.ns, '::1', 18090, 'to-v4'), 'to-v4');
  t.is((await mine(sb))[0]?.targetIp, sb.inspect().Networks.only4!.IPAddress);
  await ctl.removeSandbox(sb.name);
});

test.serial('a taken [::1] port is ERR_PORT_ALLOCATED and leaves nothing; sctp on [::1] is refused', async (t) => {
  await serve(startEchoServer(host.ns, '::1', 18095));
  const before = await native.firewallState('nftables', host.ns);
  const e = await t.throwsAsync(ctl.createSandbox({ name: host.name('taken'), net: 'dual', ports: [{ containerPort: 80, hostIp: '::1', hostPort: 18095 }, { containerPort: 81, hostPort: 18096 }] }));
  t.is((e as { code?: string }).code, 'ERR_PORT_ALLOCATED');
  t.false(
    ctl.listSandboxes().some((s) => s.name === host.name('taken')),
    'no sandbox',
  );
  t.deepEqual((await native.firewallState('nftables', host.ns)).ports, before.ports, 'no firewall port left');
  t.deepEqual(
    (await proxies.list()).map((p) => p.listenPort),
    [],
  );
  // the reservation went too: the port is free for a later publish on the host address
  const ok = await ctl.createSandbox({ name: host.name('taken2'), net: 'dual', ports: [{ containerPort: 81, hostPort: 18096 }] });
  await ctl.removeSandbox(ok.name);
  const s = await t.throwsAsync(ctl.createSandbox({ name: host.name('sctp'), net: 'dual', ports: [{ containerPort: 80, hostIp: '::1', hostPort: 18097, proto: 'sctp' }] }));
  t.is((s as { code?: string }).code, 'ERR_INVALID_ARGUMENT');
});

test.serial('proxies outlive the controller, and reconcile restarts killed ones and stops orphans', async (t) => {
  const sb = await ctl.createSandbox({ name: host.name('r'), net: 'dual', ports: [{ containerPort: 80, hostIp: '::1', hostPort: 18100 }] });
  await serve(startEchoServer(sb.netns, '::', 80));
  t.is(tcpTry(host.ns, '::1', 18100, 'one'), 'one');
  // a restart of cnm keeps the proxy (the CLI exits after each command)
  await ctl.close();
  t.is(tcpTry(host.ns, '::1', 18100, 'closed'), 'closed');
  ctl = await host.open({ firewall: 'nftables' });
  t.is((await mine(sb)).length, 1, 'reconcile at open keeps a running proxy, adds none');
  // killed: reconcile starts it again
  const [p] = await mine(sb);
  process.kill(p!.pid, 'SIGKILL');
  t.true(await eventually(async () => (await mine(sb)).length === 0));
  t.is(tcpTry(host.ns, '::1', 18100, 'x', 500), null);
  const report = await ctl.reconcile();
  t.true(
    report.actions.some((r) => r.includes('start missing userland proxy')),
    JSON.stringify(report.actions),
  );
  t.is(tcpTry(host.ns, '::1', 18100, 'back'), 'back');
  // a proxy no endpoint accounts for (a crash after a disconnect's commit): stopped
  await proxies.start({ id: 'nobody/tcp/18101', proto: 'tcp', listenIp: '::1', listenPort: 18101, targetIp: 'fd00:131:1::99', targetPort: 80 });
  t.true((await proxies.list()).some((q) => q.id === 'nobody/tcp/18101'));
  await ctl.reconcile();
  t.false((await proxies.list()).some((q) => q.id === 'nobody/tcp/18101'));
  t.is((await mine(sb)).length, 1);
  await ctl.removeSandbox(sb.name);
  t.deepEqual(await proxies.list(), []);
});

test.serial('a proxy exits by itself once its host netns is gone', async (t) => {
  const ns = host.name('gone');
  await native.netnsCreate(ns);
  const lone = new Proxies(ns, host.stateDir);
  await lone.start({ id: 'x/tcp/18200', proto: 'tcp', listenIp: '::1', listenPort: 18200, targetIp: '::1', targetPort: 1 });
  t.is((await lone.list()).length, 1);
  await native.netnsDeleteMany([ns]);
  t.true(await eventually(async () => (await lone.list()).length === 0, 5000));
});
