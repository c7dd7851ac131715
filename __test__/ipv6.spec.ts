// IPv6 and dual stack on bridge networks, with real traffic.
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { ulaPrefix } from '../ts/ipam/default-pools.js';
import { native } from '../ts/native.js';
import { type IsolatedHost, ipj, isolatedHost, ping6, pings } from './helpers/host.js';
import { startEchoServer, tcpTry } from './helpers/tcp.js';
import { storeRecords } from './helpers/records.js';

let host: IsolatedHost;
let ctl: NetworkController;
test.before(async () => {
  host = await isolatedHost('ip6');
  ctl = await host.open();
});
test.after.always(async () => {
  await host?.cleanup();
});


test.serial('dual stack: both addresses, both gateways, both default routes; ping and TCP over IPv6', async (t) => {
  const net = await ctl.createNetwork({ name: 'dual', ipam: [{ subnet: '10.91.0.0/24' }, { subnet: 'fd00:91::/64' }] });
  const ins = net.inspect();
  t.true(ins.EnableIPv6);
  t.deepEqual(ins.IPAM.Config, [
    // the subnets as the user gave them: Docker leaves out the gateways it chose
    { Subnet: '10.91.0.0/24' },
    { Subnet: 'fd00:91::/64' },
  ]);
  const a = await ctl.createSandbox({ name: host.name('a'), net: 'dual' });
  const b = await ctl.createSandbox({ name: host.name('b'), net: 'dual', ip6: 'fd00:91::beef' });
  const na = a.inspect().Networks.dual!;
  const nb = b.inspect().Networks.dual!;
  t.is(na.IPAddress, '10.91.0.2');
  t.is(na.GlobalIPv6Address, 'fd00:91::2');
  t.is(na.GlobalIPv6PrefixLen, 64);
  t.is(na.IPv6Gateway, 'fd00:91::1');
  t.is(nb.GlobalIPv6Address, 'fd00:91::beef');
  const addrs = ipj<Array<{ addr_info: Array<{ family: string; local: string; scope: string }> }>>(a.netns, 'addr', 'show', 'dev', 'eth0')[0]!;
  t.truthy(addrs.addr_info.find((x) => x.family === 'inet6' && x.local === 'fd00:91::2' && x.scope === 'global'));
  const r6 = ipj<Array<{ dst: string; gateway?: string }>>(a.netns, '-6', 'route', 'show', 'default');
  t.deepEqual(r6.map((r) => r.gateway), ['fd00:91::1']);
  t.true(ping6(a.netns, 'fd00:91::beef'));
  t.true(ping6(a.netns, 'fd00:91::1'), 'the bridge answers on its IPv6 gateway address');
  const server = await startEchoServer(b.netns, 'fd00:91::beef', 6060);
  try {
    t.is(tcpTry(a.netns, 'fd00:91::beef', 6060, 'over-v6'), 'over-v6');
  } finally {
    server.kill();
  }
  t.is(ctl.getNetwork('dual').inspect().Containers[b.id]!.IPv6Address, 'fd00:91::beef/64');
  // the bridge carries both gateway addresses
  const br = ipj<Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>>(host.ns, 'addr', 'show', 'dev', net.bridge!)[0]!;
  t.deepEqual(br.addr_info.filter((x) => !x.local.startsWith('fe80')).map((x) => `${x.local}/${x.prefixlen}`).sort(), ['10.91.0.1/24', 'fd00:91::1/64']);
  await t.throwsAsync(ctl.connect('dual', a.name), { code: 'ERR_ALREADY_CONNECTED' } as never);
  await t.throwsAsync(ctl.createSandbox({ name: host.name('dup6'), net: 'dual', ip6: 'fd00:91::beef' }), { code: 'ERR_ADDRESS_IN_USE' } as never);
  await t.throwsAsync(ctl.createSandbox({ name: host.name('out6'), net: 'dual', ip6: 'fd00:92::1' }), { code: 'ERR_INVALID_ARGUMENT' } as never);
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeNetwork('dual');
});

test.serial('--ipv6 without an IPv6 subnet takes a /64 from the host ULA /48', async (t) => {
  const n1 = await ctl.createNetwork({ name: 'ula1', enableIPv6: true });
  const n2 = await ctl.createNetwork({ name: 'ula2', enableIPv6: true });
  const ula = ulaPrefix();
  t.regex(ula, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/48$/);
  const base = ula.split('::')[0]!;
  const v6 = (n: typeof n1) => n.subnets.find((s) => s.includes(':'))!;
  t.is(v6(n1), `${base}::/64`);
  t.is(v6(n2), `${base}:1::/64`);
  t.true(n1.subnets.some((s) => s.includes('.')), 'IPv4 comes along');
  const s = await ctl.createSandbox({ name: host.name('u'), net: 'ula1' });
  t.is(s.inspect().Networks.ula1!.GlobalIPv6Address, `${base}::2`);
  t.true(ping6(s.netns, `${base}::1`));
  await ctl.removeSandbox(s.name);
  await ctl.removeNetwork('ula1');
  await ctl.removeNetwork('ula2');
});

