// The `teardown` section (`--teardown-n N`, default 1000): on a host netns of
// its own, N sandboxes (each on an internal seed network, eth0) attach to one
// network (eth1). Reported: the attach p50 of the first 10 beside the last 10
// (flat at scale), detach / sandbox rm / network rm as the caller sees them,
// and the burst: N detaches at once, the time until they all returned and until
// the kernel holds no retired device (the reaper's drain). Then the same attaches
// made by the kernel alone (kernel-attach.js): how much of the growth is the kernel's.
import { NetworkController, native } from '../dist/index.js';
import { isGrave } from '../dist/reaper.js';
import { kernelAttach } from './kernel-attach.js';

const now = () => performance.now();
async function time(fn) {
  const t = now();
  await fn();
  return now() - t;
}

async function drain(host) {
  for (;;) {
    const left = (await native.listLinks(host)).filter((l) => isGrave(l.group)).length;
    if (left === 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function teardownBench({ tag, stateDir, rows, summarize, n = 1000 }) {
  const host = `${tag}-tdh`;
  await native.netnsCreate(host);
  const ctl = await NetworkController.open({ hostNetns: host, stateDir: `${stateDir}/teardown` });
  const names = Array.from({ length: n }, (_, i) => `${tag}-td${i}`);
  try {
    await ctl.ready();
    await ctl.createNetwork({ name: 'tdseed', internal: true, ipam: [{ subnet: '10.180.0.0/16' }] });
    await ctl.createNetwork({ name: 'tdnet', ipam: [{ subnet: '10.181.0.0/16' }] });
    for (const s of names) await ctl.createSandbox({ name: s, net: 'tdseed' });
    const attach = [];
    for (const s of names) attach.push(await time(() => ctl.connect('tdnet', s)));
    const first = summarize(`[teardown] attach, endpoints 1-10 of ${n} on the network`, attach.slice(0, 10));
    const last = summarize(`[teardown] attach, endpoints ${n - 9}-${n} of ${n} on the network`, attach.slice(-10));
    last.target = `${(last.p50 / first.p50).toFixed(2)}x the first 10 (target <= 1.3x)`;
    rows.push(first, last);
    rows.push(summarize(`[teardown] attach, all ${n}`, attach, { target: '<= 1.5 ms p50 (masquerade on)' }));

    // one at a time: what a caller waits for
    const k = Math.min(100, n);
    const detach = [];
    for (const s of names.slice(0, k)) detach.push(await time(() => ctl.disconnect('tdnet', s)));
    rows.push(summarize(`[teardown] detach (one at a time, N=${n})`, detach, { target: '<= 2 ms p50' }));
    await drain(host);
    // the burst: every other endpoint at once
    const rest = names.slice(k);
    const t0 = now();
    await Promise.all(rest.map((s) => ctl.disconnect('tdnet', s)));
    const returned = now() - t0;
    await drain(host);
    const drained = now() - t0;
    rows.push(summarize(`[teardown] burst of ${rest.length} detaches at once: all returned`, [returned]));
    rows.push(summarize(`[teardown] burst of ${rest.length} detaches: no retired device left`, [drained], { target: 'bounded (report)' }));

    const sbRm = [];
    for (const s of names.slice(0, k)) sbRm.push(await time(() => ctl.removeSandbox(s)));
    rows.push(summarize(`[teardown] sandbox rm (one endpoint, N=${n})`, sbRm, { target: '<= 2 ms p50' }));
    for (const s of names.slice(k)) await ctl.removeSandbox(s);

    const netRm = [];
    for (let i = 0; i < 30; i++) await ctl.createNetwork({ name: `tdrm${i}`, ipam: [{ subnet: `10.182.${i}.0/24` }] });
    for (let i = 0; i < 30; i++) netRm.push(await time(() => ctl.removeNetwork(`tdrm${i}`)));
    rows.push(summarize('[teardown] network rm', netRm, { target: '<= 3 ms p50' }));
    const t1 = now();
    await drain(host);
    await drain(host);
    rows.push(summarize('[teardown] after the last rm: no retired device left', [now() - t1]));
  } finally {
    await ctl.close();
    await native.netnsDeleteMany([...names, host]).catch(() => undefined);
  }
  // the same growth in the kernel alone: the floor of the flat-at-scale target
  const raw = await kernelAttach({ tag, n, time });
  const kFirst = summarize(`[teardown] kernel alone (attachVeth), endpoints 1-10 of ${n}`, raw.slice(0, 10));
  const kLast = summarize(`[teardown] kernel alone (attachVeth), endpoints ${n - 9}-${n} of ${n}`, raw.slice(-10));
  kLast.target = `${(kLast.p50 / kFirst.p50).toFixed(2)}x the first 10 (cnm's own part is the difference to the rows above)`;
  rows.push(kFirst, kLast);
}
