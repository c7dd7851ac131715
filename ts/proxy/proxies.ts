/**
 * The userland proxies of one host (see main.ts): started detached in the host
 * netns, found again by the pid each leaves in HOME/proxies/ and its arguments
 * in /proc (so a crash between a start and any record of it leaves nothing cnm
 * cannot see), stopped with SIGTERM.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CnmError } from '../errors.js';
import { log } from '../log.js';

/** The program, built next to this module's tree (ts/ and dist/ are siblings). */
const MAIN = fileURLToPath(new URL('../../dist/proxy/main.js', import.meta.url));
const MARKER = '--cnm-proxy';
const READY_MS = 10_000;
const STOP_MS = 2_000;

/** One forwarding: from the host's `listenIp`:`listenPort` to `targetIp`:`targetPort`. */
export interface ProxySpec {
  /** `<endpoint id>/<proto>/<host port>`: what the proxy is for */
  id: string;
  proto: 'tcp' | 'udp';
  listenIp: string;
  listenPort: number;
  targetIp: string;
  targetPort: number;
}

/** A proxy process found running. */
export interface RunningProxy extends ProxySpec {
  pid: number;
}

const args = (s: ProxySpec) => [s.id, s.proto, s.listenIp, String(s.listenPort), s.targetIp, String(s.targetPort)];

/** Whether a running proxy does what a spec asks. */
export const sameProxy = (a: ProxySpec, b: ProxySpec): boolean => args(a).join(' ') === args(b).join(' ');

export class Proxies {
  /**
   * @param hostNetns the host netns the proxies run in (null: the process's own)
   * @param home the host's state dir: the proxies' mark, and they exit when it goes
   */
  constructor(
    private readonly hostNetns: string | null,
    private readonly home: string,
  ) {}

  /** Start one proxy and wait until it listens; a taken host port is ERR_PORT_ALLOCATED. */
  async start(spec: ProxySpec): Promise<void> {
    const own = [MAIN, MARKER, this.home, this.hostNetns ?? '-', ...args(spec)];
    const [cmd, ...argv] = this.hostNetns === null ? [process.execPath, ...own] : ['ip', 'netns', 'exec', this.hostNetns, process.execPath, ...own];
    const child = spawn(cmd!, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const line = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('error ETIMEDOUT the proxy did not start listening in time'), READY_MS);
      const done = (l: string) => {
        clearTimeout(timer);
        resolve(l);
      };
      child.stdout.on('data', () => {
        if (out.includes('\n')) done(out.split('\n')[0]!);
      });
      child.on('error', (e) => done(`error SPAWN ${e.message}`));
      child.on('exit', (code) => done(out.split('\n')[0] || `error EXIT exited with code ${code}: ${err.trim()}`));
    });
    child.stdout.destroy();
    child.stderr.destroy();
    child.unref();
    if (line === 'ready') return;
    if (child.exitCode === null) child.kill('SIGKILL');
    const [, code = '', ...rest] = line.split(' ');
    const where = `[${spec.listenIp}]:${spec.listenPort}/${spec.proto}`;
    if (code === 'EADDRINUSE') throw new CnmError('ERR_PORT_ALLOCATED', `Bind for ${where} failed: port is already allocated`, { value: where });
    if (code === 'EADDRNOTAVAIL') throw new CnmError('ERR_INVALID_ARGUMENT', `cannot publish on ${where}: ${spec.listenIp} is not an address of the host (is lo up, with IPv6 on?)`, { value: where });
    throw new CnmError('ERR_IO', `the userland proxy for ${where} did not start: ${rest.join(' ')}`, { value: where });
  }

  /**
   * The proxies of this host that are running. With `prune`, the pid files of
   * dead ones are removed (a read-only caller leaves them for the next one).
   */
  async list(opts: { prune?: boolean } = {}): Promise<RunningProxy[]> {
    const dir = join(this.home, 'proxies');
    let pids: string[];
    try {
      pids = await readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const found = await Promise.all(pids.map((pid) => this.proxyOf(pid)));
    const out: RunningProxy[] = [];
    for (const [i, p] of found.entries()) {
      if (p) out.push(p);
      // killed (SIGKILL, a reboot) or its pid reused: the file is all that is left
      else if (opts.prune) await rm(join(dir, pids[i]!), { force: true });
    }
    return out;
  }

  /** The proxy of this host a pid runs, from its arguments in /proc. */
  private async proxyOf(pid: string): Promise<RunningProxy | undefined> {
    if (!/^\d+$/.test(pid) || !(await running(Number(pid)))) return undefined;
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    } catch {
      return undefined; // gone since
    }
    const at = argv.indexOf(MARKER);
    if (at < 0 || argv[at + 1] !== this.home) return undefined;
    const [id, proto, listenIp, listenPort, targetIp, targetPort] = argv.slice(at + 3);
    if (proto !== 'tcp' && proto !== 'udp') return undefined;
    return { pid: Number(pid), id: id!, proto, listenIp: listenIp!, listenPort: Number(listenPort), targetIp: targetIp!, targetPort: Number(targetPort) };
  }

  /** Stop proxies and wait until they are gone, so their ports are free again. */
  async stop(procs: readonly RunningProxy[]): Promise<void> {
    await Promise.all(procs.map((p) => this.stopOne(p)));
  }

  /** Stop the proxies of one endpoint. */
  async stopEndpoint(endpointId: string): Promise<void> {
    await this.stop((await this.list({ prune: true })).filter((p) => p.id.startsWith(`${endpointId}/`)));
  }

  private async stopOne(p: RunningProxy): Promise<void> {
    const signal = (s: NodeJS.Signals) => {
      try {
        process.kill(p.pid, s);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    };
    signal('SIGTERM');
    const until = Date.now() + STOP_MS;
    while (await running(p.pid)) {
      if (Date.now() > until) {
        log.warn('a userland proxy did not stop on SIGTERM: killed', { pid: p.pid, proxy: p.id });
        signal('SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** Whether a pid is a live process (a zombie has closed its sockets: gone for us). */
async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