test.serial('IPv6 bad input gets coded errors and changes nothing', async (t) => {
  const before = JSON.stringify(storeRecords(ctl));
  const cases: Array<Parameters<NetworkController['createNetwork']>[0]> = [
    { name: 'b1', ipam: [{ subnet: 'fd00:93::/128' }] },
    { name: 'b2', ipam: [{ subnet: 'fd00:93::1/64' }] },
    { name: 'b3', ipam: [{ subnet: 'fd00:93::/64', gateway: 'fd00:94::1' }] },
    { name: 'b4', ipam: [{ subnet: 'fd00:93::/64', ipRange: '10.0.0.0/24' }] },
    { name: 'b5', ipam: [{ subnet: 'fd00:93::/64' }, { subnet: 'fd00:93::/80' }] },
  ];
  for (const c of cases) {
    const e = await t.throwsAsync(ctl.createNetwork(c), undefined, JSON.stringify(c));
    t.true(['ERR_INVALID_ARGUMENT', 'ERR_SUBNET_OVERLAP'].includes((e as { code: string }).code), `${JSON.stringify(c)}: ${e?.message}`);
  }
  await ctl.createNetwork({ name: 'v4only', ipam: [{ subnet: '10.92.0.0/24' }] });
  await t.throwsAsync(ctl.createSandbox({ name: host.name('x'), net: 'v4only', ip6: 'fd00::5' }), { code: 'ERR_INVALID_ARGUMENT' } as never);
  await ctl.removeNetwork('v4only');
  t.is(JSON.stringify(storeRecords(ctl)), before);
});

const genMode = (ns: string, dev: string) => ipj<Array<{ inet6_addr_gen_mode?: string }>>(ns, '-d', 'link', 'show', 'dev', dev)[0]!.inet6_addr_gen_mode;

test.serial('an endpoint of an IPv4-only network has no IPv6 address on its link, nor has its bridge port; a dual-stack one keeps it', async (t) => {
  await ctl.createNetwork({ name: 'v4only', ipam: [{ subnet: '10.92.0.0/24' }] });
  await ctl.createNetwork({ name: 'dual2', ipam: [{ subnet: '10.93.0.0/24' }, { subnet: 'fd00:93::/64' }] });
  const a = await ctl.createSandbox({ name: host.name('v4a'), net: 'v4only' });
  const b = await ctl.createSandbox({ name: host.name('v4b'), net: 'v4only' });
  await ctl.connect('dual2', a.name);
  type Addr = Array<{ addr_info: Array<{ family: string; local: string }> }>;
  const families = (ns: string, dev: string) => ipj<Addr>(ns, 'addr', 'show', 'dev', dev)[0]!.addr_info.map((x) => x.family);
  // a link-local address would have come within the DAD time (1 s): wait past it
  await new Promise((r) => setTimeout(r, 1500));
  t.deepEqual(families(a.netns, 'eth0'), ['inet'], 'no link-local address: it never sent DAD, RS or MLD');
  t.is(genMode(a.netns, 'eth0'), 'none');
  t.true(families(a.netns, 'eth1').includes('inet6'), 'the dual-stack interface keeps IPv6');
  t.not(genMode(a.netns, 'eth1'), 'none');
  // the host ends: bridge ports, no IPv6 address of their own
  const links = await native.listLinks(host.ns);
  const bridge = links.find((l) => l.name === ctl.getNetwork('v4only').bridge)!;
  const ports = links.filter((l) => l.master === bridge.index);
  t.is(ports.length, 2);
  for (const p of ports) {
    t.is(genMode(host.ns, p.name), 'none', p.name);
    t.deepEqual(ipj<Addr>(host.ns, 'addr', 'show', 'dev', p.name)[0]!.addr_info, [], p.name);
  }
  // IPv4 works as ever, and IPv6 on the dual-stack network
  t.true(pings(a.netns, b.inspect().Networks.v4only!.IPAddress));
  t.true(ping6(a.netns, 'fd00:93::1'));
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeNetwork('v4only');
  await ctl.removeNetwork('dual2');
});
