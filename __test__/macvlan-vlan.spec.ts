// The macvlan driver's 802.1q path (parent=IF.VLAN) against a fake kernel that
// has 8021q, which this machine's kernel lacks (macvlan.spec.ts checks the coded
// refusal there): the sub-interface is made with the network and removed with
// it when cnm made it, left in place when it was there before, and made again
// by reconcile.
import test from 'ava';
import type { DriverContext, RepairInput } from '../ts/drivers/driver.js';
import { MacvlanDriver, type MacvlanKernel, parseVlanParent } from '../ts/drivers/macvlan.js';
import type { LinkInfo } from '../ts/native-api.js';
import type { NetworkRecord } from '../ts/types.js';

function fakeKernel(names: string[]) {
  const links = new Map<string, LinkInfo>(names.map((n, i) => [n, { index: i + 1, name: n, kind: 'veth', master: null, mtu: 1500, mac: '', up: true, addresses: [] }]));
  const calls: string[] = [];
  const kernel: MacvlanKernel = {
    listLinks: async () => [...links.values()],
    ensureVlan: async (s) => {
      calls.push(`vlan ${s.name} ${s.parent} ${s.id}`);
      if (!links.has(s.parent)) throw new Error('no parent');
      const had = links.has(s.name);
      links.set(s.name, { index: links.size + 1, name: s.name, kind: 'vlan', master: null, mtu: 1500, mac: '', up: true, addresses: [] });
      return { ifindex: links.size, created: !had };
    },
    attachMacvlan: async () => ({ ifindex: 2, mac: '02:00:00:00:00:01' }),
    deleteLink: async (_ns, name) => {
      calls.push(`delete ${name}`);
      return links.delete(name);
    },
  };
  return { kernel, links, calls };
}

const ctx = { hostNetns: 'h' } as DriverContext;
const record = (parent: string): NetworkRecord =>
  ({ id: 'n1', name: 'v10', driver: 'macvlan', options: { parent }, ipam: { config: [] }, state: 'creating' }) as unknown as NetworkRecord;

test('IF.VLAN parses into the interface and the VLAN id', (t) => {
  t.deepEqual(parseVlanParent('eth0.10'), { base: 'eth0', id: 10 });
  t.deepEqual(parseVlanParent('br.x.7'), { base: 'br.x', id: 7 });
  t.is(parseVlanParent('eth0'), null);
  t.throws(() => parseVlanParent('eth0.0'), { code: 'ERR_INVALID_ARGUMENT' } as never);
  t.throws(() => parseVlanParent('eth0.4095'), { code: 'ERR_INVALID_ARGUMENT' } as never);
});

test('a sub-interface cnm made goes with the network', async (t) => {
  const k = fakeKernel(['eth0']);
  const d = new MacvlanDriver(ctx, k.kernel);
  const net = record('eth0.10');
  d.prepareNetwork(net);
  await d.createNetwork(net);
  t.true(net.vlanCreated);
  t.is(k.links.get('eth0.10')?.kind, 'vlan');
  await d.deleteNetwork(net);
  t.false(k.links.has('eth0.10'));
  t.deepEqual(k.calls, ['vlan eth0.10 eth0 10', 'delete eth0.10']);
});

test('a sub-interface that was there before stays', async (t) => {
  const k = fakeKernel(['eth0', 'eth0.20']);
  const d = new MacvlanDriver(ctx, k.kernel);
  const net = record('eth0.20');
  d.prepareNetwork(net);
  await d.createNetwork(net);
  t.falsy(net.vlanCreated);
  await d.deleteNetwork(net);
  t.true(k.links.has('eth0.20'));
  t.deepEqual(k.calls, []);
});

test('a missing base interface is refused before any VLAN is asked for', async (t) => {
  const k = fakeKernel([]);
  const d = new MacvlanDriver(ctx, k.kernel);
  const net = record('eth9.10');
  d.prepareNetwork(net);
  await t.throwsAsync(d.createNetwork(net), { code: 'ERR_LINK_NOT_FOUND' } as never);
  t.deepEqual(k.calls, []);
});

test('reconcile makes a sub-interface of ours again after a reboot', async (t) => {
  const k = fakeKernel(['eth0']);
  const d = new MacvlanDriver(ctx, k.kernel);
  const net = record('eth0.10');
  d.prepareNetwork(net);
  await d.createNetwork(net);
  k.links.delete('eth0.10');
  const done: string[] = [];
  const input: RepairInput = {
    networks: [net],
    endpoints: () => [],
    sandboxes: () => [],
    dryRun: false,
    step: async (what, fn) => {
      done.push(...(Array.isArray(what) ? what : [what]));
      await fn();
      return true;
    },
  };
  await d.repair(input);
  t.true(k.links.has('eth0.10'));
  t.deepEqual(done, ['make the VLAN sub-interface eth0.10 of macvlan network v10 again']);
});
