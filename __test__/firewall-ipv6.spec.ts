/**
 * The firewall over IPv6, on both backends, with real traffic: dual-stack networks
 * are isolated from each other over IPv6 too, internal networks do not leak over
 * IPv6, icc=false blocks IPv6, outbound IPv6 is masqueraded and published ports
 * answer on the host's IPv6 address. Each backend gets its own host netns wired to
 * its own "outside" netns (2001:db8::1 host side, 2001:db8::2 outside).
 */
import type { ChildProcess } from 'node:child_process';
import test from 'ava';
import { backendsHere } from './helpers/tools.js';
import type { NetworkController } from '../ts/controller.js';
import type { FirewallBackendName } from '../ts/native-api.js';
import { native } from '../ts/native.js';
import { type IsolatedHost, eventually, inNs, isolatedHost, pings, sysbin } from './helpers/host.js';
import { HOST_IP, HOST_IP6, OUTSIDE_IP6, wireOutside } from './helpers/outside.js';
import { startEchoServer, startPeerServer, tcpTry } from './helpers/tcp.js';

/** true when one IPv6 ping from `ns` to `ip` gets an answer within `wait` seconds. */
function ping6(ns: string, ip: string, wait = 1): boolean {
  try {
    inNs(ns, 'ping', '-6', '-c', '1', '-i', '0.2', '-w', String(wait + 1), ip);
    return true;
  } catch {
    return false;
  }
}

/** A positive ping may need neighbour discovery first: a few tries. */
const reaches6 = (ns: string, ip: string) => eventually(() => ping6(ns, ip, 1), 4000);

/** A sandbox's IPv6 address on a network. */
const addr6 = (sb: { inspect(): { Networks: Record<string, { GlobalIPv6Address: string } | undefined> } }, net: string) =>
  sb.inspect().Networks[net]!.GlobalIPv6Address;

