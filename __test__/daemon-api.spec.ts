// The Docker Engine network API of `cnm daemon`, over a real unix socket: every
// endpoint, its JSON shapes and its error statuses, with real effect on the kernel.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { type Daemon, startDaemon } from '../ts/daemon/server.js';
import type { CnmError } from '../ts/errors.js';
import { apiCall } from './helpers/daemon-http.js';
import { type IsolatedHost, ipj, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
let d: Daemon;

test.before(async () => {
  host = await isolatedHost('dapi');
  d = await startDaemon({ socket: join(host.tmp('dapi'), 'cnm.sock'), controller: { hostNetns: host.ns, stateDir: host.stateDir } });
});
test.after.always(async () => {
  await d?.close();
  await host?.cleanup();
});

const call = (method: string, path: string, body?: unknown) => apiCall(d.socket, method, path, body);

test.serial('_ping (HEAD and GET) and /version negotiate the API version', async (t) => {
  const head = await call('HEAD', '/_ping');
  t.is(head.status, 200);
  t.is(head.headers['api-version'], '1.47');
  t.is(head.headers.ostype, 'linux');
  const get = await call('GET', '/v1.43/_ping');
  t.is(get.body, 'OK');
  const v = (await call('GET', '/version')).json() as Record<string, string>;
  t.is(v.ApiVersion, '1.47');
  t.is(v.Os, 'linux');
  t.false(Number.isNaN(Date.parse(v.BuildTime!)));
  t.is((await call('GET', '/v1.12/version')).status, 400, 'a too old client is refused');
  // versions compare part by part: 1.9 is older than 1.24, 1.100 newer than 1.47
  const old = await call('GET', '/v1.9/version');
  t.is(old.status, 400);
  t.regex(old.body, /client version 1\.9 is too old\. Minimum supported API version is 1\.24/);
  const tooNew = await call('GET', '/v1.100/networks');
  t.is(tooNew.status, 400);
  t.regex(tooNew.body, /client version 1\.100 is too new\. Maximum supported API version is 1\.47/);
  t.is((await call('GET', '/v1.47/version')).status, 200);
});

test.serial('create, list with filters, inspect by name and id prefix, delete; shapes as the Engine API documents them', async (t) => {
  const r = await call('POST', '/v1.47/networks/create', {
    Name: 'apinet',
    Driver: 'bridge',
    CheckDuplicate: true,
    Internal: false,
    IPAM: { Driver: 'default', Config: [{ Subnet: '10.230.0.0/24', IPRange: '10.230.0.128/25', Gateway: '10.230.0.254', AuxiliaryAddresses: { router: '10.230.0.5' } }] },
    Options: { 'com.docker.network.driver.mtu': '1450' },
    Labels: { team: 'net' },
  });
  t.is(r.status, 201, r.body);
  const { Id } = r.json() as { Id: string };
  t.regex(Id, /^[0-9a-f]{64}$/);
  const ins = (await call('GET', `/networks/${Id.slice(0, 8)}`)).json() as Record<string, unknown>;
  t.is(ins.Name, 'apinet');
  t.is(ins.Id, Id);
  t.is(ins.Scope, 'local');
  t.is(ins.Driver, 'bridge');
  t.false(Number.isNaN(Date.parse(ins.Created as string)));
  t.deepEqual(ins.IPAM, {
    Driver: 'default',
    Options: null,
    Config: [{ Subnet: '10.230.0.0/24', IPRange: '10.230.0.128/25', Gateway: '10.230.0.254', AuxiliaryAddresses: { router: '10.230.0.5' } }],
  });
  t.deepEqual(ins.Labels, { team: 'net' });
  t.is((ins.Options as Record<string, string>)['com.docker.network.driver.mtu'], '1450');
  t.deepEqual(ins.Containers, {});
  t.is(ipj<Array<{ mtu: number }>>(host.ns, 'link', 'show', 'dev', `br-${Id.slice(0, 12)}`)[0]!.mtu, 1450, 'the bridge is real');
  const names = async (filters: unknown) =>
    ((await call('GET', `/networks?filters=${encodeURIComponent(JSON.stringify(filters))}`)).json() as Array<{ Name: string }>).map((n) => n.Name).sort();
  t.deepEqual(await names({}), ['apinet', 'bridge', 'host', 'none']);
  t.deepEqual(await names({ name: { apin: true } }), ['apinet']);
  t.deepEqual(await names({ name: ['apinet'] }), ['apinet'], 'old filter format');
  t.deepEqual(await names({ driver: { bridge: true } }), ['apinet', 'bridge']);
  t.deepEqual(await names({ type: { custom: true } }), ['apinet']);
  t.deepEqual(await names({ type: { builtin: true } }), ['bridge', 'host', 'none']);
  t.deepEqual(await names({ label: { 'team=net': true } }), ['apinet']);
  t.deepEqual(await names({ label: { team: true } }), ['apinet']);
  t.deepEqual(await names({ id: { [Id.slice(0, 6)]: true } }), ['apinet']);
  t.deepEqual(await names({ scope: { local: true }, name: { bri: true } }), ['bridge']);
  t.is((await call('GET', `/networks?filters=${encodeURIComponent('{"nosuch":{"x":true}}')}`)).status, 400);
  const conflict = await call('POST', '/networks/create', { Name: 'apinet' });
  t.is(conflict.status, 409);
  t.regex((conflict.json() as { message: string }).message, /already exists/);
  t.is((await call('DELETE', `/networks/${Id}`)).status, 204);
  t.is((await call('GET', `/networks/${Id}`)).status, 404);
  t.regex((await call('GET', '/networks/nosuch')).body, /^\{"message":"network nosuch not found"\}$/);
});

test.serial('connect and disconnect sandboxes by name; errors carry Docker statuses', async (t) => {
  const { Id } = (await call('POST', '/networks/create', { Name: 'cnet', IPAM: { Config: [{ Subnet: '10.231.0.0/24' }] } })).json() as { Id: string };
  const sb = await d.controller.createSandbox({ name: host.name('c1') });
  let r = await call('POST', `/networks/${Id}/connect`, { Container: sb.name, EndpointConfig: { IPAMConfig: { IPv4Address: '10.231.0.9' }, Aliases: ['web'] } });
  t.is(r.status, 200, r.body);
  const ins = (await call('GET', '/networks/cnet')).json() as { Containers: Record<string, Record<string, string>> };
  t.is(ins.Containers[sb.id]!.Name, sb.name);
  t.is(ins.Containers[sb.id]!.IPv4Address, '10.231.0.9/24');
  t.regex(ins.Containers[sb.id]!.EndpointID!, /^[0-9a-f]{64}$/);
  t.regex(ins.Containers[sb.id]!.MacAddress!, /^02:42:/);
  t.deepEqual(d.controller.getSandbox(sb.name).inspect().Networks.cnet!.Aliases, ['web']);
  t.is((await call('POST', `/networks/${Id}/connect`, { Container: sb.name })).status, 403, 'already connected');
  t.is((await call('POST', '/networks/cnet/connect', { Container: 'nosuch' })).status, 404);
  t.is((await call('POST', '/networks/cnet/connect', {})).status, 400);
  t.is((await call('POST', '/networks/cnet/connect', { Container: 5 })).status, 400);
  r = await call('DELETE', '/networks/cnet');
  t.is(r.status, 403);
  t.regex((r.json() as { message: string }).message, /active endpoints/);
  t.is((await call('DELETE', '/networks/bridge')).status, 403, 'predefined');
  t.is((await call('POST', '/networks/cnet/disconnect', { Container: sb.id })).status, 200);
  t.is((await call('POST', '/networks/cnet/disconnect', { Container: sb.id })).status, 404, 'not connected');
  t.is((await call('POST', '/networks/create', { Name: 'bad', IPAM: { Config: [{ Subnet: '10.1.0.1/24' }] } })).status, 400);
  t.is((await call('POST', '/networks/create', { Name: 'bad', Driver: 'nosuch' })).status, 404);
  t.is((await call('POST', '/networks/create', { Name: 'bad', IPAM: { Config: [{ Subnet: '10.231.0.0/25' }] } })).status, 403, 'overlap');
  t.is((await call('POST', '/networks/create', '{not json' as unknown)).status, 400);
  t.is((await call('POST', '/networks/create', { Name: 'bad', EnableIPv6: 'yes' })).status, 400);
  await d.controller.removeSandbox(sb.name);
  t.is((await call('DELETE', '/networks/cnet')).status, 204);
});

test.serial('EnableIPv4: false makes an IPv6-only network; gateway modes come as driver options; bad ones are 400', async (t) => {
  const r = await call('POST', '/networks/create', {
    Name: 'six',
    EnableIPv4: false,
    EnableIPv6: true,
    IPAM: { Config: [{ Subnet: 'fd00:232::/64' }] },
    Options: { 'com.docker.network.bridge.gateway_mode_ipv6': 'routed' },
  });
  t.is(r.status, 201, r.body);
  const ins = (await call('GET', '/networks/six')).json() as { EnableIPv4: boolean; EnableIPv6: boolean; IPAM: { Config: Array<{ Subnet: string }> }; Options: Record<string, string> };
  t.false(ins.EnableIPv4);
  t.true(ins.EnableIPv6);
  t.deepEqual(
    ins.IPAM.Config.map((c) => c.Subnet),
    ['fd00:232::/64'],
  );
  t.is(ins.Options['com.docker.network.bridge.gateway_mode_ipv6'], 'routed');
  const sb = await d.controller.createSandbox({ name: host.name('six1'), net: 'six' });
  const ep = sb.inspect().Networks.six!;
  t.is(ep.IPAddress, '', 'no IPv4 address');
  t.regex(ep.GlobalIPv6Address, /^fd00:232::/);
  await d.controller.removeSandbox(sb.name);
  t.is((await call('DELETE', '/networks/six')).status, 204);
  const before = (await call('GET', '/networks')).json() as unknown[];
  const bad = [
    { Name: 'bad', EnableIPv4: false },
    { Name: 'bad', EnableIPv4: 'no' },
    { Name: 'bad', Options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'isolated' } },
    { Name: 'bad', Options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'nope' } },
  ];
  for (const body of bad) t.is((await call('POST', '/networks/create', body)).status, 400, JSON.stringify(body));
  t.is(((await call('GET', '/networks')).json() as unknown[]).length, before.length, 'nothing made');
});

