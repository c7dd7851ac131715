// `docker network create` / `rm` through the stock docker CLI against `cnm daemon`,
// timed per command (the CLI process included, as a user sees it).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../dist/index.js';
import { startDaemon } from '../dist/daemon/server.js';

function run(bin, args, env) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(bin, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`${args.join(' ')}: ${err}`))));
  });
}

/** The same docker CLI commands against a real Docker engine, run in a netns of its own. */
async function engineBench({ docker, tag, rows, summarize, n }) {
  const dockerd = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => existsSync(p));
  if (!dockerd) {
    rows.push({ name: 'Docker engine: skipped, no dockerd on this machine (apt-get install docker.io)', n: 0 });
    return undefined;
  }
  const ns = `${tag}-dockerd`;
  await native.netnsCreate(ns);
  const dir = mkdtempSync(join(tmpdir(), 'cnm-bench-dockerd-'));
  const sock = join(dir, 'docker.sock');
  // the engine lives in its own netns: its docker0 and iptables rules stay there
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, dockerd, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'), '-H', `unix://${sock}`], {
    stdio: 'ignore',
  });
  try {
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: mkdtempSync(join(tmpdir(), 'cnm-bench-dc-')) };
    await run(docker, ['network', 'ls'], env);
    const create = [];
    const rm = [];
    for (let i = 0; i < n; i++) create.push(await run(docker, ['network', 'create', '--subnet', `10.222.${i}.0/24`, `en${i}`], env));
    for (let i = 0; i < n; i++) rm.push(await run(docker, ['network', 'rm', `en${i}`], env));
    const c = summarize('docker network create via Docker engine (same CLI, same run)', create);
    rows.push(c);
    rows.push(summarize('docker network rm via Docker engine (same CLI, same run)', rm));
    return c.p50;
  } finally {
    try {
      process.kill(Number(readFileSync(join(dir, 'pid'), 'utf8')), 'SIGTERM');
    } catch {
      child.kill('SIGTERM');
    }
    await new Promise((r) => child.once('exit', r));
    await native.netnsDelete(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function daemonBench({ tag, stateDir, rows, summarize, n = 20 }) {
  const docker = ['/usr/local/bin/docker', '/usr/bin/docker'].find((p) => existsSync(p));
  if (!docker) {
    rows.push({ name: 'docker network create via cnm daemon: skipped, no docker CLI', n: 0 });
    return;
  }
  const hostNs = `${tag}-daemon`;
  await native.netnsCreate(hostNs);
  const sock = join(mkdtempSync(join(tmpdir(), 'cnm-bench-d-')), 'cnm.sock');
  const d = await startDaemon({ socket: sock, controller: { stateDir: `${stateDir}/daemon`, hostNetns: hostNs } });
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: mkdtempSync(join(tmpdir(), 'cnm-bench-dc-')) };
  try {
    await run(docker, ['network', 'ls'], env);
    const create = [];
    const rm = [];
    for (let i = 0; i < n; i++) create.push(await run(docker, ['network', 'create', '--subnet', `10.220.${i}.0/24`, `dn${i}`], env));
    for (let i = 0; i < n; i++) rm.push(await run(docker, ['network', 'rm', `dn${i}`], env));
    const mine = summarize('docker network create via cnm daemon (CLI process included)', create);
    rows.push(mine);
    rows.push(summarize('docker network rm via cnm daemon (CLI process included)', rm));
    // the same requests without the CLI process: what the daemon itself costs
    const api = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await d.controller.createNetwork({ name: `dx${i}`, ipam: [{ subnet: `10.221.${i}.0/24` }] });
      api.push(performance.now() - t);
    }
    rows.push(summarize('network create behind the daemon (no CLI process)', api));
    await d.close();
    const engine = await engineBench({ docker, tag, rows, summarize, n });
    if (engine !== undefined) mine.target = `engine/cnm ${(engine / mine.p50).toFixed(1)}x (>= 20x)`;
  } finally {
    await d.close().catch(() => undefined);
    await native.netnsDelete(hostNs);
  }
}
