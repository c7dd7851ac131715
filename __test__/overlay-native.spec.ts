// The kernel side of overlay networks on its own: two host netns on a simulated
// LAN, a bridge and a VXLAN device on each, a sandbox on each, and peers
// programmed by hand (no learning): traffic crosses hosts only through them.
import test from 'ava';
import { native } from '../ts/native.js';
import { isolatedHost, pings } from './helpers/host.js';
import { simulatedLan as underlay } from '../ts/sim/lan.js';

const VNI = 4200;
let cleanup: () => Promise<void>;

test.after.always(async () => {
  await cleanup?.();
});

test('two hosts, one VXLAN segment: peers programmed from outside carry ping both ways; removed, they stop', async (t) => {
  const a = await isolatedHost('ovna');
  const b = await isolatedHost('ovnb');
  const sw = a.name('sw');
  cleanup = async () => {
    await native.netnsDeleteMany([sw]).catch(() => undefined);
    await a.cleanup();
    await b.cleanup();
  };
  const lan = await underlay(sw);
  await lan.plug(a.ns, '192.168.77.1');
  await lan.plug(b.ns, '192.168.77.2');
  const hosts = [
    { h: a, vtep: '192.168.77.1', ip: '10.201.0.2' },
    { h: b, vtep: '192.168.77.2', ip: '10.201.0.3' },
  ];
  const made = [];
  for (const { h, vtep, ip } of hosts) {
    await native.ensureBridge({ netns: h.ns, name: 'ov0', mtu: 1450, up: true });
    const vx = await native.ensureVxlan({ netns: h.ns, name: 'vx0', vni: VNI, local: vtep, master: 'ov0', mtu: 1450 });
    t.true(vx.created);
    t.is(vx.mtu, 1450);
    // again: adopted, not made twice
    t.false((await native.ensureVxlan({ netns: h.ns, name: 'vx0', vni: VNI, local: vtep, master: 'ov0' })).created);
    const sb = h.name('sb');
    await native.netnsCreate(sb);
    const v = await native.attachVeth({ hostNetns: h.ns, sandboxNetns: sb, hostIfname: 'vethov0', master: 'ov0', ifname: 'eth0', mtu: 1450, addresses: [`${ip}/24`] });
    made.push({ sb, mac: v.mac, ip, vtep });
  }
  const [sa, sb] = made as [(typeof made)[0], (typeof made)[0]];
  t.false(pings(sa.sb, sb.ip), 'no peers, no traffic: nothing is learnt');
  const peerOf = (m: typeof sa) => ({ mac: m.mac, ips: [m.ip], vtep: m.vtep });
  await native.setPeers({ netns: a.ns, device: 'vx0', add: [peerOf(sb)] });
  await native.setPeers({ netns: b.ns, device: 'vx0', add: [peerOf(sa)] });
  t.deepEqual(await native.listPeers(a.ns, 'vx0'), [peerOf(sb)]);
  t.deepEqual(await native.listPeers(b.ns, 'vx0'), [peerOf(sa)]);
  t.true(pings(sa.sb, sb.ip), 'A -> B across the tunnel');
  t.true(pings(sb.sb, sa.ip), 'B -> A');
  // replace moves a peer to another VTEP; remove takes both entries
  await native.setPeers({ netns: a.ns, device: 'vx0', add: [{ ...peerOf(sb), vtep: '192.168.77.9' }] });
  t.is((await native.listPeers(a.ns, 'vx0'))[0]!.vtep, '192.168.77.9');
  t.false(pings(sa.sb, sb.ip), 'a wrong VTEP carries nothing');
  await native.setPeers({ netns: a.ns, device: 'vx0', remove: [{ ...peerOf(sb), vtep: '192.168.77.9' }] });
  t.deepEqual(await native.listPeers(a.ns, 'vx0'), []);
  // removing what is gone is fine; a bad MAC or VNI is a coded error
  await native.setPeers({ netns: a.ns, device: 'vx0', remove: [peerOf(sb)] });
  const bad = await t.throwsAsync(native.setPeers({ netns: a.ns, device: 'vx0', add: [{ mac: 'zz', ips: [], vtep: '192.168.77.2' }] }));
  t.is((bad as { code?: string }).code, 'ERR_INVALID_ARGUMENT');
  const vni = await t.throwsAsync(native.ensureVxlan({ netns: a.ns, name: 'vx1', vni: 1 << 24, local: '192.168.77.1' }));
  t.is((vni as { code?: string }).code, 'ERR_INVALID_ARGUMENT');
  const other = await t.throwsAsync(native.ensureVxlan({ netns: a.ns, name: 'vx0', vni: VNI + 1, local: '192.168.77.1' }));
  t.is((other as { code?: string }).code, 'ERR_INVALID_ARGUMENT', 'vx0 exists with another VNI');
});