test.serial('prune removes unused custom networks (with filters); events stream create/connect/disconnect/destroy', async (t) => {
  const since = Math.floor(Date.now() / 1000) - 1;
  await call('POST', '/networks/create', { Name: 'p1', Labels: { keep: 'no' } });
  await call('POST', '/networks/create', { Name: 'p2', Labels: { keep: 'yes' } });
  await call('POST', '/networks/create', { Name: 'p3' });
  const sb = await d.controller.createSandbox({ name: host.name('p'), net: 'p3' });
  let r = await call('POST', `/networks/prune?filters=${encodeURIComponent(JSON.stringify({ 'label!': ['keep=yes'] }))}`);
  t.deepEqual((r.json() as { NetworksDeleted: string[] }).NetworksDeleted, ['p1']);
  r = await call('POST', '/v1.47/networks/prune');
  t.deepEqual((r.json() as { NetworksDeleted: string[] }).NetworksDeleted, ['p2'], 'p3 is in use, builtins stay');
  await d.controller.removeSandbox(sb.name);
  const until = Math.floor(Date.now() / 1000) + 1;
  const ev = await call('GET', `/events?since=${since}&until=${until}&filters=${encodeURIComponent('{"type":["network"]}')}`);
  const lines = ev.body.trim().split('\n').map((l) => JSON.parse(l) as { Type: string; Action: string; Actor: { Attributes: { name: string } } });
  const seen = lines.map((e) => `${e.Action}:${e.Actor.Attributes.name}`);
  for (const want of ['create:p1', 'create:p2', 'create:p3', 'destroy:p1', 'destroy:p2']) t.true(seen.includes(want), `${want} in ${seen.join(' ')}`);
  t.true(lines.every((e) => e.Type === 'network'));
  await call('DELETE', '/networks/p3');
});

