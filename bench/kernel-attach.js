// The kernel's own cost of the attach the teardown section times through cnm:
// the same shape (N namespaces, one veth each onto one bridge of the host netns,
// an address and a default route inside) made by netcore's attachVeth alone,
// without store, IPAM or firewall. What grows with N here grows in the kernel
// (bridge port loops, per-device lists), whatever cnm does around it.
import { native } from '../dist/index.js';

export async function kernelAttach({ tag, n, time }) {
  const host = `${tag}-kah`;
  const names = Array.from({ length: n }, (_, i) => `${tag}-ka${i}`);
  await native.netnsCreate(host);
  try {
    await native.ensureBridge({ netns: host, name: 'brka', addresses: ['10.183.0.1/16'], up: true });
    for (const s of names) await native.netnsCreate(s);
    const ms = [];
    for (let i = 0; i < n; i++) {
      const a = 2 + i;
      const spec = { hostNetns: host, sandboxNetns: names[i], hostIfname: `vka${i}`, master: 'brka', ifname: 'eth0', mtu: null, mac: null, addresses: [`10.183.${a >> 8}.${a & 255}/16`], gateway: '10.183.0.1', gateway6: null, hairpin: false };
      ms.push(await time(() => native.attachVeth(spec)));
    }
    return ms;
  } finally {
    await native.netnsDeleteMany([...names, host]).catch(() => undefined);
  }
}
