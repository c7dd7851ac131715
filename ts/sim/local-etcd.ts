/**
 * A real etcd (Debian's etcd-server) for the demo, the cluster tests and the bench: one member on
 * loopback, on free ports, with a temporary data dir; stopped and restarted with
 * its data for outage tests, removed by `cleanup`. Never on another address.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** An etcd server of our own on loopback. */
export interface LocalEtcd {
  /** the client URL, http://127.0.0.1:PORT */
  url: string;
  /** stop the server (SIGTERM), keeping its data */
  stop(): Promise<void>;
  /** start it again on the same ports with the same data */
  start(): Promise<void>;
  /** stop it and remove its data dir */
  cleanup(): Promise<void>;
}

/** Whether etcd is installed (`.ci/run` installs etcd-server). */
export const etcdBin = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => existsSync(p));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function healthy(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return r.ok && ((await r.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** Start an etcd on free loopback ports with a temporary data dir named after `tag`. */
export async function startEtcd(tag: string): Promise<LocalEtcd> {
  if (!etcdBin) throw new Error('etcd is not installed (apt-get install etcd-server)');
  const dir = mkdtempSync(join(tmpdir(), `cnm-etcd-${tag}-`));
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn(
      etcdBin,
      [
        '--name', 'cnmtest',
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', url,
        '--advertise-client-urls', url,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', `cnmtest=${peerUrl}`,
        '--log-level', 'error',
        '--logger', 'zap',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    const until = Date.now() + 20_000;
    while (!(await healthy(url))) {
      if (proc!.exitCode !== null) throw new Error(`etcd exited with ${proc!.exitCode}: ${err}`);
      if (Date.now() > until) throw new Error(`etcd did not become healthy in 20 s: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise((resolve) => {
      p.once('exit', () => resolve(undefined));
      p.kill('SIGTERM');
    });
  };
  await start();
  return {
    url,
    stop,
    start,
    async cleanup() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
