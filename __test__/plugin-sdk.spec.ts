// The plugin SDK over a real unix socket: every NetworkDriver and IpamDriver
// method round-trips, errors map to ERR_PLUGIN, the client retries while the
// socket is late and gives up after its timeout. No network is touched.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { CnmError } from '../ts/errors.js';
import { type IpamDriverPlugin, type NetworkDriverPlugin, PLUGIN_CONTENT_TYPE, PluginClient, servePlugin } from '../ts/plugin/index.js';

const dir = mkdtempSync(join(tmpdir(), 'cnm-plugin-sdk-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sock = () => join(dir, `p${n++}.sock`);
const unix = (path: string) => ({ kind: 'unix' as const, path });

/** Every call the fake plugin got: method name and request body. */
const calls: Array<[string, unknown]> = [];
const rec =
  <T>(name: string, answer: T) =>
  (req: unknown) => {
    calls.push([name, req]);
    return answer;
  };

const fakeDriver: NetworkDriverPlugin = {
  getCapabilities: () => ({ Scope: 'local', ConnectivityScope: 'global' }),
  createNetwork: rec('CreateNetwork', undefined),
  deleteNetwork: rec('DeleteNetwork', undefined),
  allocateNetwork: rec('AllocateNetwork', { Options: { vni: '42' } }),
  freeNetwork: rec('FreeNetwork', undefined),
  createEndpoint: rec('CreateEndpoint', { Interface: { MacAddress: '02:00:00:00:00:01' } }),
  deleteEndpoint: rec('DeleteEndpoint', undefined),
  endpointOperInfo: rec('EndpointOperInfo', { Value: { hello: 'world' } }),
  join: rec('Join', {
    InterfaceName: { SrcName: 'veth0', DstPrefix: 'eth' },
    Gateway: '10.0.0.1',
    StaticRoutes: [{ Destination: '10.9.0.0/16', RouteType: 0 as const, NextHop: '10.0.0.254' }],
  }),
  leave: rec('Leave', undefined),
  discoverNew: rec('DiscoverNew', undefined),
  discoverDelete: rec('DiscoverDelete', undefined),
  programExternalConnectivity: rec('ProgramExternalConnectivity', undefined),
  revokeExternalConnectivity: rec('RevokeExternalConnectivity', undefined),
};

const fakeIpam: IpamDriverPlugin = {
  getCapabilities: () => ({ RequiresMACAddress: true }),
  requestPool: rec('RequestPool', { PoolID: 'pool1', Pool: '10.5.0.0/16', Data: { 'com.docker.network.gateway': '10.5.0.1/16' } }),
  releasePool: rec('ReleasePool', undefined),
  requestAddress: rec('RequestAddress', { Address: '10.5.0.7/16' }),
  releaseAddress: rec('ReleaseAddress', undefined),
};

const nid = { NetworkID: 'n1' };
const eid = { NetworkID: 'n1', EndpointID: 'e1' };

test.serial('every NetworkDriver and IpamDriver method round-trips with libnetwork field names', async (t) => {
  const path = sock();
  const srv = await servePlugin({ socket: path, driver: fakeDriver, ipam: fakeIpam });
  const c = new PluginClient(unix(path));
  try {
    t.deepEqual(await c.activate(), ['NetworkDriver', 'IpamDriver']);
    t.deepEqual(await c.call('NetworkDriver.GetCapabilities'), { Scope: 'local', ConnectivityScope: 'global' });
    calls.length = 0;
    const ipv4 = [{ AddressSpace: 'LocalDefault', Pool: '10.0.0.0/24', Gateway: '10.0.0.1/24' }];
    const cases: Array<[string, unknown, unknown]> = [
      ['CreateNetwork', { ...nid, Options: { 'com.docker.network.generic': { a: 'b' } }, IPv4Data: ipv4, IPv6Data: [] }, {}],
      ['AllocateNetwork', { ...nid, Options: {}, IPv4Data: ipv4, IPv6Data: [] }, { Options: { vni: '42' } }],
      ['CreateEndpoint', { ...eid, Interface: { Address: '10.0.0.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} }, { Interface: { MacAddress: '02:00:00:00:00:01' } }],
      ['EndpointOperInfo', eid, { Value: { hello: 'world' } }],
      [
        'Join',
        { ...eid, SandboxKey: '/run/netns/x', Options: {} },
        {
          InterfaceName: { SrcName: 'veth0', DstPrefix: 'eth' },
          Gateway: '10.0.0.1',
          StaticRoutes: [{ Destination: '10.9.0.0/16', RouteType: 0, NextHop: '10.0.0.254' }],
        },
      ],
      ['ProgramExternalConnectivity', { ...eid, Options: { 'com.docker.network.portmap': [] } }, {}],
      ['RevokeExternalConnectivity', eid, {}],
      ['Leave', eid, {}],
      ['DeleteEndpoint', eid, {}],
      ['DiscoverNew', { DiscoveryType: 1, DiscoveryData: { Address: '10.0.0.9' } }, {}],
      ['DiscoverDelete', { DiscoveryType: 1, DiscoveryData: { Address: '10.0.0.9' } }, {}],
      ['FreeNetwork', nid, {}],
      ['DeleteNetwork', nid, {}],
    ];
    for (const [method, body, answer] of cases) {
      t.deepEqual(await c.call(`NetworkDriver.${method}`, body), answer, method);
    }
    t.deepEqual(
      calls,
      cases.map(([m, b]) => [m, b]),
      'the plugin got each request as sent',
    );

    calls.length = 0;
    t.deepEqual(await c.call('IpamDriver.GetCapabilities'), { RequiresMACAddress: true });
    t.deepEqual(await c.call('IpamDriver.GetDefaultAddressSpaces'), { LocalDefaultAddressSpace: 'LocalDefault', GlobalDefaultAddressSpace: 'GlobalDefault' });
    const pool = { AddressSpace: 'LocalDefault', Pool: '', SubPool: '', Options: {}, V6: false };
    t.deepEqual(await c.call('IpamDriver.RequestPool', pool), { PoolID: 'pool1', Pool: '10.5.0.0/16', Data: { 'com.docker.network.gateway': '10.5.0.1/16' } });
    t.deepEqual(await c.call('IpamDriver.RequestAddress', { PoolID: 'pool1', Address: '', Options: {} }), { Address: '10.5.0.7/16' });
    t.deepEqual(await c.call('IpamDriver.ReleaseAddress', { PoolID: 'pool1', Address: '10.5.0.7' }), {});
    t.deepEqual(await c.call('IpamDriver.ReleasePool', { PoolID: 'pool1' }), {});
    t.deepEqual(
      calls.map(([m]) => m),
      ['RequestPool', 'RequestAddress', 'ReleaseAddress', 'ReleasePool'],
    );
  } finally {
    await srv.close();
  }
});

test.serial('methods a plugin leaves out answer success; unknown ones 404', async (t) => {
  const path = sock();
  const srv = await servePlugin({
    socket: path,
    driver: { createNetwork() {}, deleteNetwork() {}, createEndpoint() {}, join: () => ({ InterfaceName: { SrcName: 'x', DstPrefix: 'eth' } }) },
  });
  const c = new PluginClient(unix(path));
  try {
    t.deepEqual(await c.activate(), ['NetworkDriver']);
    t.deepEqual(await c.call('NetworkDriver.GetCapabilities'), { Scope: 'local', ConnectivityScope: 'local' });
    t.deepEqual(await c.call('NetworkDriver.Leave', eid), {});
    t.deepEqual(await c.call('NetworkDriver.EndpointOperInfo', eid), { Value: {} });
    t.deepEqual(await c.call('NetworkDriver.ProgramExternalConnectivity', { ...eid, Options: {} }), {});
    // no IPAM here: its methods are not served
    const e = await t.throwsAsync(c.call('IpamDriver.RequestPool', {}));
    t.is((e as CnmError).code, 'ERR_PLUGIN');
    t.regex(e!.message, /not implemented/);
    t.deepEqual(await c.call('IpamDriver.RequestPool', {}, { optional: true }), {}, 'optional methods take 404 as success');
  } finally {
    await srv.close();
  }
});

test.serial('{"Err"} and {"Error"} answers become ERR_PLUGIN with the message', async (t) => {
  const path = sock();
  const srv = await servePlugin({
    socket: path,
    driver: {
      createNetwork() {
        throw new Error('no more bridges');
      },
      deleteNetwork() {},
      createEndpoint() {},
      join: async () => {
        throw new Error('join refused');
      },
    },
    ipam: {
      requestPool() {
        throw new Error('pool exhausted');
      },
      releasePool() {},
      requestAddress: () => ({ Address: '10.0.0.2/24' }),
      releaseAddress() {},
    },
  });
  try {
    // the wire: network errors are {"Err"}, IPAM errors {"Error"}
    const raw = (method: string) =>
      new Promise<{ status: number; body: unknown; type: string }>((resolve, reject) => {
        const req = request({ socketPath: path, method: 'POST', path: `/${method}`, headers: { 'Content-Type': PLUGIN_CONTENT_TYPE } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text), type: String(res.headers['content-type']) }));
        });
        req.on('error', reject);
        req.end('{}');
      });
    const a = await raw('NetworkDriver.CreateNetwork');
    t.deepEqual(a.body, { Err: 'no more bridges' });
    t.is(a.type, PLUGIN_CONTENT_TYPE);
    t.deepEqual((await raw('IpamDriver.RequestPool')).body, { Error: 'pool exhausted' });

    const c = new PluginClient(unix(path), { name: 'fake' });
    for (const [method, msg] of [
      ['NetworkDriver.CreateNetwork', 'no more bridges'],
      ['NetworkDriver.Join', 'join refused'],
      ['IpamDriver.RequestPool', 'pool exhausted'],
    ] as const) {
      const e = await t.throwsAsync(c.call(method, {}));
      t.true(e instanceof CnmError);
      t.is((e as CnmError).code, 'ERR_PLUGIN');
      t.is((e as CnmError).status, 500);
      t.is(e!.message, `plugin fake: ${method}: ${msg}`);
    }
  } finally {
    await srv.close();
  }
});

test.serial('a 200 answer carrying Err or Error is an error too (what libnetwork checks)', async (t) => {
  const path = sock();
  // a hand-written plugin that answers 200 with an error field
  const { createServer } = await import('node:http');
  const srv = createServer((req, res) => {
    req.resume();
    res.end(req.url === '/NetworkDriver.CreateNetwork' ? '{"Err":"bad subnet"}' : '{"Error":"no address"}');
  });
  await new Promise<void>((r) => srv.listen(path, r));
  try {
    const c = new PluginClient(unix(path));
    await t.throwsAsync(c.call('NetworkDriver.CreateNetwork', {}), { message: /bad subnet$/ });
    await t.throwsAsync(c.call('IpamDriver.RequestAddress', {}), { message: /no address$/ });
  } finally {
    srv.close();
  }
});

test.serial('the client retries while the socket appears late, and gives up after retryMs', async (t) => {
  const path = sock();
  const c = new PluginClient(unix(path), { retryMs: 2000 });
  let srv: Awaited<ReturnType<typeof servePlugin>> | undefined;
  const late = new Promise<void>((resolve) =>
    setTimeout(() => {
      void servePlugin({ socket: path, driver: fakeDriver }).then((s) => {
        srv = s;
        resolve();
      });
    }, 300),
  );
  const t0 = Date.now();
  try {
    t.deepEqual(await c.activate(), ['NetworkDriver']);
    t.true(Date.now() - t0 >= 250, 'it waited for the socket');
  } finally {
    await late;
    await srv?.close();
  }
  // a socket nobody listens on (refused, or gone): retried, then ERR_PLUGIN
  const dead = sock();
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise<void>((r) => s.listen(dead, r));
  await new Promise<void>((r) => s.close(() => r()));
  const quick = new PluginClient(unix(dead), { retryMs: 200 });
  const t1 = Date.now();
  const e = await t.throwsAsync(quick.activate());
  t.is((e as CnmError).code, 'ERR_PLUGIN');
  t.true(Date.now() - t1 >= 150, 'it retried for about retryMs');
});

test.serial('a call that gets no answer times out with ERR_PLUGIN', async (t) => {
  const path = sock();
  const srv = await servePlugin({
    socket: path,
    driver: { createNetwork: () => new Promise<void>(() => undefined), deleteNetwork() {}, createEndpoint() {}, join: () => ({}) },
  });
  try {
    const c = new PluginClient(unix(path), { timeoutMs: 200 });
    const e = await t.throwsAsync(c.call('NetworkDriver.CreateNetwork', {}));
    t.is((e as CnmError).code, 'ERR_PLUGIN');
    t.regex(e!.message, /no answer within 200 ms/);
  } finally {
    await srv.close();
  }
});

test.serial('the socket: a stale one is replaced, mode 0660, removed on close; a non-socket is refused', async (t) => {
  const path = sock();
  const first = await servePlugin({ socket: path, driver: fakeDriver });
  // simulate a crash: the file stays behind, nobody listens
  first.server.close();
  const second = await servePlugin({ socket: path, driver: fakeDriver });
  t.true(statSync(path).isSocket());
  t.is(statSync(path).mode & 0o777, 0o660);
  t.deepEqual(await new PluginClient(unix(path)).activate(), ['NetworkDriver']);
  await second.close();
  t.throws(() => statSync(path), { code: 'ENOENT' });
  const file = join(dir, 'regular.sock');
  writeFileSync(file, 'not a socket');
  await t.throwsAsync(servePlugin({ socket: file, driver: fakeDriver }), { message: /not a socket/ });
  await t.throwsAsync(servePlugin({ socket: sock() }), { message: /needs a driver/ });
});
