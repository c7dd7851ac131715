// `docker network create` / `rm` against `cnm daemon` and against a real Docker engine in
// the same run, three ways:
//  - through the stock docker CLI, timed per command (the CLI process included, as a user
//    sees it), next to the CLI's own floor: `docker --version` (Go start-up, no daemon
//    contact) and `docker version` (start-up + HEAD /_ping + GET /version);
//  - the same command minus that floor, for both daemons;
//  - the same Engine API requests the CLI sends, from one node:http client over the unix
//    socket, no CLI process: a fresh connection per request (what the CLI does, so the
//    main figure) and a keep-alive connection. These rows are the like-for-like
//    comparison of the daemons, so they carry the target (engine/cnm >= 20x).
// Both daemons run side by side and take turns in blocks of samples (see measure): fair to
// outside load, and each daemon is warm within its block. Turns of single samples leave
// cnm's short requests cold (a sleeping vCPU and caches): ~30% slower per request.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { native } from '../dist/index.js';
import { startDaemon } from '../dist/daemon/server.js';

// dockerd 20.10 speaks up to API 1.41; cnm accepts any version prefix
const API = '/v1.41';
const TARGET = 20;

function run(bin, args, env) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const child = spawn(bin, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`${args.join(' ')}: ${err}`))));
  });
}

