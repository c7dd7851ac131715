/**
 * The host's resolver, from other processes: a unix socket in the host's state
 * dir where the process serving DNS takes one-line requests. `sync`: read the
 * store's latest commits and answer once the records have them (a command's
 * connect returns only then); `handover`: a background resolver gives way to a
 * daemon or program that serves DNS itself.
 */
import { rmSync } from 'node:fs';
import { type Server, createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { log } from '../log.js';

export const controlPath = (hostDir: string) => join(hostDir, 'dns.sock');
export const lockPath = (hostDir: string) => join(hostDir, 'dns.lock');

export type ControlRequest = 'sync' | 'handover' | 'ping';

/** Serve requests on `path` (a stale socket file is replaced). */
export function serveControl(path: string, handle: (req: ControlRequest) => Promise<string>): Promise<Server> {
  rmSync(path, { force: true });
  const server = createServer((conn) => {
    let buf = '';
    conn.on('error', () => conn.destroy());
    conn.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = buf.slice(0, nl) as ControlRequest;
        buf = buf.slice(nl + 1);
        handle(req).then(
          (answer) => conn.write(`${answer}\n`),
          (err: unknown) => {
            log.warn('the resolver could not serve a control request', { req, err });
            conn.write('error\n');
          },
        );
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Ask the host's resolver; undefined when none answers (no socket, or a dead one). */
export function askResolver(path: string, req: ControlRequest, timeoutMs = 3000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const conn = createConnection(path);
    let buf = '';
    const done = (v: string | undefined) => {
      clearTimeout(timer);
      conn.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => {
      log.warn('the host resolver did not answer in time', { req, path, timeoutMs });
      done(undefined);
    }, timeoutMs);
    conn.on('connect', () => conn.write(`${req}\n`));
    conn.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl));
    });
    conn.on('error', () => done(undefined));
    conn.on('close', () => done(undefined));
  });
}
