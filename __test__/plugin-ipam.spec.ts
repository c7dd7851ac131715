// Remote IPAM plugins end to end, inside an isolated host netns: a small in-memory
// IPAM plugin written with the SDK hands out pools and addresses for bridge
// networks created with ipamDriver; sandboxes get its addresses and ping each
// other; every address and pool goes back to it; its errors leave nothing behind;
// the CLI's --ipam-driver. Nothing outside the test's namespaces.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { startDaemon } from '../ts/daemon/server.js';
import type { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import {
  type IpamDriverPlugin,
  type PluginServer,
  type RequestAddressRequest,
  type RequestPoolRequest,
  servePlugin,
} from '../ts/plugin/index.js';
import { apiCall } from './helpers/daemon-http.js';
import { type IsolatedHost, eventually, ipj, isolatedHost, ping6, pings } from './helpers/host.js';
import { storeRecords } from './helpers/records.js';

const BIN = fileURLToPath(new URL('../bin/cnm.js', import.meta.url));
const GATEWAY_OPT = { RequestAddressType: 'com.docker.network.gateway' };

let host: IsolatedHost;
let ctl: NetworkController;
let pluginDir: string;
let server: PluginServer;
let driverOnly: PluginServer;

interface Link {
  ifname: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

interface FakePool {
  subnet: string;
  /** "10.251.0." or "fd00:251::": an address is base + host number (hex for IPv6) */
  base: string;
  v6: boolean;
  used: Set<number>;
}

/** An in-memory IPAM over IPv4 /24 and IPv6 /64 pools: Pool "" is 10.251.0.0/24 or fd00:251::/64. */
class FakeIpam implements IpamDriverPlugin {
  calls: Array<{ method: string; req: unknown }> = [];
  pools = new Map<string, FakePool>();
  failAddress = false;
  /** fail IPv6 address requests only */
  failAddress6 = false;
  private next = 0;

  private log(method: string, req: unknown): void {
    this.calls.push({ method, req });
  }

  of(method: string): unknown[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.req);
  }

  used(): string[] {
    return [...this.pools.values()].flatMap((p) => [...p.used].sort((a, b) => a - b).map((n) => this.addr(p, n)));
  }

  private addr(p: FakePool, n: number): string {
    return p.base + n.toString(p.v6 ? 16 : 10);
  }

  private num(p: FakePool, address: string): number {
    const ip = address.split('/')[0]!;
    if (!ip.startsWith(p.base)) throw new Error(`${address} is not in pool ${p.subnet}`);
    return parseInt(ip.slice(p.base.length), p.v6 ? 16 : 10);
  }

  getDefaultAddressSpaces() {
    this.log('GetDefaultAddressSpaces', {});
    return { LocalDefaultAddressSpace: 'FakeLocal', GlobalDefaultAddressSpace: 'FakeGlobal' };
  }

  requestPool(req: RequestPoolRequest) {
    this.log('RequestPool', req);
    const subnet = req.Pool || (req.V6 ? 'fd00:251::/64' : '10.251.0.0/24');
    const tail = req.V6 ? '::/64' : '.0/24';
    if (!subnet.endsWith(tail)) throw new Error(`only IPv4 /24 and IPv6 /64 pools here, not ${subnet}`);
    if ([...this.pools.values()].some((p) => p.subnet === subnet)) throw new Error(`pool ${subnet} is taken`);
    const id = `pool-${++this.next}`;
    this.pools.set(id, { subnet, base: subnet.slice(0, -tail.length) + (req.V6 ? '::' : '.'), v6: req.V6, used: new Set() });
    return { PoolID: id, Pool: subnet, Data: {} };
  }

  releasePool(req: { PoolID: string }) {
    this.log('ReleasePool', req);
    if (!this.pools.delete(req.PoolID)) throw new Error(`no pool ${req.PoolID}`);
  }

  requestAddress(req: RequestAddressRequest) {
    this.log('RequestAddress', req);
    if (this.failAddress) throw new Error('no more');
    const p = this.pools.get(req.PoolID);
    if (!p) throw new Error(`no pool ${req.PoolID}`);
    if (p.v6 && this.failAddress6) throw new Error('no more IPv6');
    let n: number;
    if (req.Address) {
      n = this.num(p, req.Address);
      if (p.used.has(n)) throw new Error(`${req.Address} is in use`);
    } else if (req.Options.RequestAddressType === 'com.docker.network.gateway' && !p.used.has(1)) {
      n = 1;
    } else {
      n = 2;
      while (p.used.has(n)) n++;
      if (n > 254) throw new Error('no more');
    }
    p.used.add(n);
    return { Address: `${this.addr(p, n)}/${p.v6 ? 64 : 24}` };
  }

  releaseAddress(req: { PoolID: string; Address: string }) {
    this.log('ReleaseAddress', req);
    const p = this.pools.get(req.PoolID);
    if (!p?.used.delete(this.num(p, req.Address))) throw new Error(`${req.Address} is not allocated in ${req.PoolID}`);
  }
}

const ipam = new FakeIpam();
// retired links (cnmg…, down, in the grave group) are deleted a moment after a removal: not part of what is left
const hostLinks = () => ipj<Link[]>(host.ns, 'link', 'show').map((l) => l.ifname).filter((n) => !n.startsWith('cnmg'));
const inet = (ns: string, dev: string) =>
  ipj<Link[]>(ns, 'addr', 'show', 'dev', dev)[0]!
    .addr_info!.filter((a) => a.family === 'inet')
    .map((a) => `${a.local}/${a.prefixlen}`);

/** The cnm CLI, asynchronously: the plugin answers from this process meanwhile. */
function cnmAsync(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test.before(async () => {
  host = await isolatedHost('ipam');
  pluginDir = mkdtempSync(join(tmpdir(), 'cnm-ipam-plugins-'));
  server = await servePlugin({ socket: join(pluginDir, 'fakeipam.sock'), ipam });
  driverOnly = await servePlugin({
    socket: join(pluginDir, 'netonly.sock'),
    driver: { createNetwork() {}, deleteNetwork() {}, createEndpoint() {}, join: () => ({}) },
  });
  ctl = await host.open({ pluginDir });
});
test.after.always(async () => {
  await server?.close();
  await driverOnly?.close();
  await host?.cleanup();
  rmSync(pluginDir, { recursive: true, force: true });
});

test.serial('addresses from the IPAM plugin: two sandboxes ping, everything goes back to it', async (t) => {
  ipam.calls.length = 0;
  const before = hostLinks();
  const net = await ctl.createNetwork({ name: 'ipnet', driver: 'bridge', ipamDriver: 'fakeipam', ipamOptions: { color: 'blue' } });
  t.deepEqual(
    ipam.calls.map((c) => c.method),
    ['GetDefaultAddressSpaces', 'RequestPool', 'RequestAddress'],
  );
  t.deepEqual(ipam.of('RequestPool'), [{ AddressSpace: 'FakeLocal', Pool: '', SubPool: '', Options: { color: 'blue' }, V6: false }]);
  t.deepEqual(ipam.of('RequestAddress'), [{ PoolID: 'pool-1', Address: '', Options: GATEWAY_OPT }]);
  const ins = net.inspect();
  t.is(ins.IPAM.Driver, 'fakeipam');
  t.deepEqual(ins.IPAM.Options, { color: 'blue' });
  t.deepEqual(ins.IPAM.Config, [{ Subnet: '10.251.0.0/24', Gateway: '10.251.0.1' }]);
  t.deepEqual(inet(host.ns, net.record.bridge!), ['10.251.0.1/24'], 'the bridge has the gateway the plugin gave');

  const a = await ctl.createSandbox({ name: host.name('a'), net: 'ipnet' });
  const b = await ctl.createSandbox({ name: host.name('b'), net: 'ipnet' });
  t.is(a.inspect().Networks.ipnet!.IPAddress, '10.251.0.2');
  t.is(b.inspect().Networks.ipnet!.IPAddress, '10.251.0.3');
  t.is(a.inspect().Networks.ipnet!.Gateway, '10.251.0.1');
  t.deepEqual(ipam.used(), ['10.251.0.1', '10.251.0.2', '10.251.0.3'], "the plugin's records");
  t.deepEqual(ipam.of('RequestAddress').slice(1), [
    { PoolID: 'pool-1', Address: '', Options: {} },
    { PoolID: 'pool-1', Address: '', Options: {} },
  ]);
  t.deepEqual(inet(a.netns, 'eth0'), ['10.251.0.2/24']);
  t.deepEqual(inet(b.netns, 'eth0'), ['10.251.0.3/24']);
  t.true(pings(a.netns, '10.251.0.3'), 'A reaches B');
  t.true(pings(b.netns, '10.251.0.2'), 'B reaches A');
  // the default IPAM keeps nothing for this network, and reconcile frees nothing
  t.deepEqual(ctl.store.range(`ipam/${net.id}/`), []);
  const report = await ctl.reconcile();
  t.deepEqual(report.errors, []);
  t.false(report.actions.some((x) => /leaked|ipnet/.test(x)), report.actions.join('; '));
  t.deepEqual(ipam.used(), ['10.251.0.1', '10.251.0.2', '10.251.0.3']);

  // a connect that fails in the store transaction gives its address back
  ipam.calls.length = 0;
  t.is(((await t.throwsAsync(ctl.connect('ipnet', a.name))) as CnmError).code, 'ERR_ALREADY_CONNECTED');
  t.deepEqual(
    ipam.calls.map((c) => c.method),
    ['RequestAddress', 'ReleaseAddress'],
  );
  t.deepEqual(ipam.used(), ['10.251.0.1', '10.251.0.2', '10.251.0.3']);

  // disconnect releases; connect again gets an address from the plugin
  ipam.calls.length = 0;
  await ctl.disconnect('ipnet', b.name);
  t.deepEqual(ipam.of('ReleaseAddress'), [{ PoolID: 'pool-1', Address: '10.251.0.3' }]);
  t.deepEqual(ipam.used(), ['10.251.0.1', '10.251.0.2']);
  await ctl.connect('ipnet', b.name);
  t.is(b.inspect().Networks.ipnet!.IPAddress, '10.251.0.3');
  t.true(pings(a.netns, '10.251.0.3'));

  // sandbox rm releases
  ipam.calls.length = 0;
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  t.deepEqual(
    ipam.of('ReleaseAddress').sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    [
      { PoolID: 'pool-1', Address: '10.251.0.2' },
      { PoolID: 'pool-1', Address: '10.251.0.3' },
    ],
  );
  t.deepEqual(ipam.used(), ['10.251.0.1']);

  // network rm releases the gateway and the pool
  ipam.calls.length = 0;
  await ctl.removeNetwork('ipnet');
  t.deepEqual(ipam.calls, [
    { method: 'ReleaseAddress', req: { PoolID: 'pool-1', Address: '10.251.0.1' } },
    { method: 'ReleasePool', req: { PoolID: 'pool-1' } },
  ]);
  t.is(ipam.pools.size, 0);
  t.true(await eventually(() => hostLinks().join() === before.join()), `host links back to ${before.join()}: ${hostLinks().join()}`);
});

test.serial('a static --ip and a user gateway are requested from the plugin', async (t) => {
  ipam.calls.length = 0;
  const net = await ctl.createNetwork({ name: 'ipstatic', ipamDriver: 'fakeipam', ipam: [{ subnet: '10.252.0.0/24', gateway: '10.252.0.254' }] });
  const poolId = (ipam.of('RequestPool').length && [...ipam.pools.keys()].at(-1))!;
  t.deepEqual(ipam.of('RequestPool'), [{ AddressSpace: 'FakeLocal', Pool: '10.252.0.0/24', SubPool: '', Options: {}, V6: false }]);
  t.deepEqual(ipam.of('RequestAddress'), [{ PoolID: poolId, Address: '10.252.0.254', Options: GATEWAY_OPT }]);
  t.deepEqual(net.inspect().IPAM.Config, [{ Subnet: '10.252.0.0/24', Gateway: '10.252.0.254' }]);
  t.is(net.inspect().IPAM.Options, null);

  const s = await ctl.createSandbox({ name: host.name('s'), net: 'ipstatic', ip: '10.252.0.77' });
  const d = await ctl.createSandbox({ name: host.name('d'), net: 'ipstatic' });
  t.deepEqual(ipam.of('RequestAddress').slice(1), [
    { PoolID: poolId, Address: '10.252.0.77', Options: {} },
    { PoolID: poolId, Address: '', Options: {} },
  ]);
  t.deepEqual(inet(s.netns, 'eth0'), ['10.252.0.77/24']);
  t.is(s.inspect().Networks.ipstatic!.Gateway, '10.252.0.254');
  t.true(pings(d.netns, '10.252.0.77'));
  // an address the plugin says is taken
  const e = await t.throwsAsync(ctl.createSandbox({ name: host.name('dup'), net: 'ipstatic', ip: '10.252.0.77' }));
  t.is((e as CnmError).code, 'ERR_PLUGIN');
  t.regex(e!.message, /in use/);
  t.false(await native.netnsExists(host.name('dup')));

  ipam.calls.length = 0;
  await ctl.removeSandbox(s.name);
  await ctl.removeSandbox(d.name);
  await ctl.removeNetwork('ipstatic');
  t.deepEqual(
    ipam.calls.map((c) => c.method),
    ['ReleaseAddress', 'ReleaseAddress', 'ReleaseAddress', 'ReleasePool'],
  );
  t.deepEqual(ipam.calls[2]!.req, { PoolID: poolId, Address: '10.252.0.254' });
  t.is(ipam.pools.size, 0);
});

const inet6 = (ns: string, dev: string) =>
  ipj<Link[]>(ns, 'addr', 'show', 'dev', dev)[0]!
    .addr_info!.filter((a) => a.family === 'inet6' && !a.local.startsWith('fe80'))
    .map((a) => `${a.local}/${a.prefixlen}`);

test.serial('IPv6 pools and auxiliary addresses come from the plugin too: dual-stack sandboxes ping over both', async (t) => {
  ipam.calls.length = 0;
  const net = await ctl.createNetwork({
    name: 'ip6net',
    ipamDriver: 'fakeipam',
    enableIPv6: true,
    ipam: [{ subnet: '10.250.0.0/24', auxAddresses: { router: '10.250.0.2' } }],
  });
  const [p4, p6] = [...ipam.pools.keys()].slice(-2);
  t.deepEqual(ipam.of('RequestPool'), [
    { AddressSpace: 'FakeLocal', Pool: '10.250.0.0/24', SubPool: '', Options: {}, V6: false },
    { AddressSpace: 'FakeLocal', Pool: '', SubPool: '', Options: {}, V6: true },
  ]);
  t.deepEqual(ipam.of('RequestAddress'), [
    { PoolID: p4, Address: '', Options: GATEWAY_OPT },
    { PoolID: p4, Address: '10.250.0.2', Options: {} },
    { PoolID: p6, Address: '', Options: GATEWAY_OPT },
  ]);
  const ins = net.inspect();
  t.true(ins.EnableIPv6);
  t.deepEqual(ins.IPAM.Config, [
    { Subnet: '10.250.0.0/24', AuxiliaryAddresses: { router: '10.250.0.2' } },
    { Subnet: 'fd00:251::/64', Gateway: 'fd00:251::1' },
  ]);
  t.deepEqual(inet6(host.ns, net.record.bridge!), ['fd00:251::1/64'], "the bridge has the plugin's IPv6 gateway");

  const a = await ctl.createSandbox({ name: host.name('a6'), net: 'ip6net' });
  const b = await ctl.createSandbox({ name: host.name('b6'), net: 'ip6net', ip6: 'fd00:251::beef' });
  const na = a.inspect().Networks.ip6net!;
  t.is(na.IPAddress, '10.250.0.3', 'the auxiliary address is held by the plugin, not handed out');
  t.is(na.GlobalIPv6Address, 'fd00:251::2');
  t.is(na.IPv6Gateway, 'fd00:251::1');
  t.is(b.inspect().Networks.ip6net!.GlobalIPv6Address, 'fd00:251::beef');
  t.deepEqual(inet6(a.netns, 'eth0'), ['fd00:251::2/64']);
  t.true(ping6(a.netns, 'fd00:251::beef'), 'A reaches B over IPv6');
  t.true(ping6(b.netns, 'fd00:251::1'), 'B reaches the bridge on its IPv6 gateway');
  t.true(pings(b.netns, '10.250.0.3'), 'B reaches A over IPv4');

  // the IPv6 request fails: the IPv4 address goes back, no sandbox is left
  ipam.failAddress6 = true;
  ipam.calls.length = 0;
  const e = await t.throwsAsync(ctl.createSandbox({ name: host.name('f6'), net: 'ip6net' }));
  ipam.failAddress6 = false;
  t.is((e as CnmError).code, 'ERR_PLUGIN');
  t.regex(e!.message, /no more IPv6/);
  t.deepEqual(
    ipam.calls.map((c) => c.method),
    ['RequestAddress', 'RequestAddress', 'ReleaseAddress'],
  );
  t.false(await native.netnsExists(host.name('f6')));
  // an --ip6 of the wrong family, and an IPv4 address the plugin holds as auxiliary
  t.is(((await t.throwsAsync(ctl.connect('ip6net', host.name('zz'), { ip6: '10.250.0.9' }))) as CnmError).code, 'ERR_SANDBOX_NOT_FOUND');
  const c6 = await ctl.createSandbox({ name: host.name('c6') });
  t.is(((await t.throwsAsync(ctl.connect('ip6net', c6.name, { ip6: '10.250.0.9' }))) as CnmError).code, 'ERR_INVALID_ARGUMENT');
  const taken = await t.throwsAsync(ctl.connect('ip6net', c6.name, { ip: '10.250.0.2' }));
  t.is((taken as CnmError).code, 'ERR_PLUGIN');
  t.regex(taken!.message, /in use/);
  t.deepEqual(ipam.used(), ['10.250.0.1', '10.250.0.2', '10.250.0.3', '10.250.0.4', 'fd00:251::1', 'fd00:251::2', 'fd00:251::beef']);

  ipam.calls.length = 0;
  await ctl.removeSandbox(a.name);
  t.deepEqual(ipam.of('ReleaseAddress'), [
    { PoolID: p4, Address: '10.250.0.3' },
    { PoolID: p6, Address: 'fd00:251::2' },
  ]);
  await ctl.removeSandbox(b.name);
  await ctl.removeSandbox(c6.name);
  ipam.calls.length = 0;
  await ctl.removeNetwork('ip6net');
  t.deepEqual(ipam.calls, [
    { method: 'ReleaseAddress', req: { PoolID: p4, Address: '10.250.0.1' } },
    { method: 'ReleaseAddress', req: { PoolID: p4, Address: '10.250.0.2' } },
    { method: 'ReleasePool', req: { PoolID: p4 } },
    { method: 'ReleaseAddress', req: { PoolID: p6, Address: 'fd00:251::1' } },
    { method: 'ReleasePool', req: { PoolID: p6 } },
  ]);
  t.is(ipam.pools.size, 0);

  // a user IPv6 subnet and gateway are requested as given; aux addresses need a subnet
  ipam.calls.length = 0;
  const n2 = await ctl.createNetwork({ name: 'ip6user', ipamDriver: 'fakeipam', ipam: [{ subnet: 'fd00:252::/64', gateway: 'fd00:252::fe' }] });
  t.deepEqual(
    ipam.of('RequestPool').map((r) => [(r as RequestPoolRequest).Pool, (r as RequestPoolRequest).V6]),
    [
      ['', false],
      ['fd00:252::/64', true],
    ],
  );
  t.deepEqual((ipam.of('RequestAddress')[1] as RequestAddressRequest).Address, 'fd00:252::fe');
  t.true(n2.inspect().EnableIPv6);
  await ctl.removeNetwork('ip6user');
  t.is(ipam.pools.size, 0);
  const bad = await t.throwsAsync(ctl.createNetwork({ name: 'auxnosub', ipamDriver: 'fakeipam', ipam: [{ auxAddresses: { x: '10.0.0.5' } } as never] }));
  t.is((bad as CnmError).code, 'ERR_INVALID_ARGUMENT');
  t.is(ipam.pools.size, 0);
  // the plugin refuses the second auxiliary address: what was taken goes back
  ipam.calls.length = 0;
  const refused = await t.throwsAsync(
    ctl.createNetwork({ name: 'auxfail', ipamDriver: 'fakeipam', ipam: [{ subnet: '10.249.0.0/24', auxAddresses: { a: '10.249.0.7', b: '10.249.0.1' } }] }),
  );
  t.is((refused as CnmError).code, 'ERR_PLUGIN');
  t.deepEqual(
    ipam.calls.map((c) => [c.method, (c.req as { Address?: string }).Address]),
    [
      ['GetDefaultAddressSpaces', undefined],
      ['RequestPool', undefined],
      ['RequestAddress', ''],
      ['RequestAddress', '10.249.0.7'],
      ['RequestAddress', '10.249.0.1'],
      ['ReleaseAddress', '10.249.0.1'],
      ['ReleaseAddress', '10.249.0.7'],
      ['ReleasePool', undefined],
    ],
  );
  t.is(ipam.pools.size, 0);
  t.false(ctl.listNetworks().some((n) => n.name === 'auxfail'));
});

test.serial('IPAM plugin errors are ERR_PLUGIN and leave nothing behind', async (t) => {
  // unknown plugin, and a plugin that is no IPAM driver
  t.is(((await t.throwsAsync(ctl.createNetwork({ name: 'x', ipamDriver: 'nosuchipam' }))) as CnmError).code, 'ERR_UNKNOWN_DRIVER');
  const e0 = await t.throwsAsync(ctl.createNetwork({ name: 'x', ipamDriver: 'netonly' }));
  t.is((e0 as CnmError).code, 'ERR_UNKNOWN_DRIVER');
  t.regex(e0!.message, /does not implement IpamDriver/);

  // the gateway request fails at network create: the pool goes back
  ipam.failAddress = true;
  ipam.calls.length = 0;
  const e1 = await t.throwsAsync(ctl.createNetwork({ name: 'ipfail', ipamDriver: 'fakeipam' }));
  t.is((e1 as CnmError).code, 'ERR_PLUGIN');
  t.regex(e1!.message, /no more/);
  t.deepEqual(
    ipam.calls.map((c) => c.method),
    ['GetDefaultAddressSpaces', 'RequestPool', 'RequestAddress', 'ReleasePool'],
  );
  t.is(ipam.pools.size, 0);
  t.false(ctl.listNetworks().some((n) => n.name === 'ipfail'));
  ipam.failAddress = false;

  // an overlap found after the pools were given: they go back too
  await ctl.createNetwork({ name: 'ipfail', ipamDriver: 'fakeipam' });
  await ctl.createNetwork({ name: 'plain', ipam: [{ subnet: '10.254.0.0/25' }] });
  ipam.calls.length = 0;
  const e2 = await t.throwsAsync(ctl.createNetwork({ name: 'ipover', ipam: [{ subnet: '10.254.0.0/24' }], ipamDriver: 'fakeipam', driver: 'bridge' }));
  t.is((e2 as CnmError).code, 'ERR_SUBNET_OVERLAP');
  t.deepEqual(
    ipam.calls.map((c) => c.method),
    ['GetDefaultAddressSpaces', 'RequestPool', 'RequestAddress', 'ReleaseAddress', 'ReleasePool'],
  );
  t.is(ipam.pools.size, 1);
  t.false(ctl.listNetworks().some((n) => n.name === 'ipover'));
  await ctl.removeNetwork('plain');

  // RequestAddress fails at sandbox create: no netns, no record, no link
  const linksBefore = hostLinks();
  const keysBefore = storeRecords(ctl).map(([k]) => k);
  const used = ipam.used();
  ipam.failAddress = true;
  const name = host.name('f');
  const e3 = await t.throwsAsync(ctl.createSandbox({ name, net: 'ipfail' }));
  ipam.failAddress = false;
  t.is((e3 as CnmError).code, 'ERR_PLUGIN');
  t.regex(e3!.message, /no more/);
  t.false(await native.netnsExists(name), 'no sandbox netns');
  t.false(ctl.listSandboxes().some((s) => s.name === name));
  t.deepEqual(
    storeRecords(ctl).map(([k]) => k),
    keysBefore,
    'no store record left',
  );
  t.true(await eventually(() => hostLinks().join() === linksBefore.join()), 'no link left');
  t.deepEqual(ipam.used(), used);
  await ctl.removeNetwork('ipfail');
  t.is(ipam.pools.size, 0);
});

test.serial('the CLI: network create --ipam-driver, sandboxes, a failed connect, rm', async (t) => {
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns, '--plugin-dir', pluginDir];
  let r = await cnmAsync([...g, 'network', 'create', '--ipam-driver', 'fakeipam', '--ipam-opt', 'k=v', '--subnet', '10.253.0.0/24', 'clinet']);
  t.is(r.code, 0, r.stderr);
  r = await cnmAsync([...g, 'network', 'inspect', 'clinet']);
  const ins = JSON.parse(r.stdout)[0];
  t.is(ins.IPAM.Driver, 'fakeipam');
  t.deepEqual(ins.IPAM.Options, { k: 'v' });
  t.deepEqual(ins.IPAM.Config, [{ Subnet: '10.253.0.0/24' }]);
  const s1 = host.name('c1');
  const s2 = host.name('c2');
  r = await cnmAsync([...g, 'sandbox', 'create', '--net', 'clinet', s1]);
  t.is(r.code, 0, r.stderr);
  r = await cnmAsync([...g, 'sandbox', 'create', s2]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(ipam.used(), ['10.253.0.1', '10.253.0.2']);
  // the kernel step of a connect fails: the address goes back to the plugin
  ipam.calls.length = 0;
  r = await cnmAsync([...g, 'network', 'connect', 'clinet', s2], { CNM_FAULT: 'connect.kernel' });
  t.not(r.code, 0);
  t.regex(r.stderr, /fault injected/);
  t.deepEqual(ipam.calls, [
    { method: 'RequestAddress', req: { PoolID: [...ipam.pools.keys()][0], Address: '', Options: {} } },
    { method: 'ReleaseAddress', req: { PoolID: [...ipam.pools.keys()][0], Address: '10.253.0.3' } },
  ]);
  t.deepEqual(ipam.used(), ['10.253.0.1', '10.253.0.2']);
  t.false(ipj<Link[]>(s2, 'link', 'show').some((l) => l.ifname === 'eth1'));
  r = await cnmAsync([...g, 'network', 'connect', '--ip', '10.253.0.99', 'clinet', s2]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(inet(s2, 'eth1'), ['10.253.0.99/24']);
  t.true(pings(s1, '10.253.0.99'));
  t.deepEqual(ipam.used(), ['10.253.0.1', '10.253.0.2', '10.253.0.99']);
  t.is((await cnmAsync([...g, 'sandbox', 'rm', s1, s2])).code, 0);
  t.is((await cnmAsync([...g, 'network', 'rm', 'clinet'])).code, 0);
  t.is(ipam.pools.size, 0);
  t.deepEqual(ipam.used(), []);
});

test.serial('the daemon API: IPAM.Driver and IPAM.Options pass through to the plugin and back in inspect', async (t) => {
  const dhost = await isolatedHost('ipamd');
  const d = await startDaemon({
    socket: join(dhost.tmp('ipamd'), 'cnm.sock'),
    controller: { hostNetns: dhost.ns, stateDir: dhost.stateDir, pluginDir },
  });
  const call = (method: string, path: string, body?: unknown) => apiCall(d.socket, method, path, body);
  try {
    ipam.calls.length = 0;
    const r = await call('POST', '/networks/create', { Name: 'dnet', IPAM: { Driver: 'fakeipam', Options: { a: 'b' } } });
    t.is(r.status, 201);
    t.deepEqual((ipam.of('RequestPool')[0] as RequestPoolRequest).Options, { a: 'b' });
    const ins = (await call('GET', '/networks/dnet')).json() as { IPAM: { Driver: string; Options: unknown; Config: unknown } };
    t.is(ins.IPAM.Driver, 'fakeipam');
    t.deepEqual(ins.IPAM.Options, { a: 'b' });
    t.deepEqual(ins.IPAM.Config, [{ Subnet: '10.251.0.0/24', Gateway: '10.251.0.1' }]);
    t.is((await call('POST', '/networks/create', { Name: 'dnet2', IPAM: { Driver: 'nosuchipam' } })).status, 404);
    t.is((await call('DELETE', '/networks/dnet')).status, 204);
    t.is(ipam.pools.size, 0);
  } finally {
    await d.close();
    await dhost.cleanup();
  }
});
