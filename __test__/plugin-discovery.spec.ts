// Plugin discovery as Docker does it, in a temp plugin dir: <name>.sock,
// <name>/<name>.sock, <name>.spec and <name>.json; then the driver registry
// finding, activating and keeping a plugin. Only unix sockets, no network.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { DriverContext } from '../ts/drivers/driver.js';
import { DriverRegistry } from '../ts/drivers/registry.js';
import { RemoteDriver } from '../ts/drivers/remote.js';
import type { CnmError } from '../ts/errors.js';
import { type NetworkDriverPlugin, discoverPlugin, parsePluginUrl, servePlugin } from '../ts/plugin/index.js';

const dir = mkdtempSync(join(tmpdir(), 'cnm-plugin-disc-'));
const servers: Server[] = [];
test.after.always(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listen(path: string): Promise<void> {
  const s = createServer();
  servers.push(s);
  await new Promise<void>((r) => s.listen(path, r));
}

test('a socket <dir>/<name>.sock or <dir>/<name>/<name>.sock', async (t) => {
  await listen(join(dir, 'flat.sock'));
  mkdirSync(join(dir, 'nested'));
  await listen(join(dir, 'nested', 'nested.sock'));
  t.deepEqual(discoverPlugin('flat', [dir]), { name: 'flat', address: { kind: 'unix', path: join(dir, 'flat.sock') }, source: join(dir, 'flat.sock') });
  t.deepEqual(discoverPlugin('nested', [dir])?.address, { kind: 'unix', path: join(dir, 'nested', 'nested.sock') });
  // a regular file named .sock is no socket
  writeFileSync(join(dir, 'fake.sock'), '');
  t.is(discoverPlugin('fake', [dir]), null);
  t.is(discoverPlugin('nosuch', [dir]), null);
});

test('a .spec file holding a URL, a .json file holding {"Addr"}', (t) => {
  writeFileSync(join(dir, 'spec1.spec'), 'unix:///run/elsewhere/spec1.sock\n');
  writeFileSync(join(dir, 'tcp1.spec'), 'tcp://127.0.0.1:9999');
  writeFileSync(join(dir, 'json1.json'), JSON.stringify({ Name: 'json1', Addr: 'unix:///run/x/json1.sock' }));
  mkdirSync(join(dir, 'json2'));
  writeFileSync(join(dir, 'json2', 'json2.json'), JSON.stringify({ Addr: 'unix:///run/x/json2.sock' }));
  t.deepEqual(discoverPlugin('spec1', [dir]), { name: 'spec1', address: { kind: 'unix', path: '/run/elsewhere/spec1.sock' }, source: join(dir, 'spec1.spec') });
  t.deepEqual(discoverPlugin('tcp1', [dir])?.address, { kind: 'tcp', host: '127.0.0.1', port: 9999 });
  t.deepEqual(discoverPlugin('json1', [dir])?.address, { kind: 'unix', path: '/run/x/json1.sock' });
  t.deepEqual(discoverPlugin('json2', [dir])?.address, { kind: 'unix', path: '/run/x/json2.sock' });
});

test('a socket wins over a spec; dirs are searched in order', async (t) => {
  const a = join(dir, 'order-a');
  const b = join(dir, 'order-b');
  mkdirSync(a);
  mkdirSync(b);
  writeFileSync(join(a, 'both.spec'), 'unix:///from/spec.sock');
  await listen(join(b, 'both.sock'));
  t.is(discoverPlugin('both', [a, b])?.source, join(b, 'both.sock'), 'sockets in every dir come before specs');
  writeFileSync(join(a, 'two.spec'), 'unix:///a/two.sock');
  writeFileSync(join(b, 'two.spec'), 'unix:///b/two.sock');
  t.is(discoverPlugin('two', [a, b])?.source, join(a, 'two.spec'));
});

test('bad names find nothing; bad specs are ERR_PLUGIN', (t) => {
  for (const name of ['../etc/passwd', 'a/b', '..', '', '.hidden', 'x'.repeat(200)]) t.is(discoverPlugin(name, [dir]), null, name);
  writeFileSync(join(dir, 'noscheme.spec'), '/run/x.sock');
  writeFileSync(join(dir, 'relative.spec'), 'unix://run/x.sock');
  writeFileSync(join(dir, 'tls.spec'), 'https://example.invalid:443');
  writeFileSync(join(dir, 'badjson.json'), '{');
  writeFileSync(join(dir, 'noaddr.json'), '{"Name":"noaddr"}');
  for (const name of ['noscheme', 'relative', 'tls', 'badjson', 'noaddr']) {
    const e = t.throws(() => discoverPlugin(name, [dir]), undefined, name);
    t.is((e as CnmError).code, 'ERR_PLUGIN', name);
  }
  t.deepEqual(parsePluginUrl('tcp://[::1]:80'), { kind: 'tcp', host: '::1', port: 80 });
  t.throws(() => parsePluginUrl('tcp://host:99999'));
});

const minimal: NetworkDriverPlugin = { createNetwork() {}, deleteNetwork() {}, createEndpoint() {}, join: () => ({}) };
const ctx = (pluginDir: string): DriverContext => ({ hostNetns: null, firewall: {} as DriverContext['firewall'], proxies: {} as DriverContext['proxies'], ipForward: false, pluginDir, reaper: {} as DriverContext['reaper'] });

test('the registry finds a plugin, activates it once and keeps it', async (t) => {
  const pd = mkdtempSync(join(dir, 'reg-'));
  let activations = 0;
  const srv = await servePlugin({ socket: join(pd, 'real.sock'), driver: { ...minimal, getCapabilities: () => (activations++, { Scope: 'local' }) } });
  // a .spec that points at the same socket, under another name
  writeFileSync(join(pd, 'alias.spec'), `unix://${join(pd, 'real.sock')}`);
  try {
    const reg = new DriverRegistry(ctx(pd));
    const [d1, d2] = await Promise.all([reg.resolve('real'), reg.resolve('real')]);
    t.true(d1 instanceof RemoteDriver);
    t.is(d1, d2, 'one driver for concurrent lookups');
    t.is(activations, 1);
    t.is(reg.get('real'), d1, 'kept: get() knows it now');
    t.is(await reg.resolve('bridge'), reg.get('bridge'), 'built-ins first');
    const alias = await reg.resolve('alias');
    t.is(alias.name, 'alias');
    t.true(alias.usesIpam && alias.ownNetns);
    t.deepEqual(reg.names(), ['bridge', 'macvlan', 'host', 'null', 'real', 'alias']);
  } finally {
    await srv.close();
  }
});

test('the registry: unknown names, IPAM-only plugins, late sockets', async (t) => {
  const pd = mkdtempSync(join(dir, 'reg2-'));
  const reg = new DriverRegistry(ctx(pd));
  const e = await t.throwsAsync(reg.resolve('nosuch'));
  t.is((e as CnmError).code, 'ERR_UNKNOWN_DRIVER');
  t.regex(e!.message, new RegExp(`unknown network driver "nosuch".*${pd}`));
  t.is(((await t.throwsAsync(reg.resolve('../x'))) as CnmError).code, 'ERR_UNKNOWN_DRIVER');

  const ipamOnly = await servePlugin({
    socket: join(pd, 'ipamonly.sock'),
    ipam: { requestPool: () => ({ PoolID: 'p', Pool: '10.0.0.0/8' }), releasePool() {}, requestAddress: () => ({ Address: '10.0.0.2/8' }), releaseAddress() {} },
  });
  try {
    const e2 = await t.throwsAsync(reg.resolve('ipamonly'));
    t.is((e2 as CnmError).code, 'ERR_UNKNOWN_DRIVER');
    t.regex(e2!.message, /does not implement NetworkDriver/);
  } finally {
    await ipamOnly.close();
  }

  // the plugin comes up 300 ms after we start looking for it
  let late: Awaited<ReturnType<typeof servePlugin>> | undefined;
  const timer = setTimeout(() => void servePlugin({ socket: join(pd, 'late.sock'), driver: minimal }).then((s) => (late = s)), 300);
  try {
    const d = await reg.resolve('late');
    t.is(d.name, 'late');
  } finally {
    clearTimeout(timer);
    await late?.close();
  }

  // a plugin whose capabilities make no sense is refused, and not kept
  const odd = await servePlugin({ socket: join(pd, 'odd.sock'), driver: { ...minimal, getCapabilities: () => ({ Scope: 'galactic' as 'local' }) } });
  try {
    t.is(((await t.throwsAsync(reg.resolve('odd'))) as CnmError).code, 'ERR_PLUGIN');
    t.throws(() => reg.get('odd'));
  } finally {
    await odd.close();
  }
});
