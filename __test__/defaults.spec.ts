// Daemon-level options of the default bridge (bip, bridge, mtu) and automatic
// subnet choice against the routes of the host netns.
import { execFileSync } from 'node:child_process';
import test from 'ava';
import { type IsolatedHost, ipj, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
test.before(async () => {
  host = await isolatedHost('dflt');
});
test.after.always(async () => {
  await host?.cleanup();
});

const addrs = (dev: string) =>
  ipj<Array<{ addr_info: Array<{ family: string; local: string; prefixlen: number }> }>>(host.ns, 'addr', 'show', 'dev', dev)[0]!.addr_info
    .filter((a) => a.family === 'inet')
    .map((a) => `${a.local}/${a.prefixlen}`);

test.serial('automatic subnets avoid routes of the host netns', async (t) => {
  // the host already routes 172.17.0.0/16 somewhere: the default bridge must not take it
  execFileSync('ip', ['-n', host.ns, 'link', 'add', 'dummy0', 'type', 'bridge']);
  execFileSync('ip', ['-n', host.ns, 'link', 'set', 'dummy0', 'up']);
  execFileSync('ip', ['-n', host.ns, 'addr', 'add', '172.17.5.1/16', 'dev', 'dummy0']);
  const ctl = await host.open();
  const bridge = ctl.getNetwork('bridge');
  t.is(bridge.subnets[0], '172.18.0.0/16');
  t.deepEqual(addrs('cnm0'), ['172.18.0.1/16']);
  const n = await ctl.createNetwork({ name: 'auto' });
  t.is(n.subnets[0], '172.19.0.0/16');
  await ctl.removeNetwork('auto');
  await ctl.close();
  execFileSync('ip', ['-n', host.ns, 'link', 'del', 'dummy0']);
});

test.serial('bip sets the default bridge address; changing it re-creates the default bridge', async (t) => {
  let ctl = await host.open({ bip: '10.99.0.1/24', mtu: 1400 });
  const br = ctl.getNetwork('bridge').inspect();
  t.deepEqual(br.IPAM.Config, [{ Subnet: '10.99.0.0/24', Gateway: '10.99.0.1' }]);
  t.deepEqual(addrs('cnm0'), ['10.99.0.1/24']);
  t.is(ipj<Array<{ mtu: number }>>(host.ns, 'link', 'show', 'dev', 'cnm0')[0]!.mtu, 1400);
  await ctl.close();
  ctl = await host.open({ bip: '10.98.0.5/24' });
  t.deepEqual(ctl.getNetwork('bridge').inspect().IPAM.Config, [{ Subnet: '10.98.0.0/24', Gateway: '10.98.0.5' }]);
  t.deepEqual(addrs('cnm0'), ['10.98.0.5/24']);
  // the default bridge is still usable
  const sb = await ctl.createSandbox({ name: host.name('s') });
  t.is(sb.inspect().Networks.bridge!.IPAddress, '10.98.0.1');
  await ctl.removeSandbox(sb.name);
  await ctl.close();
});

test.serial('bridge (-b) adopts an existing device and its address', async (t) => {
  execFileSync('ip', ['-n', host.ns, 'link', 'add', 'mybr0', 'type', 'bridge']);
  execFileSync('ip', ['-n', host.ns, 'addr', 'add', '10.97.0.1/24', 'dev', 'mybr0']);
  // the old default bridge device is removed when the settings change
  const ctl = await host.open({ bridge: 'mybr0' });
  const br = ctl.getNetwork('bridge');
  t.is(br.bridge, 'mybr0');
  t.deepEqual(br.inspect().IPAM.Config, [{ Subnet: '10.97.0.0/24', Gateway: '10.97.0.1' }]);
  t.is(ipj(host.ns, 'link', 'show', 'dev', 'mybr0').length, 1);
  t.false(ipj<Array<{ ifname: string }>>(host.ns, 'link', 'show').some((l) => l.ifname === 'cnm0'), 'cnm0 went away');
  await ctl.close();
  await t.throwsAsync(host.open({ bridge: 'nosuchbr0' }), { code: 'ERR_LINK_NOT_FOUND' } as never);
  await t.throwsAsync(host.open({ bridge: 'mybr0', bip: '10.96.0.1/24' }), { code: 'ERR_INVALID_ARGUMENT' } as never);
});
