// Clients that misbehave on the daemon's socket cannot hurt the others: bad
// escapes and bodies over the limit get Docker-shaped 4xx answers (a body over
// the limit without being read), slow and idle connections are cut at the time
// limits while others are served, and a SIGTERM under load lets the requests in
// flight finish, refuses new ones and leaves nothing half-done for the restart.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { join } from 'node:path';
import test from 'ava';
import { NetworkController } from '../ts/controller.js';
import { BIN, cnm } from './helpers/cli.js';
import { apiCall, daemonOnHost } from './helpers/daemon-http.js';
import { eventually } from './helpers/host.js';
import { parseReply, rawRequest } from './helpers/raw-http.js';

const LIMITS = { headersTimeoutMs: 1000, requestTimeoutMs: 1500, keepAliveTimeoutMs: 1000, drainMs: 5000 };
const on = daemonOnHost('hostile', LIMITS);
const host = () => on.host();
const daemon = () => on.daemon();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;

async function pingMs(socket: string): Promise<number> {
  const t = performance.now();
  const r = await rawRequest(socket, 'GET /_ping HTTP/1.1\r\n');
  if (r.status !== 200) throw new Error(`ping answered ${r.status}`);
  return performance.now() - t;
}

/** A connection that sends `bytes` one at a time, every `everyMs`; resolves to what came back when it closed. */
function dribble(socket: string, bytes: string, everyMs: number): Promise<{ reply: string; ms: number }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const c: Socket = connect(socket);
    let out = '';
    let i = 0;
    const timer = setInterval(() => {
      if (i < bytes.length && c.writable) c.write(bytes[i++]!);
    }, everyMs);
    c.on('data', (b) => (out += b.toString()));
    c.on('error', () => undefined);
    c.on('close', () => {
      clearInterval(timer);
      resolve({ reply: out, ms: performance.now() - t });
    });
  });
}

test.serial('a bad percent escape is a 400 in Docker shape, not a 500', async (t) => {
  for (const path of ['/networks/%ZZ/connect', '/v1.47/networks/%E2%82', '/containers/%ZZ/json']) {
    const r = await rawRequest(daemon().socket, `POST ${path} HTTP/1.1\r\nContent-Type: application/json\r\n`, '{}');
    t.is(r.status, 400, path);
    t.regex((JSON.parse(r.body) as { message: string }).message, /invalid URL escape/);
  }
});

test.serial('a body over 1 MiB gets 413 without being read whole, announced or chunked', async (t) => {
  // announced as 2 MiB, of which 1 KiB is sent: the answer comes anyway
  const announced = await new Promise<string>((resolve) => {
    const c = connect(daemon().socket);
    let out = '';
    c.on('data', (b) => (out += b.toString()));
    c.on('close', () => resolve(out));
    c.on('error', () => undefined);
    c.write(`POST /networks/create HTTP/1.1\r\nHost: cnm\r\nContent-Type: application/json\r\nContent-Length: ${2 << 20}\r\n\r\n${'{'.padEnd(1024, ' ')}`);
  });
  const a = parseReply(Buffer.from(announced, 'latin1'));
  t.is(a?.status, 413);
  t.regex((JSON.parse(a!.body) as { message: string }).message, /too large/);
  // chunked: refused once past the limit, the rest never read
  const chunked = await new Promise<string>((resolve) => {
    const c = connect(daemon().socket);
    let out = '';
    let sent = 0;
    c.on('data', (b) => (out += b.toString()));
    c.on('close', () => resolve(out));
    c.on('error', () => undefined);
    c.write('POST /networks/create HTTP/1.1\r\nHost: cnm\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = 'x'.repeat(64 * 1024);
    const push = () => {
      // up to 4 MiB, unless the server closed first
      while (sent < 4 << 20 && c.writable && c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)) sent += chunk.length;
      if (sent < 4 << 20 && c.writable) c.once('drain', push);
    };
    push();
  });
  t.is(parseReply(Buffer.from(chunked, 'latin1'))?.status, 413);
  t.is(daemon().controller.listNetworks().filter((n) => !n.record.predefined).length, 0, 'nothing made');
});

test.serial('slow headers, an unfinished body and 2 000 idle connections are cut at the limits while others are served', async (t) => {
  const base: number[] = [];
  for (let i = 0; i < 30; i++) base.push(await pingMs(daemon().socket));
  // headers a byte every 100 ms: cut at the headers limit (1 s here) with a 408
  const slow = dribble(daemon().socket, 'GET /_ping HTTP/1.1\r\nHost: cnm\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n', 100);
  // a body announced as 100 bytes, 10 sent: cut at the request limit (1.5 s)
  const unfinished = new Promise<{ reply: string; ms: number }>((resolve) => {
    const t0 = performance.now();
    const c = connect(daemon().socket);
    let out = '';
    c.on('data', (b) => (out += b.toString()));
    c.on('error', () => undefined);
    c.on('close', () => resolve({ reply: out, ms: performance.now() - t0 }));
    c.write('POST /networks/create HTTP/1.1\r\nHost: cnm\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"Name":"x');
  });
  // 2 000 connections that send nothing
  const idle: Socket[] = [];
  let idleClosed = 0;
  for (let i = 0; i < 2000; i++) {
    const c = connect(daemon().socket);
    c.on('error', () => undefined);
    c.on('close', () => idleClosed++);
    idle.push(c);
  }
  await sleep(200);
  const busy: number[] = [];
  for (let i = 0; i < 30; i++) busy.push(await pingMs(daemon().socket));
  const s = await slow;
  const u = await unfinished;
  t.log(`ping p50/p99: ${p50(base).toFixed(2)}/${p99(base).toFixed(2)} ms alone, ${p50(busy).toFixed(2)}/${p99(busy).toFixed(2)} ms beside a slow client, an unfinished body and 2 000 idle connections`);
  t.log(`slow headers cut after ${s.ms.toFixed(0)} ms, unfinished body after ${u.ms.toFixed(0)} ms`);
  t.regex(s.reply, /^HTTP\/1\.1 408 /);
  t.true(s.ms < 3500, 'the slow client did not keep its slot past the limit');
  t.regex(u.reply, /^HTTP\/1\.1 408 /);
  t.true(u.ms < 4000);
  t.true(p50(busy) < 50, 'others are served meanwhile');
  t.true(await eventually(() => idleClosed === 2000, 5000), `idle connections closed by the server (${idleClosed} of 2000)`);
  for (const c of idle) c.destroy();
});

