// Network create / inspect / rm against the real kernel, checked with `ip -j`.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { isGrave } from '../ts/reaper.js';
import type { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { type IsolatedHost, inNs, ipj, isolatedHost, pings } from './helpers/host.js';
import { startEchoServer, tcpTry } from './helpers/tcp.js';
import { storeRecords } from './helpers/records.js';

let host: IsolatedHost;
let ctl: NetworkController;

test.before(async () => {
  host = await isolatedHost('net');
  ctl = await host.open();
});
test.after.always(async () => {
  await host?.cleanup();
});

interface IpLink {
  ifname: string;
  mtu: number;
  operstate: string;
  flags: string[];
  linkinfo?: { info_kind: string };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

function link(name: string): IpLink | undefined {
  return ipj<IpLink[]>(host.ns, '-d', 'addr', 'show').find((l) => l.ifname === name);
}

test.serial('predefined networks none, host and bridge exist; the default bridge is cnm0', (t) => {
  const names = ctl.listNetworks().map((n) => n.name);
  t.deepEqual(names.sort(), ['bridge', 'host', 'none']);
  const br = ctl.getNetwork('bridge').inspect();
  t.is(br.Driver, 'bridge');
  t.is(br.Options['com.docker.network.bridge.default_bridge'], 'true');
  const l = link('cnm0');
  t.truthy(l, 'cnm0 exists in the host netns');
  t.is(l!.linkinfo?.info_kind, 'bridge');
  t.true(l!.flags.includes('UP'));
  const v4 = l!.addr_info!.find((a) => a.family === 'inet')!;
  t.is(`${v4.local}`, br.IPAM.Config[0]!.Gateway);
  t.is(ctl.getNetwork('host').inspect().Driver, 'host');
  t.is(ctl.getNetwork('none').inspect().Driver, 'null');
});

test.serial('create/inspect/rm a network; the kernel matches inspect; nothing remains', async (t) => {
  const net = await ctl.createNetwork({
    name: 'web',
    ipam: [{ subnet: '10.31.0.0/24', gateway: '10.31.0.254', ipRange: '10.31.0.128/25' }],
    labels: { tier: 'front' },
    options: { 'com.docker.network.driver.mtu': '1400' },
  });
  t.regex(net.id, /^[0-9a-f]{64}$/);
  const ins = ctl.getNetwork('web').inspect();
  t.is(ins.Name, 'web');
  t.deepEqual(ins.IPAM.Config, [{ Subnet: '10.31.0.0/24', Gateway: '10.31.0.254', IPRange: '10.31.0.128/25' }]);
  t.deepEqual(ins.Labels, { tier: 'front' });
  t.false(Number.isNaN(Date.parse(ins.Created)));
  t.is(ctl.getNetwork(net.id.slice(0, 10)).name, 'web', 'unique id prefix resolves');
  const l = link(net.bridge!);
  t.truthy(l);
  t.is(net.bridge, `br-${net.id.slice(0, 12)}`);
  t.is(l!.mtu, 1400);
  t.true(l!.flags.includes('UP'));
  t.deepEqual(
    l!.addr_info!.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ['10.31.0.254/24'],
  );
  await ctl.removeNetwork('web');
  t.is(link(net.bridge!), undefined, 'bridge removed from the kernel');
  t.throws(() => ctl.getNetwork('web'), { code: 'ERR_NETWORK_NOT_FOUND' } as never);
  t.is(ctl.store.range(`ipam/${net.id}/`).length, 0, 'no IPAM records left');
});

test.serial('automatic subnets do not overlap each other', async (t) => {
  const a = await ctl.createNetwork({ name: 'auto-a' });
  const b = await ctl.createNetwork({ name: 'auto-b' });
  t.not(a.subnets[0], b.subnets[0]);
  t.not(a.subnets[0], ctl.getNetwork('bridge').subnets[0]);
  await ctl.removeNetwork('auto-a');
  await ctl.removeNetwork('auto-b');
});

test.serial('a custom bridge name is used; a bridge we created is removed on rm, an adopted one is kept', async (t) => {
  const net = await ctl.createNetwork({ name: 'named', options: { 'com.docker.network.bridge.name': 'brnamed0' }, ipam: [{ subnet: '10.32.0.0/24' }] });
  t.is(net.bridge, 'brnamed0');
  t.truthy(link('brnamed0'));
  await ctl.removeNetwork('named');
  t.is(link('brnamed0'), undefined, 'a bridge we created is deleted');
  execFileSync('ip', ['-n', host.ns, 'link', 'add', 'brpre0', 'type', 'bridge']);
  await ctl.createNetwork({ name: 'adopted', options: { 'com.docker.network.bridge.name': 'brpre0' }, ipam: [{ subnet: '10.32.1.0/24' }] });
  t.true(link('brpre0')!.flags.includes('UP'));
  await ctl.removeNetwork('adopted');
  t.truthy(link('brpre0'), 'a device that existed before is left in place');
  execFileSync('ip', ['-n', host.ns, 'link', 'del', 'brpre0']);
});

test.serial('regression: a bridge name with a dot (br.x) works end to end, published port on 127.0.0.1 included', async (t) => {
  // the name passed validation, then failed on the sysctl path net.ipv4.conf.br.x.route_localnet
  const net = await ctl.createNetwork({ name: 'dotted', options: { 'com.docker.network.bridge.name': 'br.x' }, ipam: [{ subnet: '10.32.2.0/24' }] });
  t.is(net.bridge, 'br.x');
  t.truthy(link('br.x'));
  t.is(inNs(host.ns, 'cat', '/proc/sys/net/ipv4/conf/br.x/route_localnet').trim(), '1');
  const web = await ctl.createSandbox({ name: host.name('dot-web'), net: 'dotted', ports: [{ containerPort: 80, hostPort: 18081 }] });
  const server = await startEchoServer(web.netns, '0.0.0.0', 80);
  try {
    t.true(pings(web.netns, '10.32.2.1'), 'the sandbox reaches its gateway on br.x');
    t.is(tcpTry(host.ns, '127.0.0.1', 18081, 'dot'), 'dot', 'the published port answers on 127.0.0.1 of the host');
  } finally {
    server.kill('SIGKILL');
  }
  await ctl.removeSandbox(web.name);
  await ctl.removeNetwork('dotted');
  t.is(link('br.x'), undefined);
});

test.serial('a network name may be anything not empty, as in Docker', async (t) => {
  for (const name of ['with space', '../x', 'x'.repeat(65), 'ünï/cødé']) {
    const n = await ctl.createNetwork({ name });
    t.is(ctl.getNetwork(name).id, n.id, name);
    await ctl.removeNetwork(name);
  }
});

/** Links of the host netns; retired ones, reaped meanwhile (a bridge at a time), do not count. */
function live(): number {
  return ipj<Array<{ group?: string }>>(host.ns, 'link', 'show').filter((l) => !isGrave(Number(l.group))).length;
}

test.serial('bad names, CIDRs, drivers and options get coded errors and change nothing', async (t) => {
  const before = JSON.stringify(storeRecords(ctl));
  const linksBefore = live();
  const cases: Array<[string, Parameters<NetworkController['createNetwork']>[0]]> = [
    ['ERR_INVALID_ARGUMENT', { name: '' }],
    ['ERR_NAME_CONFLICT', { name: 'bridge' }],
    ['ERR_NAME_CONFLICT', { name: 'host' }],
    ['ERR_INVALID_ARGUMENT', { name: 'c1', ipam: [{ subnet: '10.33.0.0/33' }] }],
    ['ERR_INVALID_ARGUMENT', { name: 'c2', ipam: [{ subnet: '10.33.0.1/24' }] }],
    ['ERR_INVALID_ARGUMENT', { name: 'c3', ipam: [{ subnet: 'nope' }] }],
    ['ERR_INVALID_ARGUMENT', { name: 'c4', ipam: [{ subnet: '10.33.0.0/24', gateway: '10.34.0.1' }] }],
    ['ERR_INVALID_ARGUMENT', { name: 'c5', ipam: [{ subnet: '10.33.0.0/24', ipRange: '10.34.0.0/25' }] }],
    ['ERR_INVALID_ARGUMENT', { name: 'c6', ipam: [{ subnet: '10.33.0.0/32' }] }],
    ['ERR_UNKNOWN_DRIVER', { name: 'c7', driver: 'nosuch' }],
    ['ERR_INVALID_ARGUMENT', { name: 'c8', options: { 'com.docker.network.bridge.nosuch': '1' } }],
    ['ERR_INVALID_ARGUMENT', { name: 'c9', options: { 'com.docker.network.bridge.enable_icc': 'maybe' } }],
    ['ERR_INVALID_ARGUMENT', { name: 'c10', options: { 'com.docker.network.driver.mtu': 'big' } }],
    ['ERR_INVALID_ARGUMENT', { name: 'c11', options: { 'com.docker.network.bridge.name': 'this-name-is-too-long' } }],
    ['ERR_INVALID_ARGUMENT', { name: 'c12', driver: 'host' }],
    ['ERR_SUBNET_OVERLAP', { name: 'c13', ipam: [{ subnet: ctl.getNetwork('bridge').subnets[0]! }] }],
    ['ERR_INVALID_ARGUMENT', { name: 'c14', mtu: 10 }],
  ];
  for (const [code, req] of cases) {
    const e = await t.throwsAsync(ctl.createNetwork(req), undefined, JSON.stringify(req));
    t.true(e instanceof CnmError, JSON.stringify(req));
    t.is((e as CnmError).code, code, `${JSON.stringify(req)}: ${e?.message}`);
    t.true((e as CnmError).message.length > 10);
  }
  t.is(JSON.stringify(storeRecords(ctl)), before, 'store unchanged');
  t.is(live(), linksBefore, 'no link was made');
});

test.serial('predefined networks cannot be removed; unknown networks are not found', async (t) => {
  for (const n of ['bridge', 'host', 'none']) {
    await t.throwsAsync(ctl.removeNetwork(n), { code: 'ERR_PREDEFINED_NETWORK' } as never);
  }
  await t.throwsAsync(ctl.removeNetwork('nope'), { code: 'ERR_NETWORK_NOT_FOUND' } as never);
});
