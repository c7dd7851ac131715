/**
 * Docker 28's bridge networks, run once per firewall backend: no direct access to
 * network subnets from outside (unless trusted or allowed), the gateway modes,
 * inhibit_ipv4, IPv6-only networks and the operator's own rules. Every check is
 * real traffic from an "outside" netns that routes the bridge subnets through the
 * test's host netns, as a host on the LAN that adds such a route would.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { NetworkController } from '../../ts/controller.js';
import type { FirewallBackendName } from '../../ts/native-api.js';
import { native } from '../../ts/native.js';
import { type IsolatedHost, eventually, inNs, ipj, isolatedHost, pings, sysbin } from './host.js';
import { HOST_IP, HOST_IP6, OUTSIDE_IP, wireOutside } from './outside.js';
import { startEchoServer, startPeerServer, tcpTry } from './tcp.js';

/** Whether an IPv6 ping from `ns` to `ip` is answered within `wait` seconds. */
function ping6(ns: string, ip: string, wait = 1): boolean {
  try {
    inNs(ns, 'ping', '-6', '-c', '1', '-i', '0.2', '-w', String(wait + 1), ip);
    return true;
  } catch {
    return false;
  }
}

/**
 * The commands of the README's "operator's own rules" examples for one tool, split
 * into argv as sh would (single quotes; no shell runs them), comments dropped.
 */
function readmeOperatorCommands(tool: 'nft' | 'iptables'): string[][] {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(readme.indexOf("**The operator's own rules**"));
  const out: string[][] = [];
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1]!.split('\n')) {
      const argv = [...line.replace(/\s+#.*$/, '').matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!);
      if (argv[0] === tool) out.push(argv);
    }
  }
  return out;
}

/** A sandbox's addresses on one network. */
const addrs = (sb: { inspect(): { Networks: Record<string, { IPAddress: string; GlobalIPv6Address: string } | undefined> } }, net: string) => {
  const e = sb.inspect().Networks[net]!;
  return { ip4: e.IPAddress, ip6: e.GlobalIPv6Address };
};

/** How long a connection that must fail is given (a dropped SYN gets no answer). */
const NO = 700;

