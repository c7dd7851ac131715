// Remote network driver plugins end to end, inside an isolated host netns:
// examples/myplugin (a bridge-like plugin written with the SDK) serving a network
// that two sandboxes ping across; plugin errors and their undo; adoptLink's own
// undo; the CLI with --plugin-dir. Nothing outside the test's namespaces.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import type { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { type NetworkDriverPlugin, type PluginServer, servePlugin } from '../ts/plugin/index.js';
import { cnm } from './helpers/cli.js';
import { type IsolatedHost, eventually, ipj, isolatedHost, pings } from './helpers/host.js';

const root = fileURLToPath(new URL('..', import.meta.url));
let host: IsolatedHost;
let ctl: NetworkController;
let pluginDir: string;
let plugin: ChildProcess;

interface Link {
  ifname: string;
  link_type?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
  flags: string[];
}

const hostLinks = () => ipj<Link[]>(host.ns, 'link', 'show').map((l) => l.ifname);

test.before(async () => {
  host = await isolatedHost('plug');
  pluginDir = mkdtempSync(join(tmpdir(), 'cnm-plugins-'));
  plugin = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples/myplugin/main.ts'), '--socket', join(pluginDir, 'myplugin.sock'), '--host-netns', host.ns], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // wait for "listening" so that the first test does not measure the plugin's start-up
  await new Promise<void>((resolve, reject) => {
    plugin.stdout!.once('data', () => resolve());
    plugin.once('exit', (code) => reject(new Error(`myplugin exited with ${code}`)));
  });
  ctl = await host.open({ pluginDir });
});
test.after.always(async () => {
  plugin?.kill('SIGTERM');
  await host?.cleanup();
  rmSync(pluginDir, { recursive: true, force: true });
});

