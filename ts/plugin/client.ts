/**
 * The caller side of Docker's plugin protocol: find a plugin by name the way
 * Docker does, activate it, and call its methods with retries and a timeout.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { CnmError } from '../errors.js';
import { type ActivateResponse, PLUGIN_CONTENT_TYPE } from './api.js';

/** Where Docker looks for plugin sockets. */
export const DEFAULT_SOCKET_DIR = '/run/docker/plugins';
/** Where Docker looks for .spec and .json files. */
export const DEFAULT_SPEC_DIRS = ['/etc/docker/plugins', '/usr/lib/docker/plugins'];

/** How to reach a plugin. */
export type PluginAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** A plugin found on disk. */
export interface DiscoveredPlugin {
  name: string;
  address: PluginAddress;
  /** the file it was found by (.sock, .spec or .json) */
  source: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Whether `name` can be a plugin name (no path separators, no `..`). */
export function validPluginName(name: string): boolean {
  return NAME.test(name) && !name.includes('..');
}

/** Parse a plugin URL: unix:///path or tcp://host:port (http:// is taken as tcp://). */
export function parsePluginUrl(url: string, source = url): PluginAddress {
  const u = url.trim();
  const bad = (why: string) => new CnmError('ERR_PLUGIN', `invalid plugin address ${JSON.stringify(u)} in ${source}: ${why}`, { value: u });
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(u);
  if (!m) throw bad('expected unix:///path or tcp://host:port');
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  if (scheme === 'unix') {
    if (!rest.startsWith('/')) throw bad('a unix socket path must be absolute');
    return { kind: 'unix', path: rest };
  }
  if (scheme === 'tcp' || scheme === 'http') {
    const hp = /^(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(rest);
    if (!hp || Number(hp[2]) > 65535) throw bad('expected host:port');
    return { kind: 'tcp', host: hp[1]!.replace(/^\[|\]$/g, ''), port: Number(hp[2]) };
  }
  throw bad(`unsupported scheme ${scheme} (TLS plugins are not supported)`);
}

function isSocket(p: string): boolean {
  try {
    return statSync(p).isSocket();
  } catch {
    return false;
  }
}

/**
 * Find plugin `name` as Docker does: first a socket `<dir>/<name>.sock` or
 * `<dir>/<name>/<name>.sock` in each dir, then a spec file `<name>.spec` (a URL)
 * or `<name>.json` ({"Addr": URL}), directly or in `<dir>/<name>/`. Null when
 * none is there.
 */
export function discoverPlugin(name: string, dirs: readonly string[]): DiscoveredPlugin | null {
  if (!validPluginName(name)) return null;
  const paths = (dir: string, ext: string) => [join(dir, `${name}${ext}`), join(dir, name, `${name}${ext}`)];
  for (const dir of dirs) {
    for (const p of paths(dir, '.sock')) {
      if (isSocket(p)) return { name, address: { kind: 'unix', path: p }, source: p };
    }
  }
  for (const dir of dirs) {
    for (const ext of ['.spec', '.json']) {
      for (const p of paths(dir, ext)) {
        if (!existsSync(p)) continue;
        const text = readFileSync(p, 'utf8');
        if (ext === '.spec') return { name, address: parsePluginUrl(text, p), source: p };
        let spec: unknown;
        try {
          spec = JSON.parse(text);
        } catch (e) {
          throw new CnmError('ERR_PLUGIN', `invalid plugin spec ${p}: ${(e as Error).message}`, { value: p });
        }
        const addr = (spec as { Addr?: unknown } | null)?.Addr;
        if (typeof addr !== 'string') throw new CnmError('ERR_PLUGIN', `invalid plugin spec ${p}: no "Addr" string`, { value: p });
        return { name, address: parsePluginUrl(addr, p), source: p };
      }
    }
  }
  return null;
}

/** Options of {@link PluginClient}. */
export interface PluginClientOptions {
  /** name for messages; default: the address */
  name?: string;
  /** time limit of one call, ms; default 10000 */
  timeoutMs?: number;
  /** how long to keep retrying while the socket is missing or refuses, ms; default 1000 */
  retryMs?: number;
}

/** Options of one {@link PluginClient.call}. */
export interface CallOptions {
  /** a 404 answer means "not implemented" and counts as success (optional methods) */
  optional?: boolean;
}

/** The largest answer read from a plugin; a longer one fails the call (a plugin gone wrong must not fill our memory). */
export const MAX_ANSWER = 16 << 20;

/** Connection errors that mean "not up yet": worth a retry. */
const RETRY = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN', 'ECONNRESET']);

interface RawAnswer {
  status: number;
  text: string;
}

/** One plugin reached over HTTP; calls are `POST /<Method>` with a JSON body. */
export class PluginClient {
  readonly name: string;
  private readonly timeoutMs: number;
  private readonly retryMs: number;

  constructor(
    readonly address: PluginAddress,
    opts: PluginClientOptions = {},
  ) {
    this.name = opts.name ?? (address.kind === 'unix' ? address.path : `${address.host}:${address.port}`);
    this.timeoutMs = opts.timeoutMs ?? 10000;
    this.retryMs = opts.retryMs ?? 1000;
  }

  private fail(method: string, message: string): CnmError {
    return new CnmError('ERR_PLUGIN', `plugin ${this.name}: ${method}: ${message}`, { value: this.name });
  }

  /**
   * One request. The time limit is the whole call's (a plugin that answers a
   * byte at a time does not stretch it), and an answer is read up to MAX_ANSWER.
   */
  private once(method: string, payload: string): Promise<RawAnswer> {
    const a = this.address;
    return new Promise((resolve, reject) => {
      const abort = (message: string, code: string) => req.destroy(Object.assign(new Error(message), { code }));
      const deadline = setTimeout(() => abort(`no answer within ${this.timeoutMs} ms (whole)`, 'ETIMEDOUT'), this.timeoutMs);
      const done = <T>(f: (v: T) => void) => (v: T) => {
        clearTimeout(deadline);
        f(v);
      };
      const req = request(
        {
          ...(a.kind === 'unix' ? { socketPath: a.path } : { host: a.host, port: a.port }),
          method: 'POST',
          path: `/${method}`,
          headers: {
            'Content-Type': PLUGIN_CONTENT_TYPE,
            Accept: PLUGIN_CONTENT_TYPE,
            'Content-Length': Buffer.byteLength(payload),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          const tooLong = () => abort(`answer over ${MAX_ANSWER} bytes`, 'E2BIG');
          if (Number(res.headers['content-length'] ?? 0) > MAX_ANSWER) return tooLong();
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER) tooLong();
            else chunks.push(c);
          });
          res.on('end', done(() => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })));
          // cut in the middle of its answer: the plugin had the request, so no retry
          res.on('error', done((e: Error) => reject(Object.assign(new Error(`the answer was cut: ${e.message}`), { code: 'ECUT' }))));
        },
      );
      req.on('error', done(reject));
      req.end(payload);
    });
  }

  /**
   * Call `method` (e.g. "NetworkDriver.CreateNetwork"). Retries with back-off for
   * about retryMs while the socket is missing or refuses; an `{"Err"}` or
   * `{"Error"}` answer, a bad status or a timeout is a CnmError ERR_PLUGIN.
   */
  async call<T = Record<string, unknown>>(method: string, body: unknown = {}, opts: CallOptions = {}): Promise<T> {
    const payload = JSON.stringify(body ?? {});
    const start = Date.now();
    let delay = 25;
    let answer: RawAnswer;
    for (;;) {
      try {
        answer = await this.once(method, payload);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        const left = this.retryMs - (Date.now() - start);
        if (!RETRY.has(code) || left <= 0) throw this.fail(method, (e as Error).message);
        await new Promise((r) => setTimeout(r, Math.min(delay, left)));
        delay = Math.min(delay * 2, 250);
      }
    }
    let parsed: unknown;
    try {
      parsed = answer.text.trim() === '' ? {} : JSON.parse(answer.text);
    } catch {
      parsed = undefined;
    }
    const obj = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
    const errText = obj && (typeof obj.Err === 'string' && obj.Err !== '' ? obj.Err : typeof obj.Error === 'string' && obj.Error !== '' ? obj.Error : undefined);
    if (answer.status !== 200) {
      if (answer.status === 404 && opts.optional) return {} as T;
      throw this.fail(method, errText ?? `HTTP ${answer.status}${answer.text ? `: ${answer.text.slice(0, 200)}` : ''}`);
    }
    if (errText !== undefined) throw this.fail(method, errText);
    if (!obj) throw this.fail(method, `answer is not a JSON object: ${answer.text.slice(0, 200)}`);
    return obj as T;
  }

  /** `/Plugin.Activate`: the subsystems the plugin implements. */
  async activate(): Promise<string[]> {
    const r = await this.call<ActivateResponse>('Plugin.Activate', {});
    if (!Array.isArray(r.Implements) || r.Implements.some((s) => typeof s !== 'string')) {
      throw this.fail('Plugin.Activate', 'answer has no "Implements" list');
    }
    return r.Implements;
  }
}
