// The `peers` section (`--peers-sizes 50,200`): the same container sequence through
// cnm and through each peer that is installed, interleaved container by container,
// each on an isolated host netns of its own. A "container" is a netns the runtime
// made (not timed); then:
//   attach          cnm: createSandbox on the runtime's netns | CNI bridge ADD | netavark setup
//   attach + port   the same with one published TCP port (CNI: bridge + portmap)
//   detach          cnm: disconnect | CNI DEL | netavark teardown
//   removal         cnm: sandbox rm | CNI DEL | netavark teardown; then the runtime deletes the netns
// Peers: the CNI reference plugins (Debian containernetworking-plugins: bridge with
// ipMasq, host-local, portmap), exec'd per container as runtimes do, and netavark
// (Debian netavark, /usr/lib/podman/netavark) with its JSON network options. Both
// are exec'd from a worker living in their host netns (bench/peer-worker.js), as a
// runtime execs them from the host. dockerd is compared in the daemon section.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { NetworkController, native } from '../dist/index.js';

const WORKER = fileURLToPath(new URL('./peer-worker.js', import.meta.url));
const CNI = '/usr/lib/cni';
const NETAVARK = '/usr/lib/podman/netavark';

/** A peer-worker process in `hostNs`: requests answered in order. */
function startWorker(hostNs) {
  const child = spawn('ip', ['netns', 'exec', hostNs, process.execPath, WORKER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = [];
  createInterface({ input: child.stdout }).on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  return {
    run(req) {
      return new Promise((resolve) => {
        waiting.push(resolve);
        child.stdin.write(`${JSON.stringify(req)}\n`);
      });
    },
    stop() {
      child.stdin.end();
      child.kill();
    },
  };
}

function check(r, what) {
  if (!r.ok) throw new Error(`${what} failed: ${r.err || r.out}`);
  return r;
}

const ipOf = (base, i) => `${base}.${(i + 2) >> 8}.${(i + 2) & 255}`;

/** The CNI environment of one call. */
const cniEnv = (cmd, c) => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: `c${c.key}`, CNI_NETNS: `/run/netns/${c.netns}`, CNI_IFNAME: 'eth0', CNI_PATH: CNI });

/** The portmap plugin's configuration for container `c`, chained after the bridge's result. */
const portmapConf = (c, prevResult) => ({
  cniVersion: '1.0.0',
  name: 'pn',
  type: 'portmap',
  capabilities: { portMappings: true },
  runtimeConfig: { portMappings: [{ hostPort: c.port, containerPort: 80, protocol: 'tcp' }] },
  prevResult,
});

/** netavark's network options for container `c`. */
const netavarkOptions = (c) => ({
  container_id: String(c.key).padStart(64, '0'),
  container_name: `c${c.key}`,
  networks: { pn: { interface_name: 'eth0', static_ips: [ipOf('10.235', c.i)] } },
  network_info: {
    pn: {
      name: 'pn',
      id: 'ab'.repeat(32),
      driver: 'bridge',
      network_interface: 'podman9',
      subnets: [{ subnet: '10.235.0.0/16', gateway: '10.235.0.1' }],
      ipv6_enabled: false,
      internal: false,
      dns_enabled: false,
    },
  },
  port_mappings: c.port ? [{ host_ip: '', container_port: 80, host_port: c.port, range: 1, protocol: 'tcp' }] : [],
});

