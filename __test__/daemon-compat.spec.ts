// Where `cnm daemon` must answer as a real Docker engine does (messages, statuses and
// CLI output compared with dockerd): the stock docker CLI and raw API calls.
import { join } from 'node:path';
import test from 'ava';
import { type Daemon, startDaemon } from '../ts/daemon/server.js';
import { parseTimestamp } from '../ts/daemon/filters.js';
import { apiCall } from './helpers/daemon-http.js';
import { dockerAt, dockerBin } from './helpers/docker-cli.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
let d: Daemon;

test.before(async () => {
  host = await isolatedHost('dcmp');
  d = await startDaemon({ socket: join(host.tmp('dcmp'), 'cnm.sock'), controller: { hostNetns: host.ns, stateDir: host.stateDir } });
});
test.after.always(async () => {
  await d?.close();
  await host?.cleanup();
});

const docker = (...args: string[]) => dockerAt(d.socket, ...args);

const call = (method: string, path: string, body?: unknown) => apiCall(d.socket, method, path, body);

const withDocker = dockerBin ? test.serial : test.serial.skip;

test.serial('create refuses what Docker refuses, with its statuses and messages', async (t) => {
  let r = await call('POST', '/v1.47/networks/create', { Name: 'bridge' });
  t.deepEqual([r.status, r.message], [403, 'operation is not permitted on predefined bridge network ']);
  r = await call('POST', '/v1.47/networks/create', { Name: 'default' });
  t.is(r.status, 403);
  r = await call('POST', '/v1.47/networks/create', { Name: 'h2', Driver: 'host' });
  t.deepEqual([r.status, r.message], [403, 'only one instance of "host" network is allowed']);
  r = await call('POST', '/v1.47/networks/create', { Name: 'n2', Driver: 'null' });
  t.deepEqual([r.status, r.message], [403, 'only one instance of "null" network is allowed']);
  r = await call('POST', '/v1.47/networks/create', { Name: 'pl', Driver: 'nosuchdriver' });
  t.deepEqual([r.status, r.message], [404, 'plugin "nosuchdriver" not found']);
  r = await call('POST', '/v1.47/networks/create', {
    Name: 'bad',
    IPAM: { Config: [{ Subnet: 'foo' }, { Subnet: '10.9.0.1/24', Gateway: '10.8.0.1', IPRange: '10.9.1.0/25', AuxiliaryAddresses: { a: 'zz', b: 'fd00::1' } }] },
  });
  t.is(r.status, 400);
  t.is(
    r.message,
    [
      'invalid network config:',
      'invalid subnet foo: invalid CIDR block notation',
      'invalid subnet 10.9.0.1/24: it should be 10.9.0.0/24',
      "invalid ip-range 10.9.1.0/25: parent subnet 10.9.0.1/24 doesn't contain ip-range",
      "invalid gateway 10.8.0.1: parent subnet 10.9.0.1/24 doesn't contain this address",
      'invalid auxiliary address a: invalid address',
      'invalid auxiliary address b: parent subnet is an IPv4 block',
    ].join('\n'),
  );
  t.deepEqual((await call('GET', '/networks?filters=%7B%22name%22%3A%7B%22bad%22%3Atrue%7D%7D')).body, '[]', 'nothing was made');
});

test.serial('inspect lists IPv4 pools before IPv6 ones and honours ?scope=', async (t) => {
  const r = await call('POST', '/networks/create', { Name: 'dual', EnableIPv6: true, IPAM: { Config: [{ Subnet: 'fd00:77::/64' }, { Subnet: '10.77.0.0/24' }] } });
  t.is(r.status, 201, r.body);
  const ins = JSON.parse((await call('GET', '/networks/dual')).body) as { IPAM: { Config: Array<{ Subnet: string }> } };
  t.deepEqual(ins.IPAM.Config.map((c) => c.Subnet), ['10.77.0.0/24', 'fd00:77::/64']);
  t.is((await call('GET', '/networks/dual?scope=local')).status, 200);
  const swarm = await call('GET', '/networks/dual?scope=swarm');
  t.deepEqual([swarm.status, swarm.message], [404, 'network dual not found']);
  t.is((await call('DELETE', '/networks/dual')).status, 204);
});

test.serial('connect/disconnect look the container up first and word errors as Docker does', async (t) => {
  await call('POST', '/networks/create', { Name: 'cx', IPAM: { Config: [{ Subnet: '10.78.0.0/24' }] } });
  let r = await call('POST', '/networks/nosuchnet/connect', { Container: 'nosuchctr' });
  t.deepEqual([r.status, r.message], [404, 'No such container: nosuchctr'], 'the container is resolved before the network');
  r = await call('POST', '/networks/cx/disconnect', { Container: 'nosuchctr' });
  t.deepEqual([r.status, r.message], [404, 'No such container: nosuchctr']);
  r = await call('POST', '/networks/cx/connect', {});
  t.deepEqual([r.status, r.message], [400, 'invalid name or ID supplied: ""']);
  const sb = await d.controller.createSandbox({ name: host.name('cx') });
  r = await call('POST', '/networks/nosuchnet/connect', { Container: sb.name });
  t.deepEqual([r.status, r.message], [404, 'network nosuchnet not found']);
  r = await call('POST', '/networks/cx/disconnect', { Container: sb.name });
  t.deepEqual([r.status, r.message], [404, `container ${sb.id} is not connected to the network cx`]);
  t.is((await call('POST', '/networks/cx/connect', { Container: sb.name })).status, 200);
  t.is((await call('POST', '/networks/cx/disconnect', { Container: sb.id })).status, 200);
  await d.controller.removeSandbox(sb.name);
  await call('DELETE', '/networks/cx');
});