test.serial('the socket: a live daemon is never displaced, a stale file is replaced, anything else refused', async (t) => {
  const opts = { controller: { hostNetns: host.ns, stateDir: host.stateDir } };
  const e = await t.throwsAsync(startDaemon({ socket: d.socket, ...opts }));
  t.is((e as CnmError).code, 'ERR_SOCKET_IN_USE');
  t.regex(e!.message, /another daemon is serving/);
  t.is((await call('GET', '/_ping')).body, 'OK', 'the first daemon still answers');

  // a socket file left by a process killed while listening
  const dir = mkdtempSync(join(tmpdir(), 'cnm-dstale-'));
  const stale = join(dir, 'stale.sock');
  const child = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.is(child.signal, 'SIGKILL');
  t.true(lstatSync(stale).isSocket(), 'the stale socket file is there');
  const d2 = await startDaemon({ socket: stale, ...opts });
  await d2.close();
  t.false(existsSync(stale), 'removed on close');

  writeFileSync(stale, 'not a socket');
  const e2 = await t.throwsAsync(startDaemon({ socket: stale, ...opts }));
  t.is((e2 as CnmError).code, 'ERR_INVALID_ARGUMENT');
  t.is(readFileSync(stale, 'utf8'), 'not a socket', 'left untouched');
  rmSync(dir, { recursive: true, force: true });
});
