// The macvlan driver on a simulated LAN: the parent is a veth of the isolated
// host whose peer sits on a bridge in a "LAN" netns, with an outside host that
// is also the LAN's gateway (192.168.90.1) and holds an address beyond it.
// Sandboxes talk on the LAN with their own addresses and MACs; modes behave as
// the kernel defines; bad requests are refused with coded errors and change
// nothing; reconcile knows macvlan links.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { type IsolatedHost, inNs, ipj, isolatedHost, pings } from './helpers/host.js';
import { lanWithOutside } from './helpers/lan.js';

let host: IsolatedHost;
let ctl: NetworkController;
let outside: string;
const ip = (...a: string[]) => execFileSync('ip', a);
const BEYOND = '198.51.100.7';

test.before(async () => {
  host = await isolatedHost('mv');
  ({ outside } = await lanWithOutside(host, ['192.168.90.1/24', '192.168.90.10/24']));
  ip('-n', outside, 'addr', 'add', `${BEYOND}/32`, 'dev', 'lo');
  ctl = await host.open();
});
test.after.always(async () => {
  await host?.cleanup();
});

const hostLinkNames = () => ipj<Array<{ ifname: string }>>(host.ns, 'link', 'show').map((l) => l.ifname).sort();
const macvlans = (ns: string) => ipj<Array<{ ifname: string }>>(ns, 'link', 'show', 'type', 'macvlan').map((l) => l.ifname);
const mv = (name: string, options: Record<string, string>, extra: Record<string, unknown> = {}) =>
  ctl.createNetwork({ name, driver: 'macvlan', options, ipam: [{ subnet: '192.168.90.0/24', gateway: '192.168.90.1', ipRange: '192.168.90.64/26' }], ...extra });

test.serial('bridge mode: sandboxes on the LAN with their own address and MAC, the gateway as default route', async (t) => {
  const net = await mv('lan', { parent: 'lan0' });
  t.deepEqual(net.inspect().Options, { parent: 'lan0', macvlan_mode: 'bridge' });
  const a = await ctl.createSandbox({ name: host.name('a'), net: 'lan' });
  const b = await ctl.createSandbox({ name: host.name('b'), net: 'lan' });
  const ea = a.inspect().Networks.lan!;
  t.is(ea.IPAddress, '192.168.90.64');
  t.is(ea.Gateway, '192.168.90.1');
  t.true(inNs(a.netns, 'ip', '-d', 'link', 'show', 'dev', 'eth0').includes('macvlan mode bridge'));
  t.deepEqual(macvlans(host.ns), [], 'nothing in the host netns: the link was born in the sandbox');
  t.true(pings(a.netns, '192.168.90.10'), 'the outside host');
  const neigh = ipj<Array<{ dst: string; lladdr: string }>>(outside, 'neigh', 'show', 'dev', 'eth0');
  t.is(neigh.find((n) => n.dst === ea.IPAddress)?.lladdr, ea.MacAddress, 'the outside host saw its own MAC');
  t.true(pings(a.netns, b.inspect().Networks.lan!.IPAddress), 'its sibling, directly');
  t.true(inNs(a.netns, 'ip', 'route', 'show').includes('default via 192.168.90.1 dev eth0'));
  t.true(pings(a.netns, BEYOND), 'beyond the gateway');
  // no NAT: the outside host sees the sandbox's own address
  ip('-n', outside, 'neigh', 'flush', 'dev', 'eth0');
  t.true(pings(b.netns, '192.168.90.10'));
  t.truthy(ipj<Array<{ dst: string }>>(outside, 'neigh', 'show', 'dev', 'eth0').find((n) => n.dst === b.inspect().Networks.lan!.IPAddress));
  // the kernel hands nothing between a parent and its macvlan children (documented)
  ip('-n', host.ns, 'addr', 'add', '192.168.90.2/24', 'dev', 'lan0');
  t.false(pings(host.ns, ea.IPAddress), 'the host cannot reach its own macvlan children');
  t.true(pings(host.ns, '192.168.90.10'), 'though it reaches the LAN');
  ip('-n', host.ns, 'addr', 'del', '192.168.90.2/24', 'dev', 'lan0');

  // no published ports: refused before anything changes
  const c = await ctl.createSandbox({ name: host.name('c') });
  const e = await t.throwsAsync(ctl.connect('lan', c.name, { ports: [{ containerPort: 80, hostPort: 8080 }] }), { instanceOf: CnmError });
  t.is(e!.code, 'ERR_INVALID_ARGUMENT');
  t.regex(e!.message, /does not publish ports/);
  t.deepEqual(macvlans(c.netns), []);
  t.is(ctl.endpointsOf(net.id).length, 2);

  await ctl.disconnect('lan', b.name);
  t.deepEqual(macvlans(b.netns), [], 'disconnect deletes the link in the sandbox');
  t.false(pings(a.netns, '192.168.90.65'));
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeSandbox(c.name);
  await ctl.removeNetwork('lan');
  t.deepEqual(macvlans(host.ns), []);
});

test.serial('private mode: each sandbox reaches the LAN, not its siblings; --internal gives no default route', async (t) => {
  await mv('priv', { parent: 'lan0', macvlan_mode: 'private' }, { internal: true });
  const a = await ctl.createSandbox({ name: host.name('pa'), net: 'priv' });
  const b = await ctl.createSandbox({ name: host.name('pb'), net: 'priv' });
  t.true(inNs(a.netns, 'ip', '-d', 'link', 'show', 'dev', 'eth0').includes('macvlan mode private'));
  t.true(pings(a.netns, '192.168.90.10'));
  t.true(pings(b.netns, '192.168.90.10'));
  t.false(pings(a.netns, b.inspect().Networks.priv!.IPAddress), 'private: siblings cannot talk');
  t.false(inNs(a.netns, 'ip', 'route', 'show').includes('default'), 'internal: no default route');
  t.false(pings(a.netns, BEYOND));
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeNetwork('priv');
});