test('Docker timestamps: Go durations, unix seconds, RFC 3339 and dates', (t) => {
  const now = Date.UTC(2030, 0, 2, 12, 0, 0);
  t.is(parseTimestamp('1h', now), now - 3_600_000);
  t.is(parseTimestamp('1h30m', now), now - 5_400_000);
  t.is(parseTimestamp('1.5s', now), now - 1500);
  t.is(parseTimestamp('-10m', now), now + 600_000);
  t.is(parseTimestamp('0', now), 0, '"0" is the epoch, as Docker has it');
  t.is(parseTimestamp('1700000000', now), 1_700_000_000_000);
  t.is(parseTimestamp('1700000000.5', now), 1_700_000_000_500);
  t.is(parseTimestamp('2030-01-02T10:00:00Z', now), Date.UTC(2030, 0, 2, 10));
  t.is(parseTimestamp('2030-01-02T10:00:00+02:00', now), Date.UTC(2030, 0, 2, 8));
  t.is(parseTimestamp('2030-01-02', now), new Date(2030, 0, 2).getTime());
  for (const bad of ['garbage', '1x', '', '2030-13-45']) {
    t.throws(() => parseTimestamp(bad, now), { message: `failed to parse value as time or duration: "${bad}"` });
  }
});

withDocker('docker network prune --filter until= takes durations; a bad one fails as in Docker', async (t) => {
  t.is((await docker('network', 'create', 'old1')).code, 0);
  let r = await docker('network', 'prune', '-f', '--filter', 'until=1h');
  t.is(r.code, 0, r.err);
  t.notRegex(r.out, /old1/, 'made just now: not older than an hour');
  r = await docker('network', 'prune', '-f', '--filter', 'until=garbage');
  t.is(r.code, 1);
  t.is(r.err, 'Error response from daemon: failed to parse value as time or duration: "garbage"');
  await new Promise((res) => setTimeout(res, 1100));
  r = await docker('network', 'prune', '-f', '--filter', 'until=1s');
  t.regex(r.out, /old1/);
});

withDocker('docker version shows one Engine component; docker info works', async (t) => {
  let r = await docker('version');
  t.is(r.code, 0, r.err);
  t.regex(r.out, /\nServer: cnm\n Engine:\n {2}Version: +0\.\d+\.\d+\n {2}API version: +1\.47 \(minimum version 1\.24\)/);
  t.deepEqual((await docker('version', '--format', '{{range .Server.Components}}{{.Name}} {{end}}')).out, 'Engine');
  r = await docker('info');
  t.is(r.code, 0, r.err);
  t.regex(r.out, /Network: bridge macvlan host null/);
  t.regex(r.out, /Swarm: inactive/);
  t.is((await docker('info', '--format', '{{.OSType}} {{.Swarm.LocalNodeState}}')).out, 'linux inactive');
});

withDocker('docker events: filters as Docker applies them, and --until ends the stream whatever the filter', async (t) => {
  const since = String(Math.floor(Date.now() / 1000) - 1);
  t.is((await docker('network', 'create', '--label', 'x=1', 'evnet')).code, 0);
  const sb = await d.controller.createSandbox({ name: host.name('ev') });
  t.is((await docker('network', 'connect', 'evnet', sb.name)).code, 0);
  t.is((await docker('network', 'disconnect', 'evnet', sb.name)).code, 0);
  t.is((await docker('network', 'rm', 'evnet')).code, 0);
  await d.controller.removeSandbox(sb.name);
  const until = String(Math.floor(Date.now() / 1000) + 1);
  const ev = (...f: string[]) => docker('events', '--since', since, '--until', until, '--format', '{{.Action}}', ...f);
  t.deepEqual((await ev('--filter', 'type=network', '--filter', 'network=evn')).out.split('\n'), ['create', 'connect', 'disconnect', 'destroy'], 'network= matches a name prefix');
  t.deepEqual((await ev('--filter', 'event=connect', '--filter', 'event=destroy', '--filter', 'network=evnet')).out.split('\n'), ['connect', 'destroy']);
  let r = await ev('--filter', 'type=container');
  t.deepEqual([r.code, r.out], [0, ''], 'an excluded type still ends at --until');
  r = await ev('--filter', 'label=x=1');
  t.deepEqual([r.code, r.out], [0, ''], 'labels match event attributes, which carry no network labels');
  r = await ev('--filter', 'container=nosuch');
  t.deepEqual([r.code, r.out], [0, '']);
  r = await ev('--filter', 'bogus=1', '--filter', 'network=evnet');
  t.is(r.code, 0, 'unknown event filters are ignored');
  t.is(r.out.split('\n').length, 4);
});

withDocker('docker network connect/disconnect CLI errors read as with Docker', async (t) => {
  let r = await docker('network', 'connect', 'nosuchnet', 'nosuchctr');
  t.deepEqual([r.code, r.err], [1, 'Error response from daemon: No such container: nosuchctr']);
  r = await docker('network', 'create', '--driver', 'nosuchdrv', 'x');
  t.deepEqual([r.code, r.err], [1, 'Error response from daemon: plugin "nosuchdrv" not found']);
  r = await docker('network', 'create', '--subnet', '10.79.0.1/24', 'x');
  t.deepEqual([r.code, r.err], [1, 'Error response from daemon: invalid network config:\ninvalid subnet 10.79.0.1/24: it should be 10.79.0.0/24']);
});
