// The `macvlan` section: netcore's macvlan endpoint (one link born inside the
// sandbox netns, on a parent of the host netns) beside its veth endpoint (a pair
// on a bridge), both timed as native calls in the same run; then the same through
// the controller (a connect to a macvlan network beside a connect to a bridge
// network, interleaved). The parent is a veth whose peer is on a bridge of a
// "LAN" netns of this bench's own.
import { execFileSync } from 'node:child_process';
import { NetworkController, native } from '../dist/index.js';

const ip = (...a) => execFileSync('ip', a);

export async function macvlanBench({ tag, stateDir, rows, summarize, n = 100 }) {
  const host = `${tag}-mvh`;
  const lan = `${tag}-mvlan`;
  await native.netnsCreate(host);
  await native.netnsCreate(lan);
  ip('-n', lan, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', lan, 'link', 'set', 'br0', 'up');
  ip('-n', host, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'p-host', 'netns', lan);
  ip('-n', lan, 'link', 'set', 'p-host', 'master', 'br0', 'up');
  ip('-n', host, 'link', 'set', 'lan0', 'up');
  await native.ensureBridge({ netns: host, name: 'brb', addresses: ['10.160.0.1/16'] });
  const names = Array.from({ length: n }, (_, i) => `${tag}-mv${i}`);
  const vnames = Array.from({ length: n }, (_, i) => `${tag}-vv${i}`);
  try {
    for (const s of [...names, ...vnames]) await native.netnsCreate(s);
    const mac = [];
    const veth = [];
    // interleaved, so that both see the same machine
    for (let i = 0; i < n; i++) {
      let t = performance.now();
      await native.attachMacvlan({ hostNetns: host, sandboxNetns: names[i], parent: 'lan0', ifname: 'eth0', addresses: [`192.168.${100 + (i >> 8)}.${(i % 250) + 2}/16`], gateway: '192.168.0.1' });
      mac.push(performance.now() - t);
      t = performance.now();
      await native.attachVeth({ hostNetns: host, sandboxNetns: vnames[i], hostIfname: `vb${i}`, master: 'brb', ifname: 'eth0', addresses: [`10.160.${i >> 8}.${(i % 250) + 2}/16`], gateway: '10.160.0.1' });
      veth.push(performance.now() - t);
    }
    rows.push(summarize(`macvlan endpoint attach, native (N=${n})`, mac, { target: '<= 1 ms p50' }));
    rows.push(summarize(`veth endpoint attach on a bridge, native, same run (N=${n})`, veth));
    await native.netnsDeleteMany([...names, ...vnames]);
    await driverLevel({ tag, stateDir, rows, summarize, n, host });
  } finally {
    const mine = (await native.netnsList()).filter((x) => x.startsWith(`${tag}-mv`) || x.startsWith(`${tag}-vv`) || x.startsWith(`${tag}-md`));
    await native.netnsDeleteMany([...mine, host, lan]);
  }
}

/** Connects through the controller: to a macvlan network and to a bridge network, interleaved. */
async function driverLevel({ tag, stateDir, rows, summarize, n, host }) {
  const ctl = await NetworkController.open({ stateDir: `${stateDir}/macvlan`, hostNetns: host });
  try {
    await ctl.ready();
    await ctl.createNetwork({ name: 'mvseed', internal: true, ipam: [{ subnet: '10.161.0.0/16' }] });
    await ctl.createNetwork({ name: 'mvlan', driver: 'macvlan', options: { parent: 'lan0' }, ipam: [{ subnet: '192.168.0.0/16', gateway: '192.168.0.1' }] });
    await ctl.createNetwork({ name: 'mvbr', ipam: [{ subnet: '10.162.0.0/16' }] });
    const mac = [];
    const br = [];
    for (let i = 0; i < n; i++) {
      const [a, b] = [`${tag}-md${i}a`, `${tag}-md${i}b`];
      await ctl.createSandbox({ name: a, net: 'mvseed' });
      await ctl.createSandbox({ name: b, net: 'mvseed' });
      let t = performance.now();
      await ctl.connect('mvlan', a);
      mac.push(performance.now() - t);
      t = performance.now();
      await ctl.connect('mvbr', b);
      br.push(performance.now() - t);
    }
    rows.push(summarize(`macvlan network connect, controller (N=${n})`, mac, { target: '<= 1 ms p50 (one link in the sandbox netns)' }));
    rows.push(summarize(`bridge network connect, controller, same run (N=${n})`, br));
  } finally {
    await ctl.close();
  }
}
