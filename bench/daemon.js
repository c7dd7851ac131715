// `docker network create` / `rm` through the stock docker CLI against `cnm daemon`,
// timed per command (the CLI process included, as a user sees it).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
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
    rows.push(summarize('docker network create via cnm daemon (CLI process included)', create, { target: 'Docker engine ~108 ms: >= 20x' }));
    rows.push(summarize('docker network rm via cnm daemon (CLI process included)', rm, { target: 'Docker engine ~214 ms' }));
    // the same requests without the CLI process: what the daemon itself costs
    const api = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await d.controller.createNetwork({ name: `dx${i}`, ipam: [{ subnet: `10.221.${i}.0/24` }] });
      api.push(performance.now() - t);
    }
    rows.push(summarize('network create behind the daemon (no CLI process)', api));
  } finally {
    await d.close();
    await native.netnsDelete(hostNs);
  }
}