test.serial('passthru: one endpoint has the parent; a second is refused', async (t) => {
  await mv('pt', { parent: 'lan0', macvlan_mode: 'passthru' });
  const a = await ctl.createSandbox({ name: host.name('ta'), net: 'pt' });
  t.true(pings(a.netns, '192.168.90.10'));
  const e = await t.throwsAsync(ctl.createSandbox({ name: host.name('tb'), net: 'pt' }), { instanceOf: CnmError });
  t.is(e!.code, 'ERR_PARENT_IN_USE');
  t.throws(() => ctl.getSandbox(host.name('tb')), { code: 'ERR_SANDBOX_NOT_FOUND' } as never);
  t.is(ctl.endpointsOf(ctl.getNetwork('pt').id).length, 1);
  // and a passthru network has its parent alone
  const other = await t.throwsAsync(ctl.createNetwork({ name: 'pt2', driver: 'macvlan', options: { parent: 'lan0' }, ipam: [{ subnet: '192.168.91.0/24' }] }), { instanceOf: CnmError });
  t.is(other!.code, 'ERR_PARENT_IN_USE');
  await ctl.removeSandbox(a.name);
  await ctl.removeNetwork('pt');
});

test.serial('bad requests are refused with coded errors and change nothing', async (t) => {
  const before = ctl.listNetworks().map((n) => n.name).sort();
  const hostLinks = hostLinkNames();
  const refuse = async (p: Promise<unknown>, code: string, re: RegExp) => {
    const e = await t.throwsAsync(p, { instanceOf: CnmError });
    t.is(e!.code, code, e!.message);
    t.regex(e!.message, re);
  };
  await refuse(mv('x', { parent: 'nosuch0' }), 'ERR_LINK_NOT_FOUND', /nosuch0 does not exist/);
  await refuse(mv('x', {}), 'ERR_INVALID_ARGUMENT', /parent=IF/);
  await refuse(mv('x', { parent: 'lan0', macvlan_mode: 'source' }), 'ERR_INVALID_ARGUMENT', /macvlan_mode/);
  await refuse(mv('x', { parent: 'lan0.5000' }), 'ERR_INVALID_ARGUMENT', /VLAN id/);
  // this kernel has no 8021q: the sub-interface cannot be made
  await refuse(mv('x', { parent: 'lan0.10' }), 'ERR_NOT_SUPPORTED', /802\.1q/);
  await refuse(mv('x', { parent: 'nosuch0.10' }), 'ERR_LINK_NOT_FOUND', /nosuch0 does not exist/);
  // one parent: overlapping subnets, another mode
  await mv('one', { parent: 'lan0' });
  await refuse(ctl.createNetwork({ name: 'x', driver: 'macvlan', options: { parent: 'lan0' }, ipam: [{ subnet: '192.168.90.128/25' }] }), 'ERR_SUBNET_OVERLAP', /overlaps/);
  await refuse(ctl.createNetwork({ name: 'x', driver: 'macvlan', options: { parent: 'lan0', macvlan_mode: 'vepa' }, ipam: [{ subnet: '192.168.92.0/24' }] }), 'ERR_PARENT_IN_USE', /mode bridge/);
  // the same mode on another subnet is fine (Docker allows it)
  await ctl.createNetwork({ name: 'two', driver: 'macvlan', options: { parent: 'lan0' }, ipam: [{ subnet: '192.168.92.0/24' }] });
  await ctl.removeNetwork('two');
  await ctl.removeNetwork('one');
  t.deepEqual(ctl.listNetworks().map((n) => n.name).sort(), before);
  t.deepEqual(hostLinkNames(), hostLinks, 'no link made or left in the host netns');
  // the refused subnet was never held: it can be used at once
  await mv('again', { parent: 'lan0' });
  await ctl.removeNetwork('again');
});

test.serial('reconcile: a lost macvlan link drops its endpoint, an orphan one is removed', async (t) => {
  await mv('rc', { parent: 'lan0' });
  const a = await ctl.createSandbox({ name: host.name('ra'), net: 'rc' });
  const b = await ctl.createSandbox({ name: host.name('rb'), net: 'rc' });
  t.deepEqual((await ctl.reconcile()).actions, [], 'nothing to do');
  ip('-n', a.netns, 'link', 'del', 'eth0');
  ip('-n', host.ns, 'link', 'add', 'link', 'lan0', 'name', 'stray0', 'type', 'macvlan', 'mode', 'bridge');
  ip('-n', host.ns, 'link', 'set', 'stray0', 'netns', b.netns);
  const dry = await ctl.reconcile({ dryRun: true });
  t.true(dry.actions.some((x) => /orphan macvlan link stray0/.test(x)), dry.actions.join('\n'));
  t.true(dry.actions.some((x) => /drop endpoint .* whose link is gone/.test(x)), dry.actions.join('\n'));
  t.deepEqual(macvlans(b.netns).sort(), ['eth0', 'stray0'], 'a dry run changes nothing');
  const r = await ctl.reconcile();
  t.deepEqual(r.errors, []);
  t.deepEqual(macvlans(b.netns), ['eth0']);
  t.deepEqual(Object.keys(ctl.getSandbox(a.name).inspect().Networks), [], 'the lost endpoint is gone from the records');
  t.true(pings(b.netns, '192.168.90.10'), 'the other endpoint is untouched');
  // its address is free again
  await ctl.connect('rc', a.name);
  t.true(pings(a.netns, '192.168.90.10'));
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeNetwork('rc');
});
