/**
 * DNS test helpers: real clients (dig, getent, nslookup) run inside sandboxes
 * through `ip netns exec`, and the fake upstream server (fixtures/fake-dns.ts)
 * in a netns of the test's own, wired to the test's host as "outside".
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OUTSIDE_IP, wireOutside } from './outside.js';

export interface DigResult {
  status: string;
  /** the answer section's data fields, in order */
  answers: string[];
  flags: string[];
}

/** `dig` inside `ns` at the embedded resolver (or `server`), one try of `timeout` seconds. */
export function dig(ns: string, args: string[], server = '127.0.0.11', timeout = 2): DigResult {
  let out: string;
  try {
    out = execFileSync('ip', ['netns', 'exec', ns, 'dig', `@${server}`, `+time=${timeout}`, '+tries=1', '+noall', '+comments', '+answer', ...args], { encoding: 'utf8' });
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? '');
  }
  const status = /status: (\w+)/.exec(out)?.[1] ?? 'TIMEOUT';
  const flags = /flags: ([a-z ]+);/.exec(out)?.[1]?.trim().split(' ') ?? [];
  const answers = out
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith(';'))
    .map((l) => l.trim().split(/\s+/).at(-1)!);
  return { status, answers, flags };
}

/** `getent hosts NAME` inside `ns`: the addresses, or [] when it does not resolve. */
export function getent(ns: string, name: string, family: 'hosts' | 'ahostsv4' = 'hosts'): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'exec', ns, 'getent', family, name], { encoding: 'utf8' });
    return [...new Set(out.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]!))];
  } catch {
    return [];
  }
}

/** The pids of the CLI's background resolvers serving the host whose state is in `stateDir`. */
export function resolverPids(stateDir: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `resolver-main.*${stateDir}`], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when none runs
  }
}

export interface FakeUpstream {
  ip: string;
  /** the names it was asked, in order */
  asked: string[];
  stop(): void;
}

const FAKE = fileURLToPath(new URL('../fixtures/fake-dns.ts', import.meta.url));

/**
 * The fake upstream server at OUTSIDE_IP in netns `outsideNs` (made and wired
 * to `hostNs` here), and the host's resolv.conf (/etc/netns/<hostNs>/) naming it.
 */
export async function fakeUpstream(hostNs: string, outsideNs: string): Promise<FakeUpstream> {
  await wireOutside(hostNs, outsideNs);
  mkdirSync(`/etc/netns/${hostNs}`, { recursive: true });
  writeFileSync(`/etc/netns/${hostNs}/resolv.conf`, `nameserver ${OUTSIDE_IP}\nsearch corp.test\noptions timeout:2\n`);
  const proc: ChildProcess = spawn('ip', ['netns', 'exec', outsideNs, process.execPath, '--import', 'tsx', FAKE, OUTSIDE_IP], { stdio: ['ignore', 'pipe', 'inherit'] });
  const asked: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        if (l === 'ready') resolve();
        else asked.push(l);
      }
    });
    proc.once('exit', (c) => reject(new Error(`the fake upstream exited with ${c}`)));
  });
  return {
    ip: OUTSIDE_IP,
    asked,
    stop() {
      proc.kill();
      rmSync(`/etc/netns/${hostNs}`, { recursive: true, force: true });
    },
  };
}
