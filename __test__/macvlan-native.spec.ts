// netcore's macvlan endpoints on a simulated LAN: the parent is a veth of the
// host netns whose peer sits on a bridge in a "LAN" netns with an outside host.
// The link is born inside the sandbox netns; traffic goes straight onto the LAN
// with the sandbox's own address and MAC; modes behave as the kernel defines;
// the host cannot reach its own macvlan children.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { type IsolatedHost, inNs, ipj, isolatedHost, pings } from './helpers/host.js';
import { lanWithOutside } from './helpers/lan.js';

let host: IsolatedHost;
let outside: string;
const ip = (...a: string[]) => execFileSync('ip', a);

test.before(async () => {
  host = await isolatedHost('mvn');
  ({ outside } = await lanWithOutside(host, ['192.168.90.10/24']));
});
test.after.always(async () => {
  await host?.cleanup();
});

const attach = async (sb: string, addr: string, mode?: 'bridge' | 'private' | 'vepa' | 'passthru') => {
  await native.netnsCreate(sb);
  return native.attachMacvlan({ hostNetns: host.ns, sandboxNetns: sb, parent: 'lan0', ifname: 'eth0', mode, addresses: [`${addr}/24`], gateway: '192.168.90.1' });
};

test.serial('a macvlan endpoint is born in the sandbox and talks on the LAN with its own address and MAC', async (t) => {
  const [a, b] = [host.name('a'), host.name('b')];
  const ia = await attach(a, '192.168.90.21');
  await attach(b, '192.168.90.22');
  const link = ipj<Array<{ ifname: string; link_type: string; address: string; operstate: string }>>(a, '-d', 'link', 'show', 'dev', 'eth0')[0]!;
  t.is(link.address, ia.mac);
  t.true(inNs(a, 'ip', '-d', 'link', 'show', 'dev', 'eth0').includes('macvlan mode bridge'));
  t.deepEqual(ipj<Array<{ ifname: string }>>(host.ns, 'link', 'show', 'type', 'macvlan'), [], 'nothing left in the host netns: it was never there');
  t.true(pings(a, '192.168.90.10'), 'the outside host');
  const neigh = ipj<Array<{ dst: string; lladdr: string }>>(outside, 'neigh', 'show', 'dev', 'eth0');
  t.is(neigh.find((n) => n.dst === '192.168.90.21')?.lladdr, ia.mac, 'the outside host saw its own MAC');
  t.true(pings(a, '192.168.90.22'), 'bridge mode: its sibling');
  t.true(inNs(a, 'ip', 'route', 'show').includes('default via 192.168.90.1 dev eth0'));
  // the kernel does not pass traffic between a macvlan parent and its children
  ip('-n', host.ns, 'addr', 'add', '192.168.90.2/24', 'dev', 'lan0');
  t.false(pings(host.ns, '192.168.90.21'), 'the host cannot reach its own macvlan children');
  t.true(pings(host.ns, '192.168.90.10'), 'though it reaches the LAN');
  ip('-n', host.ns, 'addr', 'del', '192.168.90.2/24', 'dev', 'lan0');
  await native.netnsDeleteMany([a, b]);
});

test.serial('private mode: siblings cannot reach each other, the LAN can', async (t) => {
  const [c, d] = [host.name('c'), host.name('d')];
  await attach(c, '192.168.90.31', 'private');
  await attach(d, '192.168.90.32', 'private');
  t.true(pings(c, '192.168.90.10'));
  t.false(pings(c, '192.168.90.32'), 'private: no traffic between siblings');
  await native.netnsDeleteMany([c, d]);
});

test.serial('bad input is coded and leaves nothing in the sandbox', async (t) => {
  const e = host.name('e');
  await native.netnsCreate(e);
  const missing = await t.throwsAsync(native.attachMacvlan({ hostNetns: host.ns, sandboxNetns: e, parent: 'nosuch0', ifname: 'eth0', addresses: ['192.168.90.41/24'] }), { instanceOf: CnmError });
  t.is(missing?.code, 'ERR_LINK_NOT_FOUND');
  t.regex(missing!.message, /nosuch0/);
  const mode = await t.throwsAsync(native.attachMacvlan({ hostNetns: host.ns, sandboxNetns: e, parent: 'lan0', ifname: 'eth0', mode: 'source' as never }), { instanceOf: CnmError });
  t.is(mode?.code, 'ERR_INVALID_ARGUMENT');
  // a bad address fails after the link was made: it is taken back
  const addr = await t.throwsAsync(native.attachMacvlan({ hostNetns: host.ns, sandboxNetns: e, parent: 'lan0', ifname: 'eth0', addresses: ['192.168.90.41/24'], gateway: '10.99.0.1' }), { instanceOf: CnmError });
  t.truthy(addr?.code);
  t.deepEqual(ipj<Array<{ ifname: string }>>(e, 'link', 'show').map((l) => l.ifname), ['lo'], 'no link left in the sandbox');
  await native.netnsDeleteMany([e]);
});