test.serial('myplugin: a network, two sandboxes that ping each other, and nothing left after removal', async (t) => {
  const before = hostLinks();
  const net = await ctl.createNetwork({ name: 'mynet', driver: 'myplugin', ipam: [{ subnet: '10.210.0.0/24' }] });
  const ins = net.inspect();
  t.is(ins.Driver, 'myplugin');
  t.deepEqual(ins.IPAM.Config, [{ Subnet: '10.210.0.0/24' }], 'the configuration the user gave, as Docker shows it');
  const bridge = `mp-${net.id.slice(0, 12)}`;
  const br = ipj<Link[]>(host.ns, 'addr', 'show', 'dev', bridge)[0]!;
  t.is(br.linkinfo?.info_kind ?? 'bridge', 'bridge');
  t.deepEqual(
    br.addr_info!.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
    ['10.210.0.1/24'],
    'the plugin made the bridge with the gateway the IPAM chose',
  );

  const a = await ctl.createSandbox({ name: host.name('a'), net: 'mynet' });
  const b = await ctl.createSandbox({ name: host.name('b'), net: 'mynet' });
  const ia = a.inspect().Networks.mynet!;
  const ib = b.inspect().Networks.mynet!;
  t.is(ia.IPAddress, '10.210.0.2');
  t.is(ib.IPAddress, '10.210.0.3');
  t.is(ia.Gateway, '10.210.0.1');
  const eth0 = ipj<Link[]>(a.netns, 'addr', 'show', 'dev', 'eth0')[0]!;
  t.true(eth0.flags.includes('UP'));
  t.deepEqual(
    eth0.addr_info!.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`),
    ['10.210.0.2/24'],
  );
  t.true(ipj<Link[]>(a.netns, 'link', 'show', 'dev', 'lo')[0]!.flags.includes('UP'), 'lo is up');
  const routes = ipj<Array<{ dst: string; gateway?: string; dev: string }>>(a.netns, 'route', 'show');
  t.truthy(routes.find((r) => r.dst === 'default' && r.gateway === '10.210.0.1' && r.dev === 'eth0'));
  t.is(ia.MacAddress, ipj<Array<{ address: string }>>(a.netns, 'link', 'show', 'dev', 'eth0')[0]!.address, 'the record has the real MAC');
  t.true(pings(a.netns, ib.IPAddress), 'A reaches B');
  t.true(pings(b.netns, ia.IPAddress), 'B reaches A');
  t.true(pings(a.netns, '10.210.0.1'), 'the plugin bridge answers as gateway');
  t.is(Object.keys(ctl.getNetwork('mynet').inspect().Containers).length, 2);

  // disconnect and connect again: the link goes and comes back as eth0
  await ctl.disconnect('mynet', b.name);
  t.false(ipj<Link[]>(b.netns, 'link', 'show').some((l) => l.ifname === 'eth0'));
  t.false(pings(a.netns, ib.IPAddress));
  const ep = await ctl.connect('mynet', b.name);
  t.is(ep.inspect().IPAddress ?? b.inspect().Networks.mynet!.IPAddress, b.inspect().Networks.mynet!.IPAddress);
  t.true(pings(a.netns, b.inspect().Networks.mynet!.IPAddress));

  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeNetwork('mynet');
  t.false(ctl.listNetworks().some((n) => n.name === 'mynet'));
  t.true(await eventually(() => hostLinks().join() === before.join()), `host links back to ${before.join()}: ${hostLinks().join()}`);
  t.false(hostLinks().some((l) => l.startsWith('mp')), 'no plugin bridge or veth left');
});

test.serial('two plugin networks in one sandbox: eth0 and eth1, one default route', async (t) => {
  await ctl.createNetwork({ name: 'p1', driver: 'myplugin', ipam: [{ subnet: '10.212.0.0/24' }] });
  await ctl.createNetwork({ name: 'p2', driver: 'myplugin', ipam: [{ subnet: '10.213.0.0/24' }] });
  const s = await ctl.createSandbox({ name: host.name('m'), net: 'p1' });
  const peer = await ctl.createSandbox({ name: host.name('mp'), net: 'p2' });
  await ctl.connect('p2', s.name);
  const names = s.inspect().Networks;
  t.is(names.p1!.InterfaceName, 'eth0');
  t.is(names.p2!.InterfaceName, 'eth1');
  const defaults = ipj<Array<{ dst: string; dev: string }>>(s.netns, 'route', 'show').filter((r) => r.dst === 'default');
  t.deepEqual(
    defaults.map((r) => r.dev),
    ['eth0'],
  );
  t.true(pings(s.netns, peer.inspect().Networks.p2!.IPAddress), 'reachable over eth1');
  await ctl.removeSandbox(s.name);
  await ctl.removeSandbox(peer.name);
  await ctl.removeNetwork('p1');
  await ctl.removeNetwork('p2');
  t.true(await eventually(() => !hostLinks().some((l) => l.startsWith('mp'))));
});

/** A fake plugin in this process whose answers the test controls. */
async function fakePlugin(name: string, driver: NetworkDriverPlugin): Promise<PluginServer> {
  return servePlugin({ socket: join(pluginDir, `${name}.sock`), driver });
}

test.serial('plugin errors are ERR_PLUGIN and leave nothing behind; a failed join is undone on both sides', async (t) => {
  const seen: string[] = [];
  const srv = await fakePlugin('broken', {
    createNetwork(req) {
      seen.push('CreateNetwork');
      const generic = req.Options['com.docker.network.generic'] as Record<string, string>;
      if (generic.fail === 'yes') throw new Error('no bridges today');
    },
    deleteNetwork: () => void seen.push('DeleteNetwork'),
    createEndpoint: () => void seen.push('CreateEndpoint'),
    deleteEndpoint: () => void seen.push('DeleteEndpoint'),
    leave: () => void seen.push('Leave'),
    // names a link that does not exist in the host netns
    join: () => (seen.push('Join'), { InterfaceName: { SrcName: 'nosuchlink0', DstPrefix: 'eth' }, Gateway: '10.214.0.1' }),
  });
  try {
    const e = await t.throwsAsync(ctl.createNetwork({ name: 'bad', driver: 'broken', options: { fail: 'yes' }, ipam: [{ subnet: '10.214.0.0/24' }] }));
    t.is((e as CnmError).code, 'ERR_PLUGIN');
    t.regex(e!.message, /plugin broken: NetworkDriver\.CreateNetwork: no bridges today/);
    t.false(ctl.listNetworks().some((n) => n.name === 'bad'), 'not kept');

    await ctl.createNetwork({ name: 'bad', driver: 'broken', ipam: [{ subnet: '10.214.0.0/24' }] });
    seen.length = 0;
    const e2 = await t.throwsAsync(ctl.createSandbox({ name: host.name('x'), net: 'bad' }));
    t.is((e2 as CnmError).code, 'ERR_LINK_NOT_FOUND');
    t.deepEqual(seen, ['CreateEndpoint', 'Join', 'Leave', 'DeleteEndpoint']);
    t.false(await native.netnsExists(host.name('x')), 'the sandbox netns is gone');
    t.deepEqual(ctl.getNetwork('bad').inspect().Containers, {});
    await ctl.removeNetwork('bad');
    t.true(seen.includes('DeleteNetwork'));
  } finally {
    await srv.close();
  }
});

test.serial('adoptLink moves a link in, and back out under its old name when a later step fails', async (t) => {
  const sb = host.name('adopt');
  await native.netnsCreate(sb);
  const ipIn = (...args: string[]) => execFileSync('ip', ['-n', host.ns, ...args]);
  ipIn('link', 'add', 'adoptme0', 'type', 'veth', 'peer', 'name', 'adoptpeer0');
  try {
    // an unreachable gateway fails after the move: the link must come home
    const e = await t.throwsAsync(
      native.adoptLink({ hostNetns: host.ns, ifname: 'adoptme0', sandboxNetns: sb, newName: 'eth0', addresses: ['10.215.0.2/24'], gateway: '10.99.0.1' }),
    );
    t.is((e as CnmError).code, 'ERR_KERNEL');
    t.true(hostLinks().includes('adoptme0'), 'moved back under its old name');
    t.false(ipj<Link[]>(sb, 'link', 'show').some((l) => l.ifname === 'eth0'));
    t.is(((await t.throwsAsync(native.adoptLink({ hostNetns: host.ns, ifname: 'nosuch0', sandboxNetns: sb, newName: 'eth0' }))) as CnmError).code, 'ERR_LINK_NOT_FOUND');
    t.is(((await t.throwsAsync(native.adoptLink({ hostNetns: host.ns, ifname: 'adoptme0', sandboxNetns: sb, newName: 'bad/name' }))) as CnmError).code, 'ERR_INVALID_ARGUMENT');
    const info = await native.adoptLink({
      hostNetns: host.ns,
      ifname: 'adoptme0',
      sandboxNetns: sb,
      newName: 'eth0',
      mtu: 1400,
      mac: '02:42:0a:d7:00:02',
      addresses: ['10.215.0.2/24'],
      gateway: '10.215.0.1',
      routes: [
        { dst: '10.216.0.0/16', gateway: '10.215.0.254' },
        { dst: '10.217.0.0/24' },
      ],
    });
    t.is(info.mac, '02:42:0a:d7:00:02');
    t.false(hostLinks().includes('adoptme0'));
    const l = ipj<Array<Link & { mtu: number; address: string }>>(sb, 'addr', 'show', 'dev', 'eth0')[0]!;
    t.is(l.mtu, 1400);
    t.is(l.address, '02:42:0a:d7:00:02');
    const routes = ipj<Array<{ dst: string; gateway?: string; scope?: string }>>(sb, 'route', 'show');
    t.truthy(routes.find((r) => r.dst === 'default' && r.gateway === '10.215.0.1'));
    t.truthy(routes.find((r) => r.dst === '10.216.0.0/16' && r.gateway === '10.215.0.254'));
    t.truthy(routes.find((r) => r.dst === '10.217.0.0/24' && r.scope === 'link' && !r.gateway));
  } finally {
    await native.deleteLink(host.ns, 'adoptme0').catch(() => undefined);
    await native.netnsDelete(sb);
  }
});

test.serial('the CLI: --plugin-dir, network create --driver myplugin, sandboxes that ping, rm', async (t) => {
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns, '--plugin-dir', pluginDir];
  let r = cnm([...g, 'network', 'create', '--driver', 'myplugin', '--subnet', '10.211.0.0/24', 'clinet']);
  t.is(r.code, 0, r.stderr);
  t.regex(cnm([...g, 'network', 'ls']).stdout, /clinet\s+myplugin\s+local/);
  const s1 = host.name('c1');
  const s2 = host.name('c2');
  t.is(cnm([...g, 'sandbox', 'create', '--net', 'clinet', s1]).code, 0);
  r = cnm([...g, 'sandbox', 'create', '--net', 'clinet', s2]);
  t.is(r.code, 0, r.stderr);
  t.true(pings(s1, '10.211.0.3'));
  t.is(cnm([...g, 'sandbox', 'rm', s1, s2]).code, 0);
  t.is(cnm([...g, 'network', 'rm', 'clinet']).code, 0);
  t.true(await eventually(() => !hostLinks().some((l) => l.startsWith('mp'))));
  // without the plugin dir the driver is unknown
  r = cnm(['--state-dir', host.stateDir, '--host-netns', host.ns, '--plugin-dir', join(pluginDir, 'empty'), 'network', 'create', '--driver', 'myplugin', 'x']);
  t.not(r.code, 0);
  t.regex(r.stderr, /unknown network driver "myplugin"/);
});

test.serial('reconcile tells the plugin when a sandbox on its network vanished', async (t) => {
  const seen: string[] = [];
  const ipIn = (...args: string[]) => execFileSync('ip', ['-n', host.ns, ...args]);
  const srv = await fakePlugin('recorder', {
    createNetwork: () => void seen.push('CreateNetwork'),
    deleteNetwork: () => void seen.push('DeleteNetwork'),
    createEndpoint: () => void seen.push('CreateEndpoint'),
    deleteEndpoint: (req) => void seen.push(`DeleteEndpoint:${req.EndpointID.slice(0, 12)}`),
    leave: (req) => void seen.push(`Leave:${req.EndpointID.slice(0, 12)}`),
    join: () => {
      seen.push('Join');
      ipIn('link', 'add', 'recv0', 'type', 'veth', 'peer', 'name', 'recv1');
      return { InterfaceName: { SrcName: 'recv0', DstPrefix: 'eth' }, Gateway: '10.215.0.1' };
    },
  });
  try {
    await ctl.createNetwork({ name: 'rec', driver: 'recorder', ipam: [{ subnet: '10.215.0.0/24' }] });
    const sb = await ctl.createSandbox({ name: host.name('rec'), net: 'rec' });
    const ep = sb.endpoints()[0]!.id.slice(0, 12);
    // the sandbox's netns goes behind cnm's back (a reboot, or ip netns del)
    execFileSync('ip', ['netns', 'del', sb.netns]);
    const r = await ctl.reconcile();
    t.true(r.actions.some((a) => a.includes(`release sandbox whose netns is gone ${sb.name}`)), r.actions.join('; '));
    t.true(seen.includes(`Leave:${ep}`), seen.join(' '));
    t.true(seen.includes(`DeleteEndpoint:${ep}`), seen.join(' '));
    t.deepEqual(ctl.getNetwork('rec').inspect().Containers, {});
    await ctl.removeNetwork('rec');
    t.true(seen.includes('DeleteNetwork'));
  } finally {
    await srv.close();
    // the pair goes with the sandbox's netns (asynchronously); only a failure above leaves it
    try {
      ipIn('link', 'del', 'recv1');
    } catch {
      // already gone
    }
  }
});
