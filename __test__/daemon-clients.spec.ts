// The stock docker CLI and dockerode against `cnm daemon`, with real effect on the kernel.
import { join } from 'node:path';
import test from 'ava';
import Docker from 'dockerode';
import { type Daemon, startDaemon } from '../ts/daemon/server.js';
import { dockerAt, dockerBin } from './helpers/docker-cli.js';
import { type IsolatedHost, ipj, isolatedHost, pings } from './helpers/host.js';

let host: IsolatedHost;
let d: Daemon;

test.before(async () => {
  host = await isolatedHost('dcli');
  d = await startDaemon({ socket: join(host.tmp('dcli'), 'cnm.sock'), controller: { hostNetns: host.ns, stateDir: host.stateDir } });
});
test.after.always(async () => {
  await d?.close();
  await host?.cleanup();
});

/** Run the docker CLI asynchronously: the daemon answers from this very process. */
const docker = (...args: string[]) => dockerAt(d.socket, ...args);

const withDocker = dockerBin ? test.serial : test.serial.skip;
if (!dockerBin) console.log('docker CLI tests skipped: no docker client binary on this machine (the image normally has one)');

withDocker('the stock docker CLI drives networks end to end', async (t) => {
  let r = await docker('network', 'create', '--subnet', '10.240.0.0/24', '--gateway', '10.240.0.254', '--ip-range', '10.240.0.128/25', '-o', 'com.docker.network.driver.mtu=1420', '--label', 'env=test', 'clinet');
  t.is(r.code, 0, r.err);
  const id = r.out;
  t.regex(id, /^[0-9a-f]{64}$/);
  r = await docker('network', 'create', '--internal', '--ipv6', '--subnet', 'fd00:240::/64', 'inner6');
  t.is(r.code, 0, r.err);
  r = await docker('network', 'ls');
  t.regex(r.out, /NETWORK ID\s+NAME\s+DRIVER\s+SCOPE/);
  t.regex(r.out, new RegExp(`${id.slice(0, 12)}\\s+clinet\\s+bridge\\s+local`));
  t.deepEqual((await docker('network', 'ls', '-q', '--filter', 'name=clinet')).out, id.slice(0, 12));
  const json = (await docker('network', 'ls', '--format', 'json', '--filter', 'label=env=test')).out.split('\n').map((l) => JSON.parse(l) as { Name: string; Driver: string });
  t.deepEqual(json.map((n) => [n.Name, n.Driver]), [['clinet', 'bridge']]);
  t.is((await docker('network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}}', 'clinet')).out, '10.240.0.0/24 10.240.0.254 10.240.0.128/25');
  t.is((await docker('network', 'inspect', '-f', '{{.Internal}} {{.EnableIPv6}}', 'inner6')).out, 'true true');
  // as Docker: a gateway the user did not give is left out of a user subnet's config,
  // and shown for a subnet cnm chose
  const gw = '{{range .IPAM.Config}}{{.Subnet}}={{.Gateway}} {{end}}';
  t.regex((await docker('network', 'inspect', '-f', gw, 'inner6')).out, /^\d+\.\d+\.\d+\.0\/\d+=\d+\.\d+\.\d+\.1 fd00:240::\/64=$/);
  t.is((await docker('network', 'create', 'autonet')).code, 0);
  t.regex((await docker('network', 'inspect', '-f', gw, 'autonet')).out, /^\d+\.\d+\.\d+\.0\/\d+=\d+\.\d+\.\d+\.1$/);
  // the CLI sends IPAM.Options {} and Docker shows it back; an API client that sends none gets null
  t.is((await docker('network', 'inspect', '-f', '{{json .IPAM.Options}}', 'autonet')).out, '{}');
  t.is((await docker('network', 'rm', 'autonet')).code, 0);
  t.is(ipj<Array<{ mtu: number }>>(host.ns, 'link', 'show', 'dev', `br-${id.slice(0, 12)}`)[0]!.mtu, 1420);

  // sandboxes are the containers of the API
  const a = host.name('a');
  const b = host.name('b');
  await d.controller.createSandbox({ name: a });
  await d.controller.createSandbox({ name: b });
  t.is((await docker('network', 'connect', '--ip', '10.240.0.10', '--alias', 'db', 'clinet', a)).code, 0);
  t.is((await docker('network', 'connect', 'clinet', b)).code, 0);
  t.is((await docker('network', 'inspect', '-f', `{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}`, 'clinet')).out.split(' ').sort().join(' '), [`${a}=10.240.0.10/24`, `${b}=10.240.0.128/24`].sort().join(' '));
  t.true(pings(a, '10.240.0.128'), 'traffic flows between the connected sandboxes');
  r = await docker('network', 'rm', 'clinet');
  t.not(r.code, 0);
  t.regex(r.err, /active endpoints/);
  r = await docker('network', 'connect', 'clinet', a);
  t.not(r.code, 0);
  t.is((await docker('network', 'disconnect', 'clinet', a)).code, 0);
  t.is((await docker('network', 'disconnect', 'clinet', b)).code, 0);
  t.false(pings(a, '10.240.0.128'));
  r = await docker('network', 'inspect', 'nosuch');
  t.not(r.code, 0);
  t.regex(r.err, /not found/);
  t.is((await docker('network', 'rm', 'clinet')).code, 0);
  t.deepEqual(ipj(host.ns, 'link', 'show', 'type', 'bridge').filter((l) => (l as { ifname: string }).ifname === `br-${id.slice(0, 12)}`), []);
  r = await docker('network', 'prune', '-f');
  t.is(r.code, 0, r.err);
  t.regex(r.out, /inner6/);
  t.deepEqual((await docker('network', 'ls', '--format', '{{.Name}}')).out.split('\n').sort(), ['bridge', 'host', 'none']);
  r = await docker('version', '--format', '{{.Server.APIVersion}}');
  t.is(r.out, '1.47');
});

