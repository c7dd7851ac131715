// Firewall benchmarks, per backend: network create with NAT, attach with one
// published port, the cost of one more mapping at 0, 1 000 and 10 000 existing,
// and of one more network with direct-access protection (a subnet per family and
// a trusted interface) at 0, 100 and 1 000 such networks.
import { NetworkController, native } from '../dist/index.js';
import { summarize } from './stats.js';

const now = () => performance.now();

async function time(fn) {
  const t = now();
  await fn();
  return now() - t;
}

function mapping(i) {
  // distinct host ports and container addresses; nothing listens, only the rule cost counts
  return {
    proto: 'tcp',
    hostPort: 1024 + (i % 60000),
    hostIp: i >= 60000 ? '127.0.0.2' : undefined,
    containerIp: `10.250.${(i >> 8) & 255}.${i & 255}`,
    containerPort: 80,
    bridge: 'cnm0',
    tag: `bench${i}`,
  };
}

function protectedNetwork(i) {
  return {
    bridge: `bnp${i}`,
    subnets: [`10.${100 + (i >> 8)}.${i & 255}.0/24`],
    subnets6: [`fd00:${(i + 1).toString(16)}::/64`],
    masquerade: true,
    icc: true,
    internal: false,
    tag: `bnet${i}`,
    mode4: 'nat',
    mode6: 'nat',
    protect: true,
    trusted: ['eth9'],
  };
}

export async function firewallBench({ backend, tag, stateDir, rows, sizes = [0, 1000, 10000], networks = [0, 100, 1000], attaches = 100 }) {
  const hostNs = `${tag}-fw-${backend}`;
  await native.netnsCreate(hostNs);
  const names = [];
  try {
    const ctl = await NetworkController.open({ stateDir: `${stateDir}/${backend}`, hostNetns: hostNs, firewall: backend });
    // the host set-up (firewall base rules, predefined networks) is not what is timed
    await ctl.ready();
    const create = [];
    for (let i = 0; i < 20; i++) create.push(await time(() => ctl.createNetwork({ name: `nat${i}`, ipam: [{ subnet: `10.210.${i}.0/24` }] })));
    rows.push(summarize(`[${backend}] network create with NAT`, create, { target: '<= 3 ms p50' }));
    for (let i = 0; i < 20; i++) await ctl.removeNetwork(`nat${i}`);

    await ctl.createNetwork({ name: 'seed', ipam: [{ subnet: '10.211.0.0/16' }] });
    await ctl.createNetwork({ name: 'pub', ipam: [{ subnet: '10.212.0.0/16' }] });
    for (let i = 0; i < attaches; i++) {
      names.push(`${hostNs}-s${i}`);
      await ctl.createSandbox({ name: names[i], net: 'seed' });
    }
    const attach = [];
    for (const n of names) attach.push(await time(() => ctl.connect('pub', n, { ports: [{ containerPort: 80 }] })));
    rows.push(summarize(`[${backend}] attach with one published port`, attach, { target: '<= 2 ms p50' }));
    for (const n of names) await ctl.disconnect('pub', n);

    // one more mapping when N already exist: add then remove one, repeatedly
    const p50s = [];
    let loaded = 0;
    for (const n of sizes) {
      while (loaded < n) {
        const chunk = Math.min(1000, n - loaded);
        await native.applyFirewall({ backend, netns: hostNs, addPorts: Array.from({ length: chunk }, (_, i) => mapping(loaded + i)) });
        loaded += chunk;
      }
      const samples = [];
      const removals = [];
      for (let i = 0; i < 40; i++) {
        const m = mapping(100000 + i);
        m.hostIp = '127.0.0.3';
        samples.push(await time(() => native.applyFirewall({ backend, netns: hostNs, addPorts: [m] })));
        removals.push(await time(() => native.applyFirewall({ backend, netns: hostNs, removePorts: [m] })));
      }
      const row = summarize(`[${backend}] one more mapping at ${n} existing`, samples);
      const gone = summarize(`[${backend}] one mapping removed at ${n} existing`, removals);
      p50s.push([row.p50, gone.p50]);
      if (n === sizes[sizes.length - 1]) {
        row.target = `ratio ${(row.p50 / p50s[0][0]).toFixed(2)} (<= 1.5)`;
        gone.target = `ratio ${(gone.p50 / p50s[0][1]).toFixed(2)}`;
      }
      rows.push(row, gone);
    }
    await native.applyFirewall({ backend, netns: hostNs, removePorts: Array.from({ length: loaded }, (_, i) => mapping(i)) });

    // one more protected network when N exist: its protection elements (or rules) added then removed
    const netP50s = [];
    let nets = 0;
    for (const n of networks) {
      while (nets < n) {
        const chunk = Math.min(100, n - nets);
        await native.applyFirewall({ backend, netns: hostNs, addNetworks: Array.from({ length: chunk }, (_, i) => protectedNetwork(nets + i)) });
        nets += chunk;
      }
      const samples = [];
      for (let i = 0; i < 40; i++) {
        const net = protectedNetwork(1500 + i);
        samples.push(await time(() => native.applyFirewall({ backend, netns: hostNs, addNetworks: [net] })));
        await native.applyFirewall({ backend, netns: hostNs, removeNetworks: [net] });
      }
      const row = summarize(`[${backend}] one more protected network at ${n} existing`, samples);
      netP50s.push(row.p50);
      row.target = n === networks[networks.length - 1] ? `ratio ${(row.p50 / netP50s[0]).toFixed(2)} (<= 1.3)` : '';
      rows.push(row);
    }
    await native.applyFirewall({ backend, netns: hostNs, removeNetworks: Array.from({ length: nets }, (_, i) => protectedNetwork(i)) });
    await ctl.close();
  } finally {
    await native.netnsDeleteMany([...names, hostNs]);
  }
}
