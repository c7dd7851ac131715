/**
 * The firewall behaviour suite, run once per backend (firewall-<backend>.spec.ts):
 * published ports, masquerade, isolation, internal networks and icc, each proven
 * with real traffic between namespaces, and the rules read back from the kernel.
 */
import { existsSync } from 'node:fs';
import { type ChildProcess, execFileSync } from 'node:child_process';
import test from 'ava';
import type { NetworkController } from '../../ts/controller.js';
import type { FirewallBackendName } from '../../ts/native-api.js';
import { native } from '../../ts/native.js';
import { type IsolatedHost, inNs, isolatedHost, pings, sysbin } from './host.js';
import { HOST_IP, OUTSIDE_IP, wireOutside } from './outside.js';
import { startEchoServer, startPeerServer, startUdpEchoServer, tcpTry, udpTry } from './tcp.js';
import { storeRecords } from './records.js';

export function firewallSuite(backend: Exclude<FirewallBackendName, 'none'>): void {
  let host: IsolatedHost;
  let ctl: NetworkController;
  let outside: string;
  const servers: ChildProcess[] = [];

  test.before(async () => {
    host = await isolatedHost(`fw${backend.slice(0, 3)}`);
    outside = host.name('outside');
    await wireOutside(host.ns, outside);
    ctl = await host.open({ firewall: backend });
  });
  test.after.always(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await host?.cleanup();
  });

  const serve = async (p: Promise<ChildProcess>) => {
    const c = await p;
    servers.push(c);
    return c;
  };

  test.serial('published TCP and UDP ports answer from outside, from the host (own address and 127.0.0.1) and hairpin', async (t) => {
    await ctl.createNetwork({ name: 'pub', ipam: [{ subnet: '10.81.0.0/24' }] });
    const web = await ctl.createSandbox({
      name: host.name('web'),
      net: 'pub',
      ports: [
        { containerPort: 80, hostPort: 8080 },
        { containerPort: 53, hostPort: 5353, proto: 'udp' },
        { containerPort: 9000, hostPort: 9000, proto: 'sctp' },
      ],
    });
    const nb = await ctl.createSandbox({ name: host.name('nb'), net: 'pub' });
    const ip = web.inspect().Networks.pub!.IPAddress;
    await serve(startEchoServer(web.netns, ip, 80));
    await serve(startUdpEchoServer(web.netns, ip, 53));
    t.is(tcpTry(outside, HOST_IP, 8080, 'from-outside'), 'from-outside');
    t.is(udpTry(outside, HOST_IP, 5353, 'udp-from-outside'), 'udp-from-outside');
    t.is(tcpTry(host.ns, HOST_IP, 8080, 'from-host'), 'from-host');
    t.is(tcpTry(host.ns, '127.0.0.1', 8080, 'from-localhost'), 'from-localhost');
    t.is(tcpTry(nb.netns, HOST_IP, 8080, 'hairpin-neighbour'), 'hairpin-neighbour');
    t.is(tcpTry(web.netns, HOST_IP, 8080, 'hairpin-self'), 'hairpin-self');
    t.is(tcpTry(outside, HOST_IP, 8081, 'nothing-here', 700), null, 'an unpublished port does not answer');
    t.deepEqual(web.inspect().Ports, {
      '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }],
      '53/udp': [{ HostIp: '0.0.0.0', HostPort: '5353' }],
      '9000/sctp': [{ HostIp: '0.0.0.0', HostPort: '9000' }],
    });
    t.deepEqual(ctl.getNetwork('pub').inspect().Containers[web.id]!.Ports, web.inspect().Ports);
    const st = await native.firewallState(backend, host.ns);
    t.deepEqual(
      st.ports.map((p) => `${p.proto}:${p.hostPort}->${p.containerIp}:${p.containerPort}`).sort(),
      [`sctp:9000->${ip}:9000`, `tcp:8080->${ip}:80`, `udp:5353->${ip}:53`],
    );
  });

  test.serial('ip_forward is on in the host netns only; the machine root netns has no cnm rules', async (t) => {
    t.is((await native.sysctlGet(host.ns, 'net.ipv4.ip_forward')).trim(), '1');
    t.is(inNs(host.ns, 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), '1');
    if (backend === 'nftables') {
      t.regex(inNs(host.ns, sysbin('nft'), 'list', 'tables'), /table ip cnm/);
      t.notRegex(execFileSync(sysbin('nft'), ['list', 'tables'], { encoding: 'utf8' }), /table ip cnm/, 'root netns untouched');
    } else {
      t.regex(inNs(host.ns, sysbin('iptables-save')), /CNM-FORWARD/);
      t.notRegex(execFileSync(sysbin('iptables-save'), { encoding: 'utf8' }), /CNM-/, 'root netns untouched');
    }
  });

  test.serial('a host port already published is refused with ERR_PORT_ALLOCATED and nothing changes', async (t) => {
    const before = JSON.stringify(storeRecords(ctl));
    const fwBefore = JSON.stringify(await native.firewallState(backend, host.ns));
    const name = host.name('dup');
    const e = await t.throwsAsync(ctl.createSandbox({ name, net: 'pub', ports: [{ containerPort: 80, hostPort: 8080 }] }));
    t.is((e as { code?: string }).code, 'ERR_PORT_ALLOCATED');
    // a specific host IP collides with 0.0.0.0 too
    const e2 = await t.throwsAsync(ctl.createSandbox({ name, net: 'pub', ports: [{ containerPort: 80, hostPort: 8080, hostIp: HOST_IP }] }));
    t.is((e2 as { code?: string }).code, 'ERR_PORT_ALLOCATED');
    t.false(existsSync(`/run/netns/${name}`));
    t.is(JSON.stringify(storeRecords(ctl)), before);
    t.is(JSON.stringify(await native.firewallState(backend, host.ns)), fwBefore);
    // the same port on another protocol is fine
    const other = await ctl.createSandbox({ name, net: 'pub', ports: [{ containerPort: 80, hostPort: 8080, proto: 'udp' }] });
    await ctl.removeSandbox(other.name);
  });

  test.serial('an ephemeral host port comes from the port range and works', async (t) => {
    const sb = await ctl.createSandbox({ name: host.name('eph'), net: 'pub', ports: [{ containerPort: 7000 }] });
    const hp = Number(sb.inspect().Ports['7000/tcp']![0]!.HostPort);
    t.true(hp >= 32768 && hp <= 60999, String(hp));
    await serve(startEchoServer(sb.netns, sb.inspect().Networks.pub!.IPAddress, 7000));
    t.is(tcpTry(outside, HOST_IP, hp, 'ephemeral'), 'ephemeral');
    await ctl.removeSandbox(sb.name);
    t.is(tcpTry(outside, HOST_IP, hp, 'gone', 700), null, 'the mapping goes with the sandbox');
  });

  test.serial('outbound traffic is masqueraded, unless the network opts out', async (t) => {
    await serve(startPeerServer(outside, OUTSIDE_IP, 7777));
    const nb = ctl.getSandbox(host.name('nb'));
    t.is(tcpTry(nb.netns, OUTSIDE_IP, 7777, 'x'), HOST_IP, 'the outside sees the host address');
    await ctl.createNetwork({
      name: 'nomasq',
      ipam: [{ subnet: '10.82.0.0/24' }],
      options: { 'com.docker.network.bridge.enable_ip_masquerade': 'false' },
    });
    const raw = await ctl.createSandbox({ name: host.name('raw'), net: 'nomasq' });
    // without NAT the outside needs a route back to answer
    inNs(outside, 'ip', 'route', 'add', '10.82.0.0/24', 'via', HOST_IP);
    t.is(tcpTry(raw.netns, OUTSIDE_IP, 7777, 'x'), raw.inspect().Networks.nomasq!.IPAddress);
    inNs(outside, 'ip', 'route', 'del', '10.82.0.0/24');
    await ctl.removeSandbox(raw.name);
    await ctl.removeNetwork('nomasq');
  });

  test.serial('two networks are isolated from each other; internal networks reach nothing outside', async (t) => {
    await ctl.createNetwork({ name: 'other', ipam: [{ subnet: '10.83.0.0/24' }] });
    const o = await ctl.createSandbox({ name: host.name('o'), net: 'other' });
    const nb = ctl.getSandbox(host.name('nb'));
    const oIp = o.inspect().Networks.other!.IPAddress;
    const nbIp = nb.inspect().Networks.pub!.IPAddress;
    t.false(pings(nb.netns, oIp), 'pub -> other dropped');
    t.false(pings(o.netns, nbIp), 'other -> pub dropped');
    t.true(pings(o.netns, OUTSIDE_IP), 'but both still reach the outside');
    // a sandbox on both networks reaches both
    await ctl.connect('other', nb.name);
    t.true(pings(nb.netns, oIp));
    await ctl.disconnect('other', nb.name);

    await ctl.createNetwork({ name: 'inner', internal: true, ipam: [{ subnet: '10.84.0.0/24' }] });
    const i1 = await ctl.createSandbox({ name: host.name('i1'), net: 'inner' });
    const i2 = await ctl.createSandbox({ name: host.name('i2'), net: 'inner' });
    t.true(pings(i1.netns, i2.inspect().Networks.inner!.IPAddress), 'inside an internal network traffic flows');
    // even with a route added by hand, nothing leaves an internal network
    inNs(i1.netns, 'ip', 'route', 'add', 'default', 'via', '10.84.0.1');
    t.false(pings(i1.netns, OUTSIDE_IP));
    t.false(pings(i1.netns, nbIp));
    await t.throwsAsync(ctl.connect('inner', nb.name, { ports: [{ containerPort: 1 }] }), { code: 'ERR_INVALID_ARGUMENT' } as never);
    for (const s of [o, i1, i2]) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('other');
    await ctl.removeNetwork('inner');
  });

  test.serial('icc=false blocks sandbox to sandbox on the bridge while published ports still work', async (t) => {
    await ctl.createNetwork({ name: 'noicc', ipam: [{ subnet: '10.85.0.0/24' }], options: { 'com.docker.network.bridge.enable_icc': 'false' } });
    const a = await ctl.createSandbox({ name: host.name('ia'), net: 'noicc', ports: [{ containerPort: 80, hostPort: 8090 }] });
    const b = await ctl.createSandbox({ name: host.name('ib'), net: 'noicc' });
    const aIp = a.inspect().Networks.noicc!.IPAddress;
    t.false(pings(b.netns, aIp));
    t.false(pings(a.netns, b.inspect().Networks.noicc!.IPAddress));
    t.true(pings(a.netns, OUTSIDE_IP), 'the way out is open');
    await serve(startEchoServer(a.netns, aIp, 80));
    t.is(tcpTry(outside, HOST_IP, 8090, 'published'), 'published');
    t.is(tcpTry(b.netns, aIp, 80, 'direct', 700), null, 'direct TCP between them is blocked');
    await ctl.removeSandbox(a.name);
    await ctl.removeSandbox(b.name);
    await ctl.removeNetwork('noicc');
  });

  test.serial('every rule goes with its network and endpoint; reconcile restores and prunes', async (t) => {
    for (const s of ctl.listSandboxes()) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('pub');
    const st = await native.firewallState(backend, host.ns);
    t.deepEqual(st.ports, []);
    t.deepEqual(st.networks.map((n) => n.bridge), [ctl.getNetwork('bridge').bridge], 'only the default bridge remains');
    // a stale mapping added behind our back is pruned; a missing network entry is restored
    await native.applyFirewall({
      backend,
      netns: host.ns,
      addPorts: [{ proto: 'tcp', hostPort: 4444, containerIp: '10.99.0.9', containerPort: 80, bridge: 'cnm0', tag: 'stale' }],
    });
    const br = ctl.getNetwork('bridge').record;
    const { Firewall } = await import('../../ts/firewall.js');
    await native.applyFirewall({ backend, netns: host.ns, removeNetworks: [new Firewall(backend, host.ns).network(br)] });
    const r = await ctl.reconcile();
    t.true(r.actions.some((a) => /stale port mapping tcp\/4444/.test(a)), r.actions.join('; '));
    t.true(r.actions.some((a) => /restore firewall entries of bridge cnm0/.test(a)), r.actions.join('; '));
    const after = await native.firewallState(backend, host.ns);
    t.deepEqual(after.ports, []);
    t.deepEqual(after.networks.map((n) => n.bridge), ['cnm0']);
  });

  test.serial('icc=false on the default bridge; refused when the firewall is off', async (t) => {
    await ctl.close();
    ctl = await host.open({ firewall: backend, icc: false });
    const a = await ctl.createSandbox({ name: host.name('da') });
    const b = await ctl.createSandbox({ name: host.name('db') });
    t.false(pings(a.netns, b.inspect().Networks.bridge!.IPAddress));
    t.true(pings(a.netns, OUTSIDE_IP));
    await ctl.removeSandbox(a.name);
    await ctl.removeSandbox(b.name);
    await t.throwsAsync(host.open({ iptables: false, icc: false }), { code: 'ERR_INVALID_ARGUMENT' } as never);
    await t.throwsAsync(host.open({ firewall: 'none', icc: false }), { code: 'ERR_INVALID_ARGUMENT' } as never);
  });
}