export function directAccessSuite(backend: Exclude<FirewallBackendName, 'none'>, n: number): void {
  const name = (s: string) => `${backend}: ${s}`;
  const v4 = (k: number) => `10.${110 + n}.${k}.0/24`;
  const v6 = (k: number) => `fd00:${n}${k}::/64`;
  let host: IsolatedHost;
  let ctl: NetworkController;
  let outside: string;
  const servers: ChildProcess[] = [];
  const serve = async (p: Promise<ChildProcess>) => {
    const c = await p;
    servers.push(c);
    return c;
  };
  /** The outside host learns to reach a subnet through the cnm host (as a LAN peer would). */
  const routeVia = (subnet: string) => {
    const gw = subnet.includes(':') ? HOST_IP6 : HOST_IP;
    execFileSync('ip', ['-n', outside, ...(subnet.includes(':') ? ['-6'] : []), 'route', 'replace', subnet, 'via', gw]);
  };

  /** A sandbox on `net` with an echo server on port 80 and 81 of both families, publishing `ports`. */
  const web = async (net: string, tag: string, ports: Array<{ containerPort: number; hostPort?: number; hostIp?: string }>) => {
    const sb = await ctl.createSandbox({ name: host.name(tag), net, ports });
    await serve(startEchoServer(sb.netns, '::', 80));
    await serve(startEchoServer(sb.netns, '::', 81));
    return sb;
  };
  const ruleset = () => (backend === 'nftables' ? inNs(host.ns, sysbin('nft'), 'list', 'ruleset') : inNs(host.ns, sysbin('iptables-save')) + inNs(host.ns, sysbin('ip6tables-save')));

  test.before(async () => {
    host = await isolatedHost(`da${backend.slice(0, 3)}`);
    outside = host.name('outside');
    await wireOutside(host.ns, outside);
    ctl = await host.open({ firewall: backend });
    await ctl.createNetwork({ name: 'other', ipam: [{ subnet: v4(9) }] });
  });
  test.after.always(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await host?.cleanup();
  });

  test.serial(name('by default nothing is reached directly from outside; published host ports, localhost and hairpin work'), async (t) => {
    await ctl.createNetwork({ name: 'prot', ipam: [{ subnet: v4(1) }, { subnet: v6(1) }] });
    routeVia(v4(1));
    routeVia(v6(1));
    const w = await web('prot', 'w1', [{ containerPort: 80, hostPort: 8080 }, { containerPort: 81 }]);
    const { ip4, ip6 } = addrs(w, 'prot');
    const nb = await ctl.createSandbox({ name: host.name('nb1'), net: 'other' });
    // through the host's addresses: both families, the same ephemeral port in both
    t.is(tcpTry(outside, HOST_IP, 8080, 'v4'), 'v4');
    t.is(tcpTry(outside, HOST_IP6, 8080, 'v6'), 'v6');
    const eph = w.inspect().Ports['81/tcp']!;
    t.deepEqual(eph.map((b) => b.HostIp), ['0.0.0.0', '::']);
    t.is(eph[0]!.HostPort, eph[1]!.HostPort, 'one ephemeral port for both families');
    t.is(tcpTry(outside, HOST_IP6, Number(eph[1]!.HostPort), 'eph6'), 'eph6');
    // directly: an unpublished port, ping, and even the published container port
    t.is(tcpTry(outside, ip4, 81, 'x', NO), null, 'unpublished port, IPv4');
    t.is(tcpTry(outside, ip4, 80, 'x', NO), null, 'published container port addressed directly, IPv4');
    t.false(pings(outside, ip4), 'ping, IPv4');
    t.is(tcpTry(outside, ip6, 81, 'x', NO), null, 'unpublished port, IPv6');
    t.is(tcpTry(outside, ip6, 80, 'x', NO), null, 'published container port addressed directly, IPv6');
    t.false(ping6(outside, ip6), 'ping, IPv6');
    // the host itself, localhost and hairpin
    t.is(tcpTry(host.ns, ip4, 81, 'host'), 'host', 'the host reaches its containers');
    t.is(tcpTry(host.ns, '127.0.0.1', 8080, 'lo'), 'lo');
    t.is(tcpTry(w.netns, HOST_IP, 8080, 'hairpin'), 'hairpin');
    // another cnm network: only through the host port
    t.is(tcpTry(nb.netns, ip4, 81, 'x', NO), null);
    t.is(tcpTry(nb.netns, HOST_IP, 8080, 'via-host'), 'via-host');
    const st = await native.firewallState(backend, host.ns);
    const entry = st.networks.find((x) => x.bridge === ctl.getNetwork('prot').bridge)!;
    t.true(entry.protect, 'the state reads the protection back');
    // nftables protects by bridge (one element per family), iptables by subnet (one rule each)
    const bridge = ctl.getNetwork('prot').bridge!;
    const marks = backend === 'nftables' ? [bridge] : [v4(1).split('/')[0]!, v6(1).split('/')[0]!];
    const protection = () => {
      if (backend === 'iptables') return ruleset();
      return ['ip', 'ip6'].map((f) => inNs(host.ns, sysbin('nft'), 'list', 'set', f, 'cnm', 'protected')).join('');
    };
    for (const m of marks) t.true(protection().includes(m), `protection of ${m}`);
    await ctl.removeSandbox(w.name);
    await ctl.removeSandbox(nb.name);
    await ctl.removeNetwork('prot');
    for (const m of marks) t.false(protection().includes(m), `the protection of ${m} goes with the network`);
  });

  test.serial(name('trusted_host_interfaces lets direct routing in through them, to published container ports only'), async (t) => {
    await ctl.createNetwork({
      name: 'trust',
      ipam: [{ subnet: v4(2) }, { subnet: v6(2) }],
      options: { 'com.docker.network.bridge.trusted_host_interfaces': 'uplink0:nosuch0' },
    });
    routeVia(v4(2));
    routeVia(v6(2));
    const w = await web('trust', 'w2', [{ containerPort: 80, hostPort: 8082 }]);
    const { ip4, ip6 } = addrs(w, 'trust');
    t.is(tcpTry(outside, ip4, 80, 'direct4'), 'direct4');
    t.is(tcpTry(outside, ip6, 80, 'direct6'), 'direct6');
    t.is(tcpTry(outside, ip4, 81, 'x', NO), null, 'an unpublished port stays closed');
    t.is(tcpTry(outside, ip6, 81, 'x', NO), null);
    t.is(tcpTry(outside, HOST_IP, 8082, 'host-port'), 'host-port');
    const st = await native.firewallState(backend, host.ns);
    t.deepEqual(st.networks.find((x) => x.bridge === ctl.getNetwork('trust').bridge)!.trusted, ['nosuch0', 'uplink0']);
    await ctl.removeSandbox(w.name);
    await ctl.removeNetwork('trust');
  });

  test.serial(name('allowDirectRouting (--allow-direct-routing) turns the protection off for every network, and back'), async (t) => {
    await ctl.createNetwork({ name: 'adr', ipam: [{ subnet: v4(3) }, { subnet: v6(3) }] });
    routeVia(v4(3));
    routeVia(v6(3));
    const w = await web('adr', 'w3', [{ containerPort: 80, hostPort: 8083 }]);
    const { ip4, ip6 } = addrs(w, 'adr');
    t.is(tcpTry(outside, ip4, 80, 'x', NO), null);
    await ctl.close();
    // reopening with the option: reconcile updates the entries of existing networks
    ctl = await host.open({ firewall: backend, allowDirectRouting: true });
    t.is(tcpTry(outside, ip4, 80, 'direct4'), 'direct4');
    t.is(tcpTry(outside, ip6, 80, 'direct6'), 'direct6');
    t.is(tcpTry(outside, ip4, 81, 'x', NO), null, 'only published container ports: the rest is still filtered');
    t.false((await native.firewallState(backend, host.ns)).networks.some((x) => x.protect));
    await ctl.close();
    ctl = await host.open({ firewall: backend });
    t.is(tcpTry(outside, ip4, 80, 'x', NO), null, 'protected again');
    await ctl.removeSandbox(w.name);
    await ctl.removeNetwork('adr');
  });

  test.serial(name('nat-unprotected: NAT without filtering, every port and ping reachable directly'), async (t) => {
    await ctl.createNetwork({
      name: 'unprot',
      ipam: [{ subnet: v4(4) }, { subnet: v6(4) }],
      options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'nat-unprotected', 'com.docker.network.bridge.gateway_mode_ipv6': 'nat-unprotected' },
    });
    routeVia(v4(4));
    routeVia(v6(4));
    const w = await web('unprot', 'w4', [{ containerPort: 80, hostPort: 8084 }]);
    const { ip4, ip6 } = addrs(w, 'unprot');
    t.is(tcpTry(outside, ip4, 81, 'open4'), 'open4');
    t.is(tcpTry(outside, ip6, 81, 'open6'), 'open6');
    t.true(pings(outside, ip4));
    t.true(await eventually(() => ping6(outside, ip6), 4000));
    t.is(tcpTry(outside, HOST_IP, 8084, 'nat'), 'nat');
    await ctl.removeSandbox(w.name);
    await ctl.removeNetwork('unprot');
  });

  test.serial(name('routed: no NAT; published container ports are open to direct routing from anywhere, host ports are ignored'), async (t) => {
    await ctl.createNetwork({
      name: 'routed',
      ipam: [{ subnet: v4(5) }, { subnet: v6(5) }],
      options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'routed', 'com.docker.network.bridge.gateway_mode_ipv6': 'routed' },
    });
    routeVia(v4(5));
    routeVia(v6(5));
    const w = await web('routed', 'w5', [{ containerPort: 80, hostPort: 8085 }]);
    const { ip4, ip6 } = addrs(w, 'routed');
    const nb = await ctl.createSandbox({ name: host.name('nb5'), net: 'other' });
    t.is(tcpTry(outside, ip4, 80, 'r4'), 'r4');
    t.is(tcpTry(outside, ip6, 80, 'r6'), 'r6');
    t.is(tcpTry(outside, ip4, 81, 'x', NO), null, 'an unpublished port is closed');
    t.is(tcpTry(outside, ip6, 81, 'x', NO), null);
    t.true(pings(outside, ip4), 'ICMP is let in');
    t.true(await eventually(() => ping6(outside, ip6), 4000));
    t.is(tcpTry(outside, HOST_IP, 8085, 'x', NO), null, 'the host port is not published');
    t.deepEqual(w.inspect().Ports['80/tcp'], [
      { HostIp: '0.0.0.0', HostPort: '' },
      { HostIp: '::', HostPort: '' },
    ]);
    // other networks reach the published container port too, not the rest
    t.is(tcpTry(nb.netns, ip4, 80, 'from-other'), 'from-other');
    t.is(tcpTry(nb.netns, ip4, 81, 'x', NO), null);
    // outgoing traffic keeps the container's address
    await serve(startPeerServer(outside, OUTSIDE_IP, 7005));
    t.is(tcpTry(w.netns, OUTSIDE_IP, 7005, 'who'), ip4);
    // the host port was not reserved: another sandbox may publish it
    const again = await ctl.createSandbox({ name: host.name('w5b'), net: 'other', ports: [{ containerPort: 80, hostPort: 8085 }] });
    await ctl.removeSandbox(again.name);
    for (const s of [w, nb]) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('routed');
  });

  test.serial(name('isolated (internal only) and inhibit_ipv4 leave the bridge without an address; container_iface_prefix names interfaces'), async (t) => {
    await ctl.createNetwork({
      name: 'iso',
      internal: true,
      ipam: [{ subnet: v4(6) }, { subnet: v6(6) }],
      options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'isolated', 'com.docker.network.bridge.gateway_mode_ipv6': 'isolated' },
    });
    const br = ctl.getNetwork('iso').bridge!;
    const globalAddrs = (dev: string) =>
      ipj<Array<{ addr_info: Array<{ local: string; scope: string }> }>>(host.ns, 'addr', 'show', 'dev', dev)[0]!.addr_info.filter((a) => a.scope === 'global').map((a) => a.local);
    t.deepEqual(globalAddrs(br), []);
    const a = await ctl.createSandbox({ name: host.name('ia'), net: 'iso' });
    const b = await ctl.createSandbox({ name: host.name('ib'), net: 'iso' });
    t.true(pings(a.netns, addrs(b, 'iso').ip4), 'the network itself works');
    t.false(pings(host.ns, addrs(a, 'iso').ip4), 'the host cannot reach the network');
    await ctl.createNetwork({
      name: 'inh',
      ipam: [{ subnet: v4(7) }, { subnet: v6(7) }],
      options: { 'com.docker.network.bridge.inhibit_ipv4': 'true', 'com.docker.network.container_iface_prefix': 'lan' },
    });
    const br2 = ctl.getNetwork('inh').bridge!;
    t.false(globalAddrs(br2).some((x) => !x.includes(':')), 'no IPv4 address on the bridge');
    t.true(globalAddrs(br2).some((x) => x.includes(':')), 'the IPv6 gateway is there');
    const c = await ctl.createSandbox({ name: host.name('ic'), net: 'inh' });
    t.truthy(addrs(c, 'inh').ip4, 'endpoints still get IPv4 addresses');
    const ifaces = ipj<Array<{ ifname: string }>>(c.netns, 'link', 'show').map((l) => l.ifname);
    t.true(ifaces.includes('lan0') && !ifaces.includes('eth0'), ifaces.join());
    await ctl.connect('iso', c.name);
    const more = ipj<Array<{ ifname: string }>>(c.netns, 'link', 'show').map((l) => l.ifname);
    t.true(more.includes('eth0'), 'another network keeps the default prefix');
    for (const s of [a, b, c]) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('iso');
    await ctl.removeNetwork('inh');
  });

  test.serial(name('an IPv6-only network: no IPv4 anywhere, ping6 between sandboxes, ports published on IPv6'), async (t) => {
    const net = await ctl.createNetwork({ name: 'six', enableIPv4: false, enableIPv6: true });
    t.false(net.inspect().EnableIPv4);
    t.true(net.inspect().EnableIPv6);
    t.true(net.subnets.every((s) => s.includes(':')), net.subnets.join());
    const a = await ctl.createSandbox({ name: host.name('s6a'), net: 'six', ports: [{ containerPort: 80, hostPort: 8086 }] });
    const b = await ctl.createSandbox({ name: host.name('s6b'), net: 'six' });
    await serve(startEchoServer(a.netns, '::', 80));
    t.is(addrs(a, 'six').ip4, '');
    t.deepEqual(ipj<Array<{ addr_info: unknown[] }>>(a.netns, '-4', 'addr', 'show', 'dev', 'eth0')[0]?.addr_info ?? [], [], 'no IPv4 address in the sandbox');
    t.deepEqual(ipj(a.netns, '-4', 'route', 'show', 'default'), [], 'no IPv4 default route');
    t.is(ipj(a.netns, '-6', 'route', 'show', 'default').length, 1, 'an IPv6 default route');
    t.true(await eventually(() => ping6(a.netns, addrs(b, 'six').ip6), 4000));
    t.deepEqual(a.inspect().Ports['80/tcp'], [{ HostIp: '::', HostPort: '8086' }]);
    t.is(tcpTry(outside, HOST_IP6, 8086, 'six'), 'six');
    t.is(tcpTry(outside, HOST_IP, 8086, 'x', NO), null, 'nothing on IPv4');
    for (const s of [a, b]) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('six');
  });

  test.serial(name("the operator's own rules run first, and survive reconcile, restarts and resets"), async (t) => {
    await ctl.createNetwork({ name: 'ops', ipam: [{ subnet: v4(8) }] });
    const w = await web('ops', 'w8', [
      { containerPort: 80, hostPort: 8088 },
      { containerPort: 81, hostPort: 8089 },
    ]);
    t.is(tcpTry(outside, HOST_IP, 8088, 'before'), 'before');
    // block published port 8088 with the README's commands, as written there
    const commands = readmeOperatorCommands(backend === 'nftables' ? 'nft' : 'iptables');
    t.true(commands.length > 0, "the README shows the operator's commands");
    for (const [tool, ...args] of commands) inNs(host.ns, sysbin(tool!), ...args);
    const holds = (what: string) => {
      t.is(tcpTry(outside, HOST_IP, 8088, 'x', NO), null, `the operator's rule blocks 8088 (${what})`);
      t.is(tcpTry(outside, HOST_IP, 8089, 'ok'), 'ok', `the other port works (${what})`);
    };
    holds('at once');
    const r = await ctl.reconcile();
    t.deepEqual(r.actions, [], 'reconcile finds nothing to do');
    holds('after reconcile');
    await ctl.close();
    ctl = await host.open({ firewall: backend });
    await ctl.createNetwork({ name: 'ops2', ipam: [{ subnet: v4(10) }] });
    holds('after a restart and a new network');
    await native.firewallReset(backend, host.ns);
    await ctl.close();
    ctl = await host.open({ firewall: backend });
    holds('after a reset and a restart');
    await ctl.removeSandbox(w.name);
    await ctl.removeNetwork('ops');
    await ctl.removeNetwork('ops2');
  });
}
