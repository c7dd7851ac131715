/**
 * `cnm daemon`: the network part of the Docker Engine API on a unix socket, so the
 * stock docker CLI and Docker SDKs (dockerode) drive cnm. Paths work with and
 * without a /vX.Y prefix; errors are {"message": …} with Docker's statuses.
 */
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { arch, release } from 'node:os';
import { type ControllerOptions, NetworkController } from '../controller.js';
import { CnmError, invalid } from '../errors.js';
import { EventBus } from './events.js';
import { parseFilters } from './filters.js';
import { sendError, sendJson } from './http.js';
import { handleNetworks } from './networks.js';

/** The API version we speak; the docker CLI negotiates down to it from /_ping. */
export const API_VERSION = '1.47';
export const MIN_API_VERSION = '1.24';
export const DEFAULT_SOCKET = '/run/cnm.sock';

export interface DaemonOptions {
  /** unix socket path; default /run/cnm.sock */
  socket?: string;
  controller?: ControllerOptions;
}

export interface Daemon {
  socket: string;
  controller: NetworkController;
  close(): Promise<void>;
}

const VERSION = '0.1.0';
// the docker CLI parses BuildTime as a time; an empty string makes it fail
const STARTED = new Date().toISOString();

function headers(res: ServerResponse): void {
  res.setHeader('Api-Version', API_VERSION);
  res.setHeader('Docker-Experimental', 'false');
  res.setHeader('Ostype', 'linux');
  res.setHeader('Server', `cnm/${VERSION} (linux)`);
  res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
}

function version(): Record<string, unknown> {
  const goArch = arch() === 'x64' ? 'amd64' : arch();
  return {
    Platform: { Name: 'cnm' },
    Components: [{ Name: 'cnm', Version: VERSION, Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION } }],
    Version: VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: '',
    GoVersion: '',
    Os: 'linux',
    Arch: goArch,
    KernelVersion: release(),
    BuildTime: STARTED,
  };
}

function events(bus: EventBus, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const f = parseFilters(url.searchParams.get('filters'), ['type', 'event', 'network', 'label', 'scope', 'container']);
  const types = f.get('type');
  if (types?.length && !types.includes('network')) {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return;
  }
  const secs = (v: string | null) => (v === null || v === '' ? undefined : /^\d+(\.\d+)?$/.test(v) ? Number(v) : Date.parse(v) / 1000);
  const since = secs(url.searchParams.get('since'));
  const until = secs(url.searchParams.get('until'));
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  const actions = f.get('event');
  const nets = f.get('network');
  const stop = bus.subscribe(since, (e) => {
    if (until !== undefined && e.time > until) return;
    if (actions?.length && !actions.includes(e.Action)) return;
    if (nets?.length && !nets.some((n) => e.Actor.ID.startsWith(n) || e.Actor.Attributes.name === n)) return;
    res.write(`${JSON.stringify(e)}\n`);
  });
  const end = () => {
    stop();
    res.end();
  };
  req.on('close', stop);
  if (until !== undefined) setTimeout(end, Math.max(0, until * 1000 - Date.now()));
}

async function route(ctl: NetworkController, bus: EventBus, req: IncomingMessage, res: ServerResponse): Promise<void> {
  headers(res);
  const url = new URL(req.url ?? '/', 'http://cnm');
  const versioned = /^\/v(\d+\.\d+)(\/.*)$/.exec(url.pathname);
  if (versioned && Number(versioned[1]) < Number(MIN_API_VERSION)) {
    throw invalid(`client version ${versioned[1]} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
  const path = versioned ? versioned[2]! : url.pathname;
  const method = req.method ?? 'GET';
  if (path === '/_ping' && (method === 'GET' || method === 'HEAD')) {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 2 });
    res.end(method === 'HEAD' ? undefined : 'OK');
    return;
  }
  if (path === '/version' && method === 'GET') return sendJson(res, 200, version());
  if (path === '/events' && method === 'GET') return events(bus, req, res, url);
  if (await handleNetworks(ctl, bus, req, res, path, url)) return;
  throw new CnmError('ERR_NETWORK_NOT_FOUND', `page not found: ${method} ${path} (cnm serves the network part of the Docker API only)`);
}

/** Start serving; resolves once the socket listens. */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const socket = opts.socket ?? DEFAULT_SOCKET;
  const ctl = await NetworkController.open(opts.controller ?? {});
  const bus = new EventBus();
  // a socket file left by a crashed daemon is replaced; anything else is not touched
  if (existsSync(socket)) {
    if (!lstatSync(socket).isSocket()) {
      await ctl.close();
      throw invalid(`${socket} exists and is not a socket; remove it or choose another --socket`, socket);
    }
    unlinkSync(socket);
  }
  const server: Server = createServer((req, res) => {
    route(ctl, bus, req, res).catch((e: unknown) => sendError(res, e));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  chmodSync(socket, 0o660);
  return {
    socket,
    controller: ctl,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (existsSync(socket)) unlinkSync(socket);
      await ctl.close();
    },
  };
}