async function time(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function cniPeer(worker, dir) {
  const bridge = { cniVersion: '1.0.0', name: 'pn', type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', subnet: '10.234.0.0/16', dataDir: join(dir, 'ipam') } };
  const results = new Map();
  const del = async (c) => {
    let ms = 0;
    if (c.port) ms += check(await worker.run({ program: `${CNI}/portmap`, env: cniEnv('DEL', c), stdin: JSON.stringify(portmapConf(c, results.get(c.key))) }), 'portmap DEL').ms;
    ms += check(await worker.run({ program: `${CNI}/bridge`, env: cniEnv('DEL', c), stdin: JSON.stringify(bridge) }), 'bridge DEL').ms;
    results.delete(c.key);
    return ms;
  };
  return {
    name: 'CNI bridge',
    async attach(c) {
      const r = check(await worker.run({ program: `${CNI}/bridge`, env: cniEnv('ADD', c), stdin: JSON.stringify(bridge) }), 'bridge ADD');
      results.set(c.key, JSON.parse(r.out));
      let ms = r.ms;
      if (c.port) ms += check(await worker.run({ program: `${CNI}/portmap`, env: cniEnv('ADD', c), stdin: JSON.stringify(portmapConf(c, results.get(c.key))) }), 'portmap ADD').ms;
      return ms;
    },
    detach: del,
    remove: del,
  };
}

function netavarkPeer(worker, dir) {
  const run = async (cmd, c) => check(await worker.run({ program: NETAVARK, args: ['--config', dir, cmd, `/run/netns/${c.netns}`], stdin: JSON.stringify(netavarkOptions(c)) }), `netavark ${cmd}`).ms;
  return { name: 'netavark', attach: (c) => run('setup', c), detach: (c) => run('teardown', c), remove: (c) => run('teardown', c) };
}

async function cnmPeer(hostNs, stateDir) {
  const ctl = await NetworkController.open({ hostNetns: hostNs, stateDir });
  await ctl.ready();
  await ctl.createNetwork({ name: 'pn', ipam: [{ subnet: '10.233.0.0/16' }] });
  return {
    name: 'cnm',
    ctl,
    attach: (c) => time(() => ctl.createSandbox({ name: `${c.netns}-c`, netnsPath: `/run/netns/${c.netns}`, net: 'pn', ports: c.port ? [{ containerPort: 80, hostPort: c.port }] : undefined })),
    detach: (c) => time(() => ctl.disconnect('pn', `${c.netns}-c`)),
    remove: (c) => time(() => ctl.removeSandbox(`${c.netns}-c`)),
  };
}

export async function peersBench({ tag, stateDir, rows, summarize, sizes = [50, 200] }) {
  const hosts = { cnm: `${tag}-pcnm`, cni: `${tag}-pcni`, nv: `${tag}-pnv` };
  const dir = mkdtempSync(join(tmpdir(), 'cnm-peers-'));
  const peers = [];
  const workers = [];
  const made = new Set();
  try {
    await native.netnsCreate(hosts.cnm);
    made.add(hosts.cnm);
    peers.push(await cnmPeer(hosts.cnm, join(stateDir, 'peers')));
    if (existsSync(`${CNI}/bridge`) && existsSync(`${CNI}/host-local`) && existsSync(`${CNI}/portmap`)) {
      await native.netnsCreate(hosts.cni);
      made.add(hosts.cni);
      const w = startWorker(hosts.cni);
      workers.push(w);
      peers.push(cniPeer(w, join(dir, 'cni')));
    } else {
      console.log('[peers] CNI plugins not installed (apt-get install containernetworking-plugins): skipped');
    }
    if (existsSync(NETAVARK)) {
      await native.netnsCreate(hosts.nv);
      made.add(hosts.nv);
      const w = startWorker(hosts.nv);
      workers.push(w);
      peers.push(netavarkPeer(w, join(dir, 'netavark')));
    } else {
      console.log('[peers] netavark not installed (apt-get install netavark): skipped');
    }
    let key = 0;
    for (const n of sizes) {
      for (const withPort of [false, true]) {
        // the runtime's namespaces: not timed
        const cs = peers.map((p, pi) => Array.from({ length: n }, (_, i) => ({ i, key: key++, netns: `${tag}-p${pi}-${n}-${withPort ? 'p' : 'm'}${i}`, port: withPort ? 20000 + i : 0 })));
        for (const list of cs) for (const c of list) await native.netnsCreate(c.netns);
        const times = peers.map(() => ({ attach: [], down: [] }));
        for (let i = 0; i < n; i++) for (const [pi, p] of peers.entries()) times[pi].attach.push(await p.attach(cs[pi][i]));
        for (let i = 0; i < n; i++) {
          for (const [pi, p] of peers.entries()) {
            const c = cs[pi][i];
            if (withPort) {
              // removal: the peer's part, then the runtime deletes the namespace
              const t = performance.now();
              await p.remove(c);
              await native.netnsDelete(c.netns);
              times[pi].down.push(performance.now() - t);
            } else {
              times[pi].down.push(await p.detach(c));
            }
          }
        }
        const ops = withPort ? ['attach + 1 port', 'removal (one endpoint, with the netns delete)'] : ['attach (masquerade on)', 'detach'];
        for (const [k, op] of [['attach', ops[0]], ['down', ops[1]]]) {
          const base = summarize(`[peers] ${op}, N=${n}: cnm`, times[0][k]);
          rows.push(base);
          for (const [pi, p] of peers.entries()) {
            if (pi === 0) continue;
            const r = summarize(`[peers] ${op}, N=${n}: ${p.name}`, times[pi][k]);
            r.target = `cnm/${p.name} = ${(base.p50 / r.p50).toFixed(3)} (${(r.p50 / base.p50).toFixed(1)}x faster)`;
            rows.push(r);
          }
        }
        // what is left of this round (not timed)
        if (!withPort) for (const c of cs[0]) await peers[0].ctl.removeSandbox(`${c.netns}-c`).catch(() => undefined);
        await native.netnsDeleteMany(cs.flat().map((c) => c.netns)).catch(() => undefined);
      }
    }
  } finally {
    for (const w of workers) w.stop();
    await peers[0]?.ctl.close();
    await native.netnsDeleteMany([...made]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