function ipv6Suite(backend: Exclude<FirewallBackendName, 'none'>, n: number): void {
  const name = (s: string) => `${backend}: ${s}`;
  // distinct subnets per backend: the two hosts are separate netns anyway
  const v4 = (k: number) => `10.${100 + n}.${k}.0/24`;
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

  test.before(async () => {
    host = await isolatedHost(`f6${backend.slice(0, 3)}`);
    outside = host.name('outside');
    await wireOutside(host.ns, outside);
    ctl = await host.open({ firewall: backend });
  });
  test.after.always(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await host?.cleanup();
  });

  test.serial(name('two dual-stack networks are isolated over IPv6 both ways, and both reach the outside'), async (t) => {
    await ctl.createNetwork({ name: 'a', ipam: [{ subnet: v4(1) }, { subnet: v6(1) }] });
    await ctl.createNetwork({ name: 'b', ipam: [{ subnet: v4(2) }, { subnet: v6(2) }] });
    const a = await ctl.createSandbox({ name: host.name('a'), net: 'a' });
    const a2 = await ctl.createSandbox({ name: host.name('a2'), net: 'a' });
    const b = await ctl.createSandbox({ name: host.name('b'), net: 'b' });
    const aIp = addr6(a, 'a');
    const bIp = addr6(b, 'b');
    t.truthy(aIp && bIp);
    t.is((await native.sysctlGet(host.ns, 'net.ipv6.conf.all.forwarding')).trim(), '1');
    t.true(await reaches6(a.netns, addr6(a2, 'a')), 'same network: IPv6 flows');
    t.true(await reaches6(a.netns, OUTSIDE_IP6), 'a reaches the outside over IPv6');
    t.true(await reaches6(b.netns, OUTSIDE_IP6), 'b reaches the outside over IPv6');
    t.false(ping6(a.netns, bIp), 'a -> b dropped');
    t.false(ping6(b.netns, aIp), 'b -> a dropped');
    // a sandbox on both networks reaches both
    await ctl.connect('b', a2.name);
    t.true(await reaches6(a2.netns, bIp));
    await ctl.disconnect('b', a2.name);
    for (const s of [a, a2, b]) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('b');
  });

  test.serial(name('an internal dual-stack network reaches nothing outside over IPv6, even with a route added by hand'), async (t) => {
    await ctl.createNetwork({ name: 'inner', internal: true, ipam: [{ subnet: v4(3) }, { subnet: v6(3) }] });
    const i1 = await ctl.createSandbox({ name: host.name('i1'), net: 'inner' });
    const i2 = await ctl.createSandbox({ name: host.name('i2'), net: 'inner' });
    const x = await ctl.createSandbox({ name: host.name('x'), net: 'a' });
    t.true(await reaches6(i1.netns, addr6(i2, 'inner')), 'inside the internal network IPv6 flows');
    const gw6 = ctl.getNetwork('inner').record.ipam.config.find((c) => c.subnet.includes(':'))!.gateway!;
    inNs(i1.netns, 'ip', '-6', 'route', 'add', 'default', 'via', gw6);
    // the outside knows the way back, so only the firewall can stop the traffic
    inNs(outside, 'ip', '-6', 'route', 'add', v6(3), 'via', HOST_IP6);
    try {
      t.true(await reaches6(i1.netns, gw6), 'the route is usable: the gateway answers');
      t.false(ping6(i1.netns, OUTSIDE_IP6), 'internal -> outside dropped');
      t.false(ping6(outside, addr6(i1, 'inner')), 'outside -> internal dropped');
      t.false(ping6(i1.netns, addr6(x, 'a')), 'internal -> other network dropped');
      t.false(ping6(x.netns, addr6(i1, 'inner')), 'other network -> internal dropped');
    } finally {
      inNs(outside, 'ip', '-6', 'route', 'del', v6(3));
    }
    for (const s of [i1, i2, x]) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('inner');
  });

  test.serial(name('icc=false blocks IPv6 between two sandboxes of one network, the way out stays open'), async (t) => {
    await ctl.createNetwork({
      name: 'noicc',
      ipam: [{ subnet: v4(4) }, { subnet: v6(4) }],
      options: { 'com.docker.network.bridge.enable_icc': 'false' },
    });
    const p = await ctl.createSandbox({ name: host.name('p'), net: 'noicc' });
    const q = await ctl.createSandbox({ name: host.name('q'), net: 'noicc' });
    t.true(await reaches6(p.netns, OUTSIDE_IP6), 'the way out is open');
    t.false(ping6(p.netns, addr6(q, 'noicc')), 'p -> q dropped');
    t.false(ping6(q.netns, addr6(p, 'noicc')), 'q -> p dropped');
    await serve(startEchoServer(q.netns, '::', 80));
    t.is(tcpTry(p.netns, addr6(q, 'noicc'), 80, 'direct', 700), null, 'direct TCP over IPv6 is blocked');
    await ctl.removeSandbox(p.name);
    await ctl.removeSandbox(q.name);
    await ctl.removeNetwork('noicc');
  });

  test.serial(name('outbound IPv6 is masqueraded to the host address, unless the network opts out'), async (t) => {
    await serve(startPeerServer(outside, OUTSIDE_IP6, 7777));
    const m = await ctl.createSandbox({ name: host.name('m'), net: 'a' });
    t.is(tcpTry(m.netns, OUTSIDE_IP6, 7777, 'x'), HOST_IP6, 'the outside (with no route back) sees the host address');
    await ctl.createNetwork({
      name: 'nomasq',
      ipam: [{ subnet: v4(5) }, { subnet: v6(5) }],
      options: { 'com.docker.network.bridge.enable_ip_masquerade': 'false' },
    });
    const raw = await ctl.createSandbox({ name: host.name('raw'), net: 'nomasq' });
    t.is(tcpTry(raw.netns, OUTSIDE_IP6, 7777, 'x', 1000), null, 'without NAT and without a route back: no answer');
    inNs(outside, 'ip', '-6', 'route', 'add', v6(5), 'via', HOST_IP6);
    try {
      t.is(tcpTry(raw.netns, OUTSIDE_IP6, 7777, 'x'), addr6(raw, 'nomasq'), 'not masqueraded');
    } finally {
      inNs(outside, 'ip', '-6', 'route', 'del', v6(5));
    }
    await ctl.removeSandbox(raw.name);
    await ctl.removeSandbox(m.name);
    await ctl.removeNetwork('nomasq');
  });

  test.serial(name('a published TCP port answers on the host IPv6 address; an IPv4 host IP is IPv4 only'), async (t) => {
    const web = await ctl.createSandbox({
      name: host.name('web'),
      net: 'a',
      ports: [
        { containerPort: 80, hostPort: 8086 },
        { containerPort: 81, hostPort: 8087, hostIp: HOST_IP },
      ],
    });
    const nb = await ctl.createSandbox({ name: host.name('nb'), net: 'a' });
    const ip4 = web.inspect().Networks.a!.IPAddress;
    const ip6 = addr6(web, 'a');
    await serve(startEchoServer(web.netns, '::', 80));
    await serve(startEchoServer(web.netns, '::', 81));
    t.is(tcpTry(outside, HOST_IP6, 8086, 'v6-from-outside'), 'v6-from-outside');
    t.is(tcpTry(outside, HOST_IP, 8086, 'v4-from-outside'), 'v4-from-outside', 'IPv4 still works');
    t.is(tcpTry(host.ns, HOST_IP6, 8086, 'v6-from-host'), 'v6-from-host');
    t.is(tcpTry(nb.netns, HOST_IP6, 8086, 'v6-hairpin-neighbour'), 'v6-hairpin-neighbour');
    t.is(tcpTry(outside, HOST_IP, 8087, 'pinned-v4'), 'pinned-v4');
    t.is(tcpTry(outside, HOST_IP6, 8087, 'pinned-v6', 700), null, 'a port bound to an IPv4 host address is not published on IPv6');
    t.is(tcpTry(outside, HOST_IP6, 8088, 'nothing-here', 700), null, 'an unpublished port does not answer');
    const st = await native.firewallState(backend, host.ns);
    // one entry per family and mapping (the library publishes each family apart)
    t.deepEqual(
      st.ports.map((p) => `${p.proto}:${p.hostIp ?? '*'}:${p.hostPort}->${p.containerIp ?? '-'}/${p.containerIp6 ?? '-'}:${p.containerPort}`).sort(),
      [`tcp:*:8086->${ip4}/-:80`, `tcp:*:8086->-/${ip6}:80`, `tcp:${HOST_IP}:8087->${ip4}/-:81`].sort(),
    );
    t.deepEqual(
      web.inspect().Ports['80/tcp'],
      [
        { HostIp: '0.0.0.0', HostPort: '8086' },
        { HostIp: '::', HostPort: '8086' },
      ],
      'inspect shows both families, as Docker does',
    );
    if (backend === 'iptables') {
      const net = st.networks.find((x) => x.bridge === ctl.getNetwork('a').bridge)!;
      t.deepEqual(net.subnets6, [v6(1)]);
      t.regex(inNs(host.ns, sysbin('ip6tables-save')), /-A CNM-DNAT-TCP-\d+ .*--to-destination \[/);
    } else {
      t.regex(inNs(host.ns, sysbin('nft'), 'list', 'tables'), /table ip6 cnm/);
    }
    await ctl.removeSandbox(web.name);
    t.is(tcpTry(outside, HOST_IP6, 8086, 'gone', 700), null, 'the IPv6 mapping goes with the sandbox');
    t.deepEqual((await native.firewallState(backend, host.ns)).ports, []);
    await ctl.removeSandbox(nb.name);
  });

  test.serial(name('reconcile after a reset restores IPv6 isolation; reset leaves nothing'), async (t) => {
    const a = await ctl.createSandbox({ name: host.name('ra'), net: 'a' });
    await ctl.createNetwork({ name: 'c', ipam: [{ subnet: v4(6) }, { subnet: v6(6) }] });
    const c = await ctl.createSandbox({ name: host.name('rc'), net: 'c' });
    t.false(ping6(a.netns, addr6(c, 'c')));
    await native.firewallReset(backend, host.ns);
    await native.firewallInit(backend, host.ns);
    t.true(await reaches6(a.netns, addr6(c, 'c')), 'without entries nothing is isolated');
    const r = await ctl.reconcile();
    t.true(r.actions.some((x) => /restore firewall entries/.test(x)), r.actions.join('; '));
    t.false(ping6(a.netns, addr6(c, 'c')), 'isolated again');
    for (const s of [a, c]) await ctl.removeSandbox(s.name);
    await ctl.removeNetwork('c');
    await ctl.removeNetwork('a');
    await ctl.close();
    await native.firewallReset(backend, host.ns);
    if (backend === 'iptables') {
      t.notRegex(inNs(host.ns, sysbin('ip6tables-save')), /CNM-/);
    } else {
      t.notRegex(inNs(host.ns, sysbin('nft'), 'list', 'tables'), /cnm/);
    }
    t.true(pings(outside, HOST_IP), 'the wiring is still there');
  });
}