/** `cnm daemon` as a process of its own, on this file's host. */
function daemonProcess(socket: string, extra: string[] = [], globals: string[] = []): { child: ChildProcess; ready: Promise<void>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...globals, '--host-netns', host().ns, '--state-dir', host().stateDir, 'daemon', '--socket', socket, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (b) => {
      err += b.toString();
      if (err.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`daemon exited ${code}: ${err}`)));
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, ready, exited };
}

test.serial('SIGTERM under load: requests in flight finish, new ones are refused, the socket goes; the restart finds nothing half-done', async (t) => {
  // the in-process daemon gives the host to the process
  await daemon().close();
  const socket = join(host().tmp('term'), 'cnm.sock');
  const p = daemonProcess(socket);
  await p.ready;
  const made = new Set<string>();
  const removed = new Set<string>();
  const outcomes = new Map<string, number>();
  const run = { stop: false };
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  const client = async (c: number) => {
    for (let i = 0; !run.stop; i++) {
      const name = `term${c}x${i}`;
      try {
        const r = await apiCall(socket, 'POST', '/networks/create', { Name: name, IPAM: { Config: [{ Subnet: `10.${160 + (c >> 2)}.${((c & 3) << 6) | (i & 63)}.0/24` }] } });
        count(String(r.status));
        if (r.status === 201) made.add(name);
        else if (r.status !== 503) throw new Error(`create ${name}: ${r.status} ${r.body}`);
        if (r.status === 201 && i % 2 === 0) {
          const rm = await apiCall(socket, 'DELETE', `/networks/${name}`);
          count(`rm ${rm.status}`);
          if (rm.status === 204) removed.add(name);
        }
      } catch (e) {
        // refused once the daemon stopped listening: the request never started
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ECONNREFUSED' && code !== 'ENOENT' && code !== 'ECONNRESET' && code !== 'EPIPE') throw e;
        count(code);
        return;
      }
    }
  };
  const clients = Array.from({ length: 16 }, (_, c) => client(c));
  await sleep(800);
  const t0 = performance.now();
  p.child.kill('SIGTERM');
  const code = await p.exited;
  const ms = performance.now() - t0;
  run.stop = true;
  await Promise.all(clients);
  t.log(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}; stopped ${ms.toFixed(0)} ms after SIGTERM`);
  t.is(code, 0);
  t.false(existsSync(socket), 'the socket is removed');
  t.true(made.size > 0);
  // the restart: the store holds exactly what was answered, and agrees with the kernel
  const ctl = await NetworkController.open({ hostNetns: host().ns, stateDir: host().stateDir });
  try {
    const names = new Set(ctl.listNetworks().map((n) => n.name));
    const mine = [...names].filter((n) => n.startsWith('term'));
    t.deepEqual(mine.sort(), [...made].filter((n) => !removed.has(n)).sort(), 'every 201 not removed since is there, and nothing else');
    const dry = cnm(['--host-netns', host().ns, '--state-dir', host().stateDir, 'system', 'reconcile', '--dry-run']);
    t.is(dry.code, 0, dry.stderr);
    t.notRegex(dry.stdout, /would (remove|restore|add|repair)/, dry.stdout);
    for (const n of mine) await ctl.removeNetwork(n);
  } finally {
    await ctl.close();
  }
});

test.serial('SIGHUP reopens --log-file (rotation by rename); the daemon keeps serving', async (t) => {
  const socket = join(host().tmp('hup'), 'cnm.sock');
  const logFile = join(host().tmp('hup-log'), 'cnm.log');
  // at info, each request is logged
  const p = daemonProcess(socket, ['--log-file', logFile], ['--log-level', 'info']);
  await p.ready;
  try {
    await apiCall(socket, 'GET', '/networks');
    t.true(await eventually(() => /"msg":"request"/.test(readFileSync(logFile, 'utf8')), 5000), 'lines go to the file');
    renameSync(logFile, `${logFile}.1`);
    p.child.kill('SIGHUP');
    t.true(await eventually(() => existsSync(logFile), 5000), 'a new file at the path');
    t.is((await apiCall(socket, 'GET', '/_ping')).status, 200, 'still serving');
    t.true(await eventually(() => /log file reopened/.test(readFileSync(logFile, 'utf8')), 5000));
  } finally {
    p.child.kill('SIGTERM');
    t.is(await p.exited, 0);
  }
});
