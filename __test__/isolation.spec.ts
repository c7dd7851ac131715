// Two controllers with different host netns on one machine do not see or disturb each other.
import test from 'ava';
import { type IsolatedHost, ipj, isolatedHost, pings } from './helpers/host.js';

let h1: IsolatedHost;
let h2: IsolatedHost;
test.before(async () => {
  h1 = await isolatedHost('iso1');
  h2 = await isolatedHost('iso2');
});
test.after.always(async () => {
  await h1?.cleanup();
  await h2?.cleanup();
});

test('same network names and subnets in two hosts, no interference', async (t) => {
  const c1 = await h1.open();
  const c2 = await h2.open();
  await c1.createNetwork({ name: 'shared-name', ipam: [{ subnet: '10.61.0.0/24' }] });
  await c2.createNetwork({ name: 'shared-name', ipam: [{ subnet: '10.61.0.0/24' }] });
  t.deepEqual(c1.listNetworks().map((n) => n.name).sort(), ['bridge', 'host', 'none', 'shared-name']);
  t.not(c1.getNetwork('shared-name').id, c2.getNetwork('shared-name').id);
  const s1 = await c1.createSandbox({ name: h1.name('s'), net: 'shared-name' });
  const s2 = await c2.createSandbox({ name: h2.name('s'), net: 'shared-name' });
  // both got the same address, each on its own host
  t.is(s1.inspect().Networks['shared-name']!.IPAddress, '10.61.0.2');
  t.is(s2.inspect().Networks['shared-name']!.IPAddress, '10.61.0.2');
  t.deepEqual(c1.listSandboxes().map((s) => s.name), [h1.name('s')]);
  t.deepEqual(c2.listSandboxes().map((s) => s.name), [h2.name('s')]);
  // a third sandbox on host 1 reaches host 1's sandbox only
  const s3 = await c1.createSandbox({ name: h1.name('t'), net: 'shared-name' });
  t.true(pings(s3.netns, '10.61.0.2'));
  const br1 = c1.getNetwork('shared-name').bridge!;
  const onBr1 = ipj<Array<{ ifname: string; master?: string }>>(h1.ns, 'link', 'show', 'master', br1).length;
  t.is(onBr1, 2);
  t.is(ipj<Array<{ ifname: string }>>(h2.ns, 'link', 'show', 'master', c2.getNetwork('shared-name').bridge!).length, 1);
  // removing everything on host 2 leaves host 1 untouched
  await c2.removeSandbox(s2.name);
  await c2.removeNetwork('shared-name');
  t.true(pings(s3.netns, '10.61.0.2'));
  t.is(c1.listSandboxes().length, 2);
  await c1.removeSandbox(s1.name);
  await c1.removeSandbox(s3.name);
  await c1.removeNetwork('shared-name');
});

test('a controller refuses a host netns that does not exist', async (t) => {
  const { NetworkController } = await import('../ts/controller.js');
  await t.throwsAsync(NetworkController.open({ hostNetns: 'cnmt-no-such-netns', stateDir: h1.stateDir }), { code: 'ERR_NETNS_NOT_FOUND' } as never);
});
