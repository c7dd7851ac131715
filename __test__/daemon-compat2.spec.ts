// Docker compatibility, second pass: what a real Docker client's own network tests
// found missing in `cnm daemon` (requested MACs, link-local addresses, endpoint
// driver options and links kept and shown, any non-empty network name, swarm
// leave outside swarm mode, sandboxes served as containers, real /info values),
// checked with raw API calls, the stock docker CLI and the kernel.
import { join } from 'node:path';
import test from 'ava';
import { type Daemon, startDaemon } from '../ts/daemon/server.js';
import { native } from '../ts/native.js';
import { setLogLevel, setLogSink } from '../ts/log.js';
import { apiCall } from './helpers/daemon-http.js';
import { dockerAt, dockerBin } from './helpers/docker-cli.js';
import { type IsolatedHost, inNs, isolatedHost, pings } from './helpers/host.js';

let host: IsolatedHost;
let d: Daemon;

test.before(async () => {
  host = await isolatedHost('dcp2');
  d = await startDaemon({ socket: join(host.tmp('dcp2'), 'cnm.sock'), controller: { hostNetns: host.ns, stateDir: host.stateDir } });
});
test.after.always(async () => {
  await d?.close();
  await host?.cleanup();
});

const call = (method: string, path: string, body?: unknown) => apiCall(d.socket, method, path, body);
const docker = (...args: string[]) => dockerAt(d.socket, ...args);
const withDocker = dockerBin ? test.serial : test.serial.skip;
if (!dockerBin) console.log('docker CLI checks skipped: no docker CLI (apt-get install docker.io; .ci/run does)');

type Endpoint = { MacAddress: string; IPAMConfig: { LinkLocalIPs?: string[] } | null; DriverOpts: Record<string, string> | null; Links: string[] | null; DNSNames: string[] | null };

test.serial('a connect uses the MAC, link-local addresses, driver options and links it asks for, and inspect shows them', async (t) => {
  t.is((await call('POST', '/v1.47/networks/create', { Name: 'c2', IPAM: { Config: [{ Subnet: '10.71.0.0/24' }] } })).status, 201);
  const ctl = d.controller;
  await ctl.createSandbox({ name: host.name('a') });
  await ctl.createSandbox({ name: host.name('b') });
  const r = await call('POST', '/v1.47/networks/c2/connect', {
    Container: host.name('a'),
    EndpointConfig: { MacAddress: '02:aa:bb:cc:dd:01', IPAMConfig: { LinkLocalIPs: ['169.254.10.1', 'fe80::10'] }, DriverOpts: { 'com.example.x': '1' } },
  });
  t.is(r.status, 200, r.body);
  await call('POST', '/v1.47/networks/c2/connect', { Container: host.name('b'), EndpointConfig: { Links: [`${host.name('a')}:web`] } });
  const link = (await native.listLinks(host.name('a'))).find((l) => l.name !== 'lo' && l.mac === '02:aa:bb:cc:dd:01');
  t.truthy(link, 'the interface has the MAC asked for');
  t.true(link!.addresses.includes('169.254.10.1/16'), link!.addresses.join());
  t.true(link!.addresses.includes('fe80::10/64'), link!.addresses.join());
  t.true(pings(host.name('b'), '10.71.0.2'), 'traffic flows to it');
  const c = (await call('GET', `/v1.47/containers/${host.name('a')}/json`)).json() as { Name: string; NetworkSettings: { Networks: Record<string, Endpoint> } };
  t.is(c.Name, `/${host.name('a')}`);
  const ep = c.NetworkSettings.Networks.c2!;
  t.is(ep.MacAddress, '02:aa:bb:cc:dd:01');
  t.deepEqual(ep.IPAMConfig, { LinkLocalIPs: ['169.254.10.1', 'fe80::10'] });
  t.deepEqual(ep.DriverOpts, { 'com.example.x': '1' });
  t.deepEqual(ep.DNSNames, [host.name('a'), ctl.getSandbox(host.name('a')).id.slice(0, 12)]);
  const b = (await call('GET', `/v1.47/containers/${host.name('b')}/json`)).json() as { NetworkSettings: { Networks: Record<string, Endpoint> } };
  t.deepEqual(b.NetworkSettings.Networks.c2!.Links, [`${host.name('a')}:web`]);
  // a bad MAC changes nothing
  await ctl.createSandbox({ name: host.name('c') });
  const bad = await call('POST', '/v1.47/networks/c2/connect', { Container: host.name('c'), EndpointConfig: { MacAddress: '01:00:5e:00:00:01' } });
  t.is(bad.status, 400);
  t.regex(bad.message, /multicast/);
  t.deepEqual(Object.keys(ctl.getSandbox(host.name('c')).inspect().Networks), ['bridge']);
  for (const s of ['a', 'b', 'c']) await ctl.removeSandbox(host.name(s));
  t.is((await call('DELETE', '/v1.47/networks/c2')).status, 204);
});