/** One Engine API request over the unix socket; resolves to { ms, body }. */
export function api(socketPath, agent, method, path, body) {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers = data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const req = request({ socketPath, agent, method, path: `${API}${path}`, headers }, (res) => {
      let out = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (out += c));
      res.on('end', () => {
        const ms = performance.now() - t;
        if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${out}`));
        else resolve({ ms, body: out ? JSON.parse(out) : undefined });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** The body docker CLI 28.2.2 sends for `docker network create --subnet S NAME` at API 1.41. */
function cliBody(name, subnet) {
  return {
    Driver: 'bridge',
    Scope: '',
    IPAM: { Driver: 'default', Options: {}, Config: [{ Subnet: subnet }] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigOnly: false,
    ConfigFrom: null,
    Options: {},
    Labels: {},
    Name: name,
    CheckDuplicate: true,
  };
}

/**
 * Everything timed, CLI and HTTP client alike, against each daemon in `targets`
 * ({ sock, net, prefix }: its socket, the second octet of its subnets, its networks' name
 * prefix), the daemons taking turns in blocks of samples. Returns one set of samples per target.
 */
const BLOCK = 5;

async function measure({ docker, targets, n }) {
  const ts = targets.map((t) => ({
    ...t,
    dockerConfig: mkdtempSync(join(tmpdir(), 'cnm-bench-dc-')),
    // fresh: agent false, one connection per request as the CLI process has; keep-alive: one socket
    keepAlive: new Agent({ keepAlive: true, maxSockets: 1 }),
    out: { version: [], floor: [], cliCreate: [], cliRm: [] },
  }));
  // the daemons take turns in blocks of BLOCK samples: drift on the machine falls on both
  // alike, and within a block a daemon is warm, as one serving an orchestrator is
  const each = async (fn) => {
    for (let b = 0; b < n; b += BLOCK) {
      for (const t of ts) for (let i = b; i < Math.min(n, b + BLOCK); i++) await fn(t, i);
    }
  };
  try {
    for (const t of ts) {
      t.env = { ...process.env, DOCKER_HOST: `unix://${t.sock}`, DOCKER_CONFIG: t.dockerConfig };
      await run(docker, ['network', 'ls'], t.env);
    }
    await each(async (t) => t.out.version.push(await run(docker, ['version'], t.env)));
    // the CLI floor is sampled next to the creates, so load on the machine hits both alike
    await each(async (t, i) => {
      t.out.floor.push(await run(docker, ['--version'], t.env));
      t.out.cliCreate.push(await run(docker, ['network', 'create', '--subnet', `10.${t.net}.${i}.0/24`, `${t.prefix}c${i}`], t.env));
    });
    await each(async (t, i) => t.out.cliRm.push(await run(docker, ['network', 'rm', `${t.prefix}c${i}`], t.env)));
    for (const [mode, third] of [
      ['fresh', 100],
      ['keepAlive', 150],
    ]) {
      const agent = (t) => (mode === 'fresh' ? false : t.keepAlive);
      for (const t of ts) {
        await api(t.sock, agent(t), 'GET', '/networks');
        t.out[mode] = { create: [], rm: [], ids: [] };
      }
      await each(async (t, i) => {
        const r = await api(t.sock, agent(t), 'POST', '/networks/create', cliBody(`${t.prefix}${mode}${i}`, `10.${t.net}.${third + i}.0/24`));
        t.out[mode].create.push(r.ms);
        t.out[mode].ids.push(r.body.Id);
      });
      await each(async (t, i) => t.out[mode].rm.push((await api(t.sock, agent(t), 'DELETE', `/networks/${t.out[mode].ids[i]}`)).ms));
    }
    return ts.map((t) => t.out);
  } finally {
    for (const t of ts) {
      t.keepAlive.destroy();
      rmSync(t.dockerConfig, { recursive: true, force: true });
    }
  }
}

/**
 * What HTTP adds: the same create and rm through the daemon's socket (a fresh
 * connection each, from a client on a thread of its own, as a real client is a
 * process of its own) and straight on the daemon's controller, taking turns.
 */
async function httpOverhead(d, n) {
  const worker = new Worker(new URL('./http-worker.js', import.meta.url));
  const call = (method, path, body) =>
    new Promise((resolve, reject) => {
      worker.once('message', (r) => (r.status >= 200 && r.status < 300 ? resolve(r.ms) : reject(new Error(`${method} ${path}: ${r.status} ${r.body}`))));
      worker.postMessage({ socket: d.socket, method, path: `${API}${path}`, body }, []);
    });
  const out = { httpCreate: [], directCreate: [], httpRm: [], directRm: [], ping: [] };
  try {
    await call('GET', '/_ping');
    for (let i = 0; i < n; i++) {
      out.ping.push(await call('GET', '/_ping'));
      out.httpCreate.push(await call('POST', '/networks/create', cliBody(`dh${i}`, `10.223.${i}.0/24`)));
      let t = performance.now();
      await d.controller.createNetwork({ name: `dy${i}`, ipam: [{ subnet: `10.224.${i}.0/24` }] });
      out.directCreate.push(performance.now() - t);
      out.httpRm.push(await call('DELETE', `/networks/dh${i}`));
      t = performance.now();
      await d.controller.removeNetwork(`dy${i}`);
      out.directRm.push(performance.now() - t);
    }
  } finally {
    await worker.terminate();
  }
  return out;
}

/**
 * Start a real Docker engine in a netns of its own (its docker0 and iptables rules stay
 * there) and call fn(socket); fn(undefined, why) when there is none or it does not start.
 */
async function withEngine(tag, fn) {
  const dockerd = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => existsSync(p));
  if (!dockerd) return fn(undefined, 'skipped, no dockerd on this machine (apt-get install docker.io)');
  const ns = `${tag}-dockerd`;
  await native.netnsCreate(ns);
  const dir = mkdtempSync(join(tmpdir(), 'cnm-bench-dockerd-'));
  const sock = join(dir, 'docker.sock');
  const pidfile = join(dir, 'pid');
  // nsenter execs dockerd, so the child is dockerd itself; dockerd stops its containerd on SIGTERM
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, dockerd, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', pidfile, '-H', `unix://${sock}`], {
    stdio: 'ignore',
  });
  const exited = new Promise((r) => child.once('exit', r));
  // if the bench is interrupted (run.js exits on SIGINT), do not leave the engine behind:
  // SIGTERM lets dockerd stop its containerd; its netns goes with run.js's cleanup
  const onExit = () => {
    child.kill('SIGTERM');
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort while the process exits
    }
  };
  process.once('exit', onExit);
  try {
    for (let i = 0; i < 150 && !existsSync(sock) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
    if (!existsSync(sock)) return await fn(undefined, `failed: dockerd did not start (exit code ${child.exitCode})`);
    return await fn(sock);
  } finally {
    try {
      process.kill(Number(readFileSync(pidfile, 'utf8')), 'SIGTERM');
    } catch {
      child.kill('SIGTERM');
    }
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(killer);
    process.off('exit', onExit);
    await native.netnsDelete(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

const ratio = (engine, mine) => `engine/cnm ${(engine / mine).toFixed(1)}x`;

export async function daemonBench({ tag, stateDir, rows, summarize, n = 30 }) {
  const docker = ['/usr/local/bin/docker', '/usr/bin/docker'].find((p) => existsSync(p));
  if (!docker) {
    rows.push({ name: 'docker network create via cnm daemon: skipped, no docker CLI', n: 0 });
    return;
  }
  const p50 = (xs) => summarize('', xs).p50;

  const hostNs = `${tag}-daemon`;
  await native.netnsCreate(hostNs);
  const sockDir = mkdtempSync(join(tmpdir(), 'cnm-bench-d-'));
  let d;
  let cnm;
  let engine;
  let noEngine;
  let direct;
  let overhead;
  try {
    d = await startDaemon({ socket: join(sockDir, 'cnm.sock'), controller: { stateDir: `${stateDir}/daemon`, hostNetns: hostNs } });
    // the create without HTTP at all: what the controller itself costs (before the engine runs)
    direct = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await d.controller.createNetwork({ name: `dx${i}`, ipam: [{ subnet: `10.221.${i}.0/24` }] });
      direct.push(performance.now() - t);
    }
    const mine = { sock: d.socket, net: 220, prefix: 'dn' };
    [cnm, engine] = await withEngine(tag, (sock, why) => {
      noEngine = why;
      return measure({ docker, n, targets: sock ? [mine, { sock, net: 222, prefix: 'en' }] : [mine] });
    });
    overhead = await httpOverhead(d, n);
  } finally {
    await d?.close().catch(() => undefined);
    await native.netnsDelete(hostNs);
    rmSync(sockDir, { recursive: true, force: true });
  }

  // the CLI's own floor: process start-up, no daemon contact
  const floor = summarize('docker --version: the CLI process floor (no daemon contact)', [...cnm.floor, ...(engine?.floor ?? [])]);
  rows.push(floor);
  rows.push(summarize('docker version via cnm daemon (CLI + HEAD /_ping + GET /version)', cnm.version));
  if (engine) rows.push(summarize('docker version via Docker engine (same CLI, same run)', engine.version));

  const cliCreate = summarize('docker network create via cnm daemon (CLI process included)', cnm.cliCreate);
  rows.push(cliCreate);
  if (engine) {
    const e = summarize('docker network create via Docker engine (same CLI, same run)', engine.cliCreate);
    rows.push(e);
    cliCreate.target = `${ratio(e.p50, cliCreate.p50)}; CLI floor ${floor.p50.toFixed(1)} ms caps it at ${(e.p50 / floor.p50).toFixed(1)}x`;
  }
  rows.push(summarize('docker network rm via cnm daemon (CLI process included)', cnm.cliRm));
  if (engine) rows.push(summarize('docker network rm via Docker engine (same CLI, same run)', engine.cliRm));

  // above the floor: p50 of the creates minus p50 of the `docker --version` runs interleaved with them
  const above = (name, m) => ({ name, n: m.cliCreate.length, p50: p50(m.cliCreate) - p50(m.floor) });
  const aboveCnm = above('docker network create via cnm daemon, p50 above the CLI floor', cnm);
  rows.push(aboveCnm);
  if (engine) {
    const aboveEngine = above('docker network create via Docker engine, p50 above the CLI floor', engine);
    rows.push(aboveEngine);
    aboveCnm.target = ratio(aboveEngine.p50, aboveCnm.p50);
  }

  // one HTTP client, no CLI process: the like-for-like comparison of the two daemons
  const apiRows = (label, mode, what, target) => {
    const mine = summarize(`${label} via cnm daemon (node:http, ${mode === 'fresh' ? 'fresh connection' : 'keep-alive'})`, cnm[mode][what]);
    rows.push(mine);
    if (!engine) return;
    const e = summarize(`${label} via Docker engine (node:http, ${mode === 'fresh' ? 'fresh connection' : 'keep-alive'})`, engine[mode][what]);
    rows.push(e);
    mine.target = `${ratio(e.p50, mine.p50)}${target ? ` (target >= ${TARGET}x)` : ''}`;
  };
  apiRows(`POST ${API}/networks/create`, 'fresh', 'create', true);
  apiRows(`DELETE ${API}/networks/{id}`, 'fresh', 'rm', false);
  apiRows(`POST ${API}/networks/create`, 'keepAlive', 'create', false);
  apiRows(`DELETE ${API}/networks/{id}`, 'keepAlive', 'rm', false);
  rows.push(summarize('network create behind the daemon (controller call, no HTTP)', direct));
  rows.push(summarize('GET /_ping through the daemon socket (fresh connection, client on its own thread): the transport floor', overhead.ping));
  for (const [what, http, lib] of [
    ['create', overhead.httpCreate, overhead.directCreate],
    ['rm', overhead.httpRm, overhead.directRm],
  ]) {
    rows.push(summarize(`network ${what} through the daemon socket (fresh connection, client on its own thread), taking turns with the controller call`, http));
    rows.push(summarize(`network ${what} on the daemon's controller (no HTTP), taking turns with the request`, lib));
    rows.push({ name: `what HTTP adds to network ${what} (p50 difference)`, n: http.length, p50: p50(http) - p50(lib), target: 'target < 0.5 ms' });
  }

  if (noEngine) rows.push({ name: `Docker engine: ${noEngine}`, n: 0 });
}