ipv6Suite('nftables', 1);
if (backendsHere().includes('iptables')) ipv6Suite('iptables', 2);

test.serial('nftables: a table of an older cnm (v2, IPv4 only) is replaced by both v3 tables at init', async (t) => {
  const h = await isolatedHost('f6up');
  try {
    const nft = (...a: string[]) => inNs(h.ns, sysbin('nft'), ...a);
    nft('add', 'table', 'ip', 'cnm', '{ comment "managed by cnm v2"; }');
    nft('add', 'set', 'ip', 'cnm', 'bridges', '{ type ifname; }');
    nft('add', 'element', 'ip', 'cnm', 'bridges', '{ "old0" }');
    await native.firewallInit('nftables', h.ns);
    t.notRegex(nft('list', 'table', 'ip', 'cnm'), /old0/);
    t.regex(nft('list', 'table', 'ip', 'cnm'), /map ports_ip/);
    t.regex(nft('list', 'table', 'ip6', 'cnm'), /ipv6_addr \. inet_service/);
    t.deepEqual(await native.firewallState('nftables', h.ns), { networks: [], ports: [], links: [], baseIntact: true }, 'old elements are gone (reconcile restores ours)');
    await native.applyFirewall({
      backend: 'nftables',
      netns: h.ns,
      addNetworks: [{ bridge: 'br9', subnets6: ['fd00:99::/64'], masquerade: true, icc: false, internal: false, tag: 'n9' }],
      addPorts: [{ proto: 'udp', hostPort: 53, containerIp: '10.9.9.2', containerIp6: 'fd00:99::2', containerPort: 5353, bridge: 'br9', tag: 'e9' }],
    });
    await native.firewallInit('nftables', h.ns); // current: left alone
    const st = await native.firewallState('nftables', h.ns);
    t.deepEqual(st.networks.map((n) => [n.bridge, n.masquerade, n.icc, n.internal]), [['br9', true, false, false]]);
    t.deepEqual(st.ports.map((p) => [p.hostPort, p.containerIp, p.containerIp6, p.containerPort]), [
      [53, null, 'fd00:99::2', 5353],
      [53, '10.9.9.2', null, 5353],
    ]);
    t.regex(nft('list', 'map', 'ip6', 'cnm', 'ports'), /udp \. 53 : fd00:99::2 \. 5353/);
    t.regex(nft('list', 'map', 'ip6', 'cnm', 'intra'), /"br9" \. "br9" : drop/);
    // the same key again is refused on either family, and nothing changes
    const e = await t.throwsAsync(
      native.applyFirewall({
        backend: 'nftables',
        netns: h.ns,
        addPorts: [{ proto: 'udp', hostPort: 53, containerIp: '10.9.9.3', containerIp6: 'fd00:99::3', containerPort: 1, bridge: 'br9', tag: 'e8' }],
      }),
    );
    t.is((e as { code?: string }).code, 'ERR_PORT_ALLOCATED');
    t.deepEqual((await native.firewallState('nftables', h.ns)).ports.length, 2);
    // removing the mapping clears both families
    await native.applyFirewall({
      backend: 'nftables',
      netns: h.ns,
      removePorts: [{ proto: 'udp', hostPort: 53, containerIp: '10.9.9.2', containerIp6: 'fd00:99::2', containerPort: 5353, bridge: 'br9', tag: 'e9' }],
    });
    t.notRegex(nft('list', 'map', 'ip6', 'cnm', 'ports'), /fd00:99::2/);
    t.notRegex(nft('list', 'map', 'ip', 'cnm', 'ports'), /10\.9\.9\.2/);
    await native.firewallReset('nftables', h.ns);
    t.notRegex(nft('list', 'tables'), /cnm/);
  } finally {
    await h.cleanup();
  }
});
