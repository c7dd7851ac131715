/**
 * The isolated-host fixture: every test file gets its own named netns that the
 * controller treats as its host, and its own state dir. Nothing touches the
 * machine's real network; cleanup removes every namespace the file made.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ControllerOptions, NetworkController } from '../../ts/controller.js';
import { native } from '../../ts/native.js';

export interface IsolatedHost {
  /** the host netns name */
  ns: string;
  stateDir: string;
  /** unique name for a sandbox or other netns of this file */
  name(suffix: string): string;
  /**
   * A controller on this host with the host set up (predefined networks made,
   * reconciled): what tests of operations start from. Tests of what opening
   * alone does use NetworkController.open.
   */
  open(opts?: Omit<ControllerOptions, 'hostNetns' | 'stateDir'>): Promise<NetworkController>;
  /** a fresh temporary directory, removed by cleanup */
  tmp(tag: string): string;
  cleanup(): Promise<void>;
}

export async function isolatedHost(tag: string): Promise<IsolatedHost> {
  const prefix = `cnmt-${tag}-${process.pid}`;
  const ns = `${prefix}-host`;
  await native.netnsCreate(ns);
  const stateDir = mkdtempSync(join(tmpdir(), `cnm-${tag}-`));
  const opened: NetworkController[] = [];
  const dirs: string[] = [];
  return {
    ns,
    stateDir,
    name: (s) => `${prefix}-${s}`,
    async open(opts = {}) {
      const c = await NetworkController.open({ ...opts, hostNetns: ns, stateDir });
      opened.push(c);
      try {
        await c.ready();
      } catch (e) {
        await c.close();
        throw e;
      }
      return c;
    },
    tmp(t) {
      const dir = mkdtempSync(join(tmpdir(), `cnm-${t}-`));
      dirs.push(dir);
      return dir;
    },
    async cleanup() {
      for (const c of opened) await c.close().catch(() => undefined);
      // the dash matters: pid 1234 must not take pid 12345's namespaces
      const mine = (await native.netnsList()).filter((n) => n.startsWith(`${prefix}-`));
      await native.netnsDeleteMany(mine);
      // the files of sandboxes the test did not remove itself (cnm removes them with the sandbox)
      if (existsSync('/etc/netns')) for (const d of readdirSync('/etc/netns')) if (d.startsWith(`${prefix}-`)) rmSync(`/etc/netns/${d}`, { recursive: true, force: true });
      for (const d of [stateDir, ...dirs]) rmSync(d, { recursive: true, force: true });
    },
  };
}

/** `ip -j` inside a netns, parsed. */
export function ipj<T = Array<Record<string, unknown>>>(ns: string, ...args: string[]): T {
  return JSON.parse(execFileSync('ip', ['-n', ns, '-j', ...args], { encoding: 'utf8' }) || '[]') as T;
}

/** Run a command inside a netns; returns stdout. Throws on non-zero exit. */
export function inNs(ns: string, ...cmd: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** true when one ping from `ns` to `ip` gets an answer. */
export function pings(ns: string, ip: string): boolean {
  try {
    // one reply is enough; keep asking for 2 s: a fresh link can drop the first packets
    // until the kernel's link watcher (rate-limited to once a second) has run
    inNs(ns, 'ping', '-c', '1', '-i', '0.2', '-w', '2', ip);
    return true;
  } catch {
    return false;
  }
}

/** Whether `ip` answers an IPv6 ping from inside `ns` (DAD and linkwatch may take up to 3 s). */
export function ping6(ns: string, ip: string): boolean {
  try {
    inNs(ns, 'ping', '-6', '-c', '1', '-i', '0.2', '-w', '3', ip);
    return true;
  } catch {
    return false;
  }
}

/** Wait until fn returns true (kernel cleanup after a netns delete is asynchronous). */
export async function eventually(fn: () => boolean | Promise<boolean>, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Absolute path of a system tool: under npm, node_modules/.bin comes first in PATH
 * and holds an unrelated `nft`.
 */
export function sysbin(tool: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin']) {
    if (existsSync(`${dir}/${tool}`)) return `${dir}/${tool}`;
  }
  throw new Error(`${tool} is not installed`);
}
