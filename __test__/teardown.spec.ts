// Teardown as fast as set-up (issue 16): detach, sandbox rm and network rm retire
// their links at once (down, out of the bridge, addresses gone, renamed) and the
// reaper deletes them in bulk a moment later. When a call returns nothing
// observable is left: no address or route, no traffic, no firewall entry, the
// name and address reusable at once; after a quiet second no device is left; a
// crash before the reap is finished by reconcile. Real netlink, real traffic.
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';
import { BIN, cnm } from './helpers/cli.js';
import { native } from '../ts/native.js';
import { isGrave } from '../ts/reaper.js';
import type { NetworkController } from '../ts/controller.js';

let host: IsolatedHost;
test.before(async () => {
  host = await isolatedHost('teardown');
});
test.after.always(async () => {
  await host.cleanup();
});

/** Links of `netns` in the grave group. */
async function graves(netns: string | null): Promise<string[]> {
  return (await native.listLinks(netns)).filter((l) => isGrave(l.group)).map((l) => l.name);
}

/** Waits up to `ms` for `netns` to hold no retired link; the names left otherwise. */
async function drained(netns: string | null, ms = 1000): Promise<string[]> {
  const until = Date.now() + ms;
  let left = await graves(netns);
  while (left.length > 0 && Date.now() < until) {
    await sleep(20);
    left = await graves(netns);
  }
  return left;
}

async function pings(from: string, to: string): Promise<boolean> {
  return (await native.netnsPing(from, to, 1, 0, 300)).received === 1;
}

/** A first ping, however long a fresh port takes to forward. */
async function reaches(from: string, to: string): Promise<boolean> {
  for (let i = 0; i < 15; i++) if (await pings(from, to)) return true;
  return false;
}

async function twoOnANetwork(ctl: NetworkController, tag: string, subnet: string) {
  await ctl.createNetwork({ name: tag, ipam: [{ subnet }] });
  const a = await ctl.createSandbox({ name: host.name(`${tag}-a`), net: tag });
  const b = await ctl.createSandbox({ name: host.name(`${tag}-b`), net: tag, ports: [{ containerPort: 80, hostPort: 18080 + subnet.charCodeAt(3) }] });
  const ipOf = (sb: typeof a) => sb.inspect().Networks[tag]!.IPAddress;
  return { a, b, ipA: ipOf(a), ipB: ipOf(b) };
}

test.serial('detach: no address, route, traffic or port left when it returns; name and address reusable at once; devices gone after a quiet second', async (t) => {
  const ctl = await host.open();
  const { a, b, ipB } = await twoOnANetwork(ctl, 'td1', '10.61.0.0/24');
  t.true(await reaches(a.netns, ipB), 'a reaches b before');
  t.is((await native.firewallState('nftables', host.ns)).ports.filter((p) => p.containerIp === ipB).length, 1);

  await ctl.disconnect('td1', b.name);
  // at once: b has no interface, address or route on the network
  const inB = await native.listLinks(b.netns);
  t.false(
    inB.some((l) => l.name === 'eth0'),
    'the interface name is free',
  );
  t.false(
    inB.some((l) => l.addresses.some((x) => x.startsWith(`${ipB}/`))),
    'no address on the network',
  );
  t.false(
    inB.some((l) => l.up && l.name !== 'lo'),
    'nothing up but lo',
  );
  t.false(await pings(a.netns, ipB), 'no traffic reaches the old address');
  t.is((await native.firewallState('nftables', host.ns)).ports.filter((p) => p.containerIp === ipB).length, 0, 'its published port is gone');

  // the same name and address, at once
  const again = await ctl.connect('td1', b.name, { ip: ipB });
  t.is(again.inspect().IPv4Address, `${ipB}/24`);
  t.true((await native.listLinks(b.netns)).some((l) => l.name === 'eth0' && l.addresses.includes(`${ipB}/24`)));
  t.true(await reaches(a.netns, ipB), 'a reaches b again at the same address');

  t.deepEqual(await drained(host.ns), [], 'no retired device after a quiet second');
  t.false((await native.listLinks(b.netns)).some((l) => l.name.startsWith('cnmg')), 'the sandbox end went with its pair');
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeNetwork('td1');
  t.deepEqual(await drained(host.ns), []);
  await ctl.close();
});