test.serial('sandboxes are containers: list with filters and inspect', async (t) => {
  const ctl = d.controller;
  await call('POST', '/v1.47/networks/create', { Name: 'cl', IPAM: { Config: [{ Subnet: '10.72.0.0/24' }] } });
  await ctl.createSandbox({ name: host.name('l1'), net: 'cl', ports: [{ containerPort: 80, hostPort: 18080 }] });
  await ctl.createSandbox({ name: host.name('l2') });
  const all = (await call('GET', '/v1.47/containers/json')).json() as Array<{ Names: string[]; State: string; HostConfig: { NetworkMode: string }; Ports: Array<{ PrivatePort: number; PublicPort: number }> }>;
  t.deepEqual(all.map((c) => c.Names[0]).sort(), [`/${host.name('l1')}`, `/${host.name('l2')}`]);
  const l1 = all.find((c) => c.Names[0] === `/${host.name('l1')}`)!;
  t.is(l1.State, 'running');
  t.is(l1.HostConfig.NetworkMode, 'cl');
  t.true(l1.Ports.some((p) => p.PrivatePort === 80 && p.PublicPort === 18080));
  const onCl = (await call('GET', `/v1.47/containers/json?filters=${encodeURIComponent(JSON.stringify({ network: ['cl'] }))}`)).json() as Array<{ Names: string[] }>;
  t.deepEqual(
    onCl.map((c) => c.Names[0]),
    [`/${host.name('l1')}`],
  );
  const missing = await call('GET', '/v1.47/containers/nosuch/json');
  t.deepEqual([missing.status, missing.message], [404, 'No such container: nosuch']);
  for (const s of ['l1', 'l2']) await ctl.removeSandbox(host.name(s));
  await call('DELETE', '/v1.47/networks/cl');
});

test.serial('any non-empty network name, swarm leave outside swarm mode, real /info values', async (t) => {
  let r = await call('POST', '/v1.47/networks/create', { Name: 'with space' });
  t.is(r.status, 201, r.body);
  t.is(((await call('GET', '/v1.47/networks/with%20space')).json() as { Name: string }).Name, 'with space');
  t.is((await call('DELETE', '/v1.47/networks/with%20space')).status, 204);
  r = await call('POST', '/v1.47/networks/create', { Name: '' });
  t.is(r.status, 400);
  r = await call('POST', '/v1.47/swarm/leave?force=1');
  t.deepEqual([r.status, r.message], [503, 'This node is not part of a swarm']);
  const info = (await call('GET', '/v1.47/info')).json() as { IPv4Forwarding: boolean; Plugins: { Network: string[] } };
  t.is(info.IPv4Forwarding, inNs(host.ns, 'sysctl', '-n', 'net.ipv4.ip_forward').trim() === '1');
  t.deepEqual([...info.Plugins.Network].sort(), ['bridge', 'host', 'macvlan', 'null']);
  // the forwarding state as it is, not a fixed value
  inNs(host.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=0');
  t.false(((await call('GET', '/v1.47/info')).json() as { IPv4Forwarding: boolean }).IPv4Forwarding);
  inNs(host.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
});

withDocker('the docker CLI: inspect of a sandbox, connect --link-local-ip and --driver-opt, swarm leave', async (t) => {
  const ctl = d.controller;
  t.is((await docker('network', 'create', '--subnet', '10.73.0.0/24', 'dk')).code, 0);
  await ctl.createSandbox({ name: host.name('k1') });
  const c = await docker('network', 'connect', '--link-local-ip', '169.254.20.2', '--driver-opt', 'k=v', 'dk', host.name('k1'));
  t.is(c.code, 0, c.err);
  const i = await docker('inspect', '--format', '{{json .NetworkSettings.Networks.dk.IPAMConfig.LinkLocalIPs}} {{json .NetworkSettings.Networks.dk.DriverOpts}}', host.name('k1'));
  t.is(i.code, 0, i.err);
  t.is(i.out, '["169.254.20.2"] {"k":"v"}');
  const ps = await docker('network', 'inspect', '--format', '{{range .Containers}}{{.Name}}{{end}}', 'dk');
  t.is(ps.out, host.name('k1'));
  const leave = await docker('swarm', 'leave', '--force');
  t.not(leave.code, 0);
  t.regex(leave.err, /not part of a swarm/);
  await ctl.removeSandbox(host.name('k1'));
  await docker('network', 'rm', 'dk');
});

test.serial('the daemon logs every request (method, path, status, duration, id) and every error with its cause', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const prev = setLogSink((l) => lines.push(JSON.parse(l) as Record<string, unknown>));
  setLogLevel('info');
  try {
    await call('GET', '/v1.47/networks');
    await call('GET', '/v1.47/networks/nosuchnet');
    // the finish event comes after the reply
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    setLogLevel(undefined);
    setLogSink(prev);
  }
  const req = lines.filter((l) => l.msg === 'request');
  const ok = req.find((l) => l.path === '/v1.47/networks');
  t.truthy(ok, JSON.stringify(lines));
  t.like(ok, { method: 'GET', status: 200 });
  t.is(typeof ok!.ms, 'number');
  t.regex(String(ok!.id), /^r[0-9a-z]+$/);
  const refused = lines.find((l) => l.msg === 'request refused');
  t.like(refused, { path: '/v1.47/networks/nosuchnet', status: 404 });
  t.like(refused!.err as object, { code: 'ERR_NETWORK_NOT_FOUND' });
  t.is(refused!.id, req.find((l) => l.path === '/v1.47/networks/nosuchnet')!.id, 'the error line carries the request id');
});