withDocker('the docker CLI makes IPv6-only and routed networks (--ipv4=false, gateway modes) and gets 400s for bad ones', async (t) => {
  let r = await docker('network', 'create', '--ipv4=false', '--ipv6', '--subnet', 'fd00:241::/64', '-o', 'com.docker.network.bridge.gateway_mode_ipv6=routed', 'six');
  t.is(r.code, 0, r.err);
  t.is((await docker('network', 'inspect', '-f', '{{.EnableIPv4}} {{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}}{{end}}', 'six')).out, 'false true fd00:241::/64');
  const sb = await d.controller.createSandbox({ name: host.name('six'), net: 'six' });
  t.deepEqual(ipj(sb.netns, '-4', 'addr', 'show', 'dev', 'eth0')[0]?.addr_info ?? [], [], 'no IPv4 address');
  await d.controller.removeSandbox(sb.name);
  r = await docker('network', 'create', '--ipv4=false', 'nov6');
  t.not(r.code, 0);
  t.regex(r.err, /IPv6/);
  r = await docker('network', 'create', '-o', 'com.docker.network.bridge.gateway_mode_ipv4=isolated', 'iso');
  t.not(r.code, 0);
  t.regex(r.err, /internal/);
  t.is((await docker('network', 'rm', 'six')).code, 0);
});

test.serial('dockerode does the same from Node', async (t) => {
  const docker = new Docker({ socketPath: d.socket });
  const net = await docker.createNetwork({
    Name: 'odenet',
    Driver: 'bridge',
    Labels: { via: 'dockerode' },
    IPAM: { Driver: 'default', Config: [{ Subnet: '10.241.0.0/24', Gateway: '10.241.0.1' }] },
  });
  t.regex(net.id, /^[0-9a-f]{64}$/);
  const list = await docker.listNetworks({ filters: { label: ['via=dockerode'] } });
  t.deepEqual(list.map((n) => n.Name), ['odenet']);
  const sb = await d.controller.createSandbox({ name: host.name('o') });
  await docker.getNetwork('odenet').connect({ Container: sb.name, EndpointConfig: { IPAMConfig: { IPv4Address: '10.241.0.50' } } });
  const ins = (await docker.getNetwork(net.id).inspect()) as { Containers: Record<string, { IPv4Address: string }>; IPAM: { Options: unknown } };
  t.is(ins.Containers[sb.id]!.IPv4Address, '10.241.0.50/24');
  t.is(ins.IPAM.Options, null, 'no IPAM.Options sent, null shown, as Docker does');
  t.true(pings(sb.netns, '10.241.0.1'));
  const e = await t.throwsAsync(docker.getNetwork('odenet').remove());
  t.is((e as { statusCode?: number }).statusCode, 403);
  await docker.getNetwork('odenet').disconnect({ Container: sb.name });
  await docker.getNetwork('odenet').remove();
  const e404 = await t.throwsAsync(docker.getNetwork('odenet').inspect());
  t.is((e404 as { statusCode?: number }).statusCode, 404);
  const pruned = await docker.pruneNetworks();
  t.deepEqual(pruned.NetworksDeleted ?? [], []);
  await d.controller.removeSandbox(sb.name);
  t.is(await docker.ping().then(String), 'OK');
});
