/**
 * A real etcd (Debian's etcd-server) for the cluster tests and the bench: one member on
 * loopback, on free ports, with a temporary data dir; stopped and restarted with
 * its data for outage tests, removed by `cleanup`. Never on another address.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * @typedef {object} TestEtcd
 * @property {string} url the client URL, http://127.0.0.1:PORT
 * @property {() => Promise<void>} stop stop the server (SIGTERM), keeping its data
 * @property {() => Promise<void>} start start it again on the same ports with the same data
 * @property {() => Promise<void>} cleanup
 */

/** Whether etcd is installed (`.ci/run` installs etcd-server). */
export const etcdBin = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => existsSync(p));

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = /** @type {{ port: number }} */ (s.address()).port;
      s.close(() => resolve(port));
    });
  });
}

/** @param {string} url */
async function healthy(url) {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
    return r.ok && (await r.json()).health === 'true';
  } catch {
    return false;
  }
}

/**
 * @param {string} tag
 * @returns {Promise<TestEtcd>}
 */
export async function startEtcd(tag) {
  if (!etcdBin) throw new Error('etcd is not installed (apt-get install etcd-server)');
  const dir = mkdtempSync(join(tmpdir(), `cnm-etcd-${tag}-`));
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  /** @type {import('node:child_process').ChildProcess | undefined} */
  let proc;
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
    proc.stderr.on('data', (d) => (err = (err + d.toString()).slice(-4000)));
    const until = Date.now() + 20_000;
    while (!(await healthy(url))) {
      if (proc.exitCode !== null) throw new Error(`etcd exited with ${proc.exitCode}: ${err}`);
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