test.serial('sandbox rm: the old sandbox stops answering at once, its address serves a new sandbox at once, and no device is left', async (t) => {
  const ctl = await host.open();
  const { a, b, ipB } = await twoOnANetwork(ctl, 'td2', '10.62.0.0/24');
  t.true(await reaches(a.netns, ipB));
  const vethB = b.inspect().Networks.td2!.EndpointID;
  await ctl.removeSandbox(b.name);
  t.false(await native.netnsExists(b.netns));
  t.false(await pings(a.netns, ipB), 'the deleted netns does not answer for its address');
  // a new sandbox with that address: it is the one that answers
  const c = await ctl.createSandbox({ name: host.name('td2-c'), net: 'td2', ip: ipB });
  t.true(await reaches(a.netns, ipB));
  const neigh = (await native.listLinks(c.netns)).find((l) => l.name === 'eth0')!;
  t.is(neigh.mac, c.inspect().Networks.td2!.MacAddress);
  t.deepEqual(await drained(host.ns), [], `no retired device after a quiet second (endpoint ${vethB.slice(0, 12)})`);
  t.false((await native.listLinks(host.ns)).some((l) => l.name === `veth${vethB.slice(0, 9)}`), 'its host end is gone');
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(c.name);
  await ctl.removeNetwork('td2');
  await ctl.close();
});

test.serial('network rm: its bridge is out of use at once (the same bridge name and subnet serve a new network at once); nothing is left', async (t) => {
  const ctl = await host.open();
  const opts = { 'com.docker.network.bridge.name': 'br-td3' };
  await ctl.createNetwork({ name: 'td3', ipam: [{ subnet: '10.63.0.0/24' }], options: opts });
  await ctl.removeNetwork('td3');
  const links = await native.listLinks(host.ns);
  t.false(
    links.some((l) => l.name === 'br-td3'),
    'the bridge name is free',
  );
  t.false(
    links.some((l) => l.addresses.some((x) => x.startsWith('10.63.0.1/'))),
    'the gateway address is gone',
  );
  await ctl.createNetwork({ name: 'td3', ipam: [{ subnet: '10.63.0.0/24' }], options: opts });
  const a = await ctl.createSandbox({ name: host.name('td3-a'), net: 'td3' });
  t.true(await reaches(a.netns, '10.63.0.1'), 'the new bridge answers for the gateway');
  await ctl.removeSandbox(a.name);
  await ctl.removeNetwork('td3');
  t.deepEqual(await drained(host.ns), []);
  await ctl.close();
});

test.serial('a burst of 200 concurrent detaches drains in bounded time', async (t) => {
  const ctl = await host.open();
  await ctl.createNetwork({ name: 'seed4', internal: true, ipam: [{ subnet: '10.64.0.0/16' }] });
  await ctl.createNetwork({ name: 'td4', ipam: [{ subnet: '10.65.0.0/16' }] });
  const names = Array.from({ length: 200 }, (_, i) => host.name(`td4-${i}`));
  for (const n of names) await ctl.createSandbox({ name: n, net: 'seed4' });
  for (const n of names) await ctl.connect('td4', n);
  const t0 = performance.now();
  await Promise.all(names.map((n) => ctl.disconnect('td4', n)));
  const returned = performance.now() - t0;
  const left = await drained(host.ns, 5000);
  const total = performance.now() - t0;
  t.deepEqual(left, []);
  t.log(`200 detaches returned in ${returned.toFixed(0)} ms, their devices gone ${total.toFixed(0)} ms after the first`);
  t.true(total < 5000);
  for (const n of names) await ctl.removeSandbox(n);
  await ctl.removeNetwork('td4');
  await ctl.removeNetwork('seed4');
  t.deepEqual(await drained(host.ns), []);
  await ctl.close();
});

test.serial('a process killed between its detach and its reap: the next command reconciles and deletes what it retired', async (t) => {
  const g = ['--host-netns', host.ns, '--state-dir', host.stateDir];
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.66.0.0/24', 'td5']).code, 0);
  const sb = host.name('td5-a');
  t.is(cnm([...g, 'sandbox', 'create', '--net', 'td5', sb]).code, 0);
  // dies right after the commit: the pair is retired, the grave key written, no reap
  const r = cnm([...g, 'network', 'disconnect', 'td5', sb], { CNM_FAULT: 'disconnect.commit:crash' });
  t.not(r.code, 0, `${BIN} should have crashed`);
  t.true((await graves(host.ns)).length > 0, 'the retired pair is left');
  // a read-only command does not reconcile; the next one that changes something does
  t.is(cnm([...g, 'network', 'ls']).code, 0);
  t.true((await graves(host.ns)).length > 0);
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.67.0.0/24', 'td5b']).code, 0);
  t.deepEqual(await graves(host.ns), []);
  t.is(cnm([...g, 'sandbox', 'rm', sb]).code, 0);
  t.is(cnm([...g, 'network', 'rm', 'td5', 'td5b']).code, 0);
  t.deepEqual(await drained(host.ns), []);
});
