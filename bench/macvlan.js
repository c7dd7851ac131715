// The `macvlan` section: netcore's macvlan endpoint (one link born inside the
// sandbox netns, on a parent of the host netns) beside its veth endpoint (a pair
// on a bridge), both timed as native calls in the same run. The parent is a veth
// whose peer is on a bridge of a "LAN" netns of this bench's own.
import { execFileSync } from 'node:child_process';
import { native } from '../dist/index.js';

const ip = (...a) => execFileSync('ip', a);

export async function macvlanBench({ tag, rows, summarize, n = 100 }) {
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
  } finally {
    await native.netnsDeleteMany([...names, ...vnames, host, lan]);
  }
}
