// One Engine API request to a daemon's unix socket, for the daemon tests.
import { request } from 'node:http';
import { join } from 'node:path';
import test from 'ava';
import type { DaemonLimits } from '../../ts/daemon/guard.js';
import { type Daemon, startDaemon } from '../../ts/daemon/server.js';
import { type IsolatedHost, isolatedHost } from './host.js';

export interface ApiReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** the `message` of an error body, '' when there is none */
  message: string;
  json: () => unknown;
}

/** A request; an object body is sent as JSON, a string body as it is (to send bad JSON). */
export function apiCall(socket: string, method: string, path: string, body?: unknown): Promise<ApiReply> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
    const req = request({ socketPath: socket, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let message = '';
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? '';
        } catch {
          // not JSON: a ping, an events stream, an empty 204
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: text, message, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

function started<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} is not started yet`);
  return v;
}

/**
 * A daemon on an isolated host of this test file: started before its tests,
 * stopped (and the host removed) after them.
 */
export function daemonOnHost(tag: string, limits?: DaemonLimits): { host: () => IsolatedHost; daemon: () => Daemon } {
  let host: IsolatedHost | undefined;
  let d: Daemon | undefined;
  test.before(async () => {
    host = await isolatedHost(tag);
    d = await startDaemon({ socket: join(host.tmp(tag), 'cnm.sock'), controller: { hostNetns: host.ns, stateDir: host.stateDir }, limits });
  });
  test.after.always(async () => {
    await d?.close();
    await host?.cleanup();
  });
  return { host: () => started(host, 'the host'), daemon: () => started(d, 'the daemon') };
}
