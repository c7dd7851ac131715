/**
 * `cnm daemon`: the network part of the Docker Engine API on a unix socket, so the
 * stock docker CLI and Docker SDKs (dockerode) drive cnm. Paths work with and
 * without a /vX.Y prefix; errors are {"message": …} with Docker's statuses.
 */
import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { connect } from 'node:net';
import { arch, availableParallelism, hostname, machine, release, totalmem } from 'node:os';
import { type ControllerOptions, NetworkController } from '../controller.js';
import { log } from '../log.js';
import { CnmError, invalid } from '../errors.js';
import { type EventFilters } from '../events.js';
import { parseFilters, parseTimestamp } from './filters.js';
import { decodeSegment, sendError, sendJson } from './http.js';
import { type DaemonLimits, Guard, serverOptions } from './guard.js';
import { handleNetworks } from './networks.js';
import { handleContainers } from './containers.js';
import { native } from '../native.js';
import { VERSION } from '../version.js';

/** The API version we speak; the docker CLI negotiates down to it from /_ping. */
export const API_VERSION = '1.47';
export const MIN_API_VERSION = '1.24';
export const DEFAULT_SOCKET = '/run/cnm.sock';

export interface DaemonOptions {
  /** unix socket path; default /run/cnm.sock */
  socket?: string;
  controller?: ControllerOptions;
  /** time limits on clients and the shutdown drain (defaults: see guard.ts) */
  limits?: DaemonLimits;
}

export interface Daemon {
  socket: string;
  controller: NetworkController;
  /**
   * Stop: no new connection or request is taken (a request on an open
   * connection gets 503), event streams end, requests in flight finish, then
   * the socket is removed and the controller closed.
   */
  close(): Promise<void>;
}

// the docker CLI parses BuildTime as a time; an empty string makes it fail
const STARTED = new Date().toISOString();

function headers(res: ServerResponse): void {
  res.setHeader('Api-Version', API_VERSION);
  res.setHeader('Docker-Experimental', 'false');
  res.setHeader('Ostype', 'linux');
  res.setHeader('Server', `cnm/${VERSION} (linux)`);
  res.setHeader('Cache-Control', 'no-cache, no-store, must-revalidate');
}

const GO_ARCH = arch() === 'x64' ? 'amd64' : arch();

function version(): Record<string, unknown> {
  const engine = {
    Version: VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: '',
    GoVersion: '',
    Os: 'linux',
    Arch: GO_ARCH,
    KernelVersion: release(),
    BuildTime: STARTED,
  };
  const { Version, ...details } = engine;
  // one component named "Engine", as dockerd reports it, so `docker version` shows the usual layout
  return {
    Platform: { Name: 'cnm' },
    Components: [{ Name: 'Engine', Version, Details: { ...details, Experimental: 'false' } }],
    ...engine,
  };
}

/**
 * GET /info: what `docker info` needs to print. cnm has no containers, images or
 * volumes; sandboxes count as containers, and the network plugins are the built-in drivers.
 */
async function info(ctl: NetworkController): Promise<Record<string, unknown>> {
  const sandboxes = ctl.listSandboxes().length;
  const forwarding = await native
    .sysctlGet(ctl.hostNetns, 'net.ipv4.ip_forward')
    .then((v) => v.trim() === '1')
    .catch((e: unknown) => {
      log.warn('reading the host netns forwarding state for /info failed', { err: e });
      return false;
    });
  return {
    // a stable id in UUID form (current dockerd uses a UUID), taken from the default bridge
    ID: (ctl.listNetworks().find((n) => n.name === 'bridge')?.id ?? '0'.repeat(32)).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12}).*$/, '$1-$2-$3-$4-$5'),
    Containers: sandboxes,
    ContainersRunning: sandboxes,
    ContainersPaused: 0,
    ContainersStopped: 0,
    Images: 0,
    Driver: '',
    DriverStatus: [],
    // the drivers this host has now: built-in ones, overlay and routed once in a cluster, plugins loaded
    Plugins: { Volume: [], Network: ctl.driverNames(), Authorization: null, Log: [] },
    MemoryLimit: false,
    SwapLimit: false,
    KernelMemoryTCP: false,
    CpuCfsPeriod: false,
    CpuCfsQuota: false,
    CPUShares: false,
    CPUSet: false,
    PidsLimit: false,
    IPv4Forwarding: forwarding,
    Debug: false,
    NFd: 0,
    OomKillDisable: false,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: '',
    CgroupDriver: '',
    CgroupVersion: '',
    NEventsListener: 0,
    KernelVersion: release(),
    OperatingSystem: 'cnm',
    OSVersion: '',
    OSType: 'linux',
    Architecture: machine(),
    IndexServerAddress: '',
    RegistryConfig: null,
    NCPU: availableParallelism(),
    MemTotal: totalmem(),
    GenericResources: null,
    DockerRootDir: ctl.stateDir,
    HttpProxy: '',
    HttpsProxy: '',
    NoProxy: '',
    Name: hostname(),
    Labels: [],
    ExperimentalBuild: false,
    ServerVersion: VERSION,
    Runtimes: {},
    DefaultRuntime: '',
    Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
    LiveRestoreEnabled: false,
    Isolation: '',
    InitBinary: '',
    SecurityOptions: [],
    Warnings: null,
  };
}

/** ?since= / ?until= in unix seconds */
function eventTime(v: string | null): number | undefined {
  return v === null || v === '' ? undefined : parseTimestamp(v) / 1000;
}

/** GET /events: the host's event log since ?since=, then live events (any process's) until ?until= or the client goes. */
function events(ctl: NetworkController, guard: Guard, req: IncomingMessage, res: ServerResponse, url: URL): void {
  // unknown filter keys are ignored, as dockerd does for /events
  const f = parseFilters(url.searchParams.get('filters'), null);
  const filters: EventFilters = Object.fromEntries(f);
  const since = eventTime(url.searchParams.get('since'));
  const until = eventTime(url.searchParams.get('until'));
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  const stop = new AbortController();
  req.on('close', () => stop.abort());
  // a shutdown ends the stream, as dockerd's does
  const forget = guard.stream(() => stop.abort());
  void (async () => {
    for await (const e of ctl.events({ since, until, filters }, stop.signal)) res.write(`${JSON.stringify(e)}\n`);
  })()
    .catch((e: unknown) => log.warn('the events stream of a client ended on an error', { err: e }))
    .finally(() => {
      forget();
      res.end();
    });
}

/** Compare API versions part by part, as Docker does: 1.9 is older than 1.24. */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

async function route(ctl: NetworkController, guard: Guard, req: IncomingMessage, res: ServerResponse): Promise<void> {
  headers(res);
  // the target as a path on our origin: "//x" is a path here, not another host
  const target = req.url ?? '/';
  let url: URL;
  try {
    url = new URL(`http://cnm${target.startsWith('/') ? '' : '/'}${target}`);
  } catch {
    throw invalid(`invalid request target ${JSON.stringify(target.slice(0, 200))}`, target);
  }
  // a bad escape anywhere in the path is refused before routing, as Go's server does
  decodeSegment(url.pathname);
  const versioned = /^\/v(\d+\.\d+)(\/.*)$/.exec(url.pathname);
  if (versioned && compareVersions(versioned[1]!, MIN_API_VERSION) < 0) {
    throw invalid(`client version ${versioned[1]} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
  if (versioned && compareVersions(versioned[1]!, API_VERSION) > 0) {
    throw invalid(`client version ${versioned[1]} is too new. Maximum supported API version is ${API_VERSION}`);
  }
  const path = versioned ? versioned[2]! : url.pathname;
  const method = req.method ?? 'GET';
  if (path === '/_ping' && (method === 'GET' || method === 'HEAD')) {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 2 });
    res.end(method === 'HEAD' ? undefined : 'OK');
    return;
  }
  if (path === '/version' && method === 'GET') return sendJson(res, 200, version());
  if (path === '/info' && method === 'GET') return sendJson(res, 200, await info(ctl));
  if (path === '/swarm' || path.startsWith('/swarm/')) {
    // as dockerd outside swarm mode: clients cleaning up (swarm leave) expect this answer
    throw new CnmError('ERR_CLUSTER_UNAVAILABLE', 'This node is not part of a swarm');
  }
  if (handleContainers(ctl, req, res, path, url)) return;
  if (path === '/events' && method === 'GET') return events(ctl, guard, req, res, url);
  if (await handleNetworks(ctl, req, res, path, url)) return;
  throw new CnmError('ERR_NETWORK_NOT_FOUND', `page not found: ${method} ${path} (cnm serves the network part of the Docker API only)`);
}

/** Whether something accepts connections on a unix socket (a stale file refuses them). */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/** Start serving; resolves once the socket listens. */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const socket = opts.socket ?? DEFAULT_SOCKET;
  const ctl = await NetworkController.open(opts.controller ?? {});
  // a socket file left by a crashed daemon is replaced; a live one, or anything else, is not touched
  if (existsSync(socket)) {
    if (!lstatSync(socket).isSocket()) {
      await ctl.close();
      throw invalid(`${socket} exists and is not a socket; remove it or choose another --socket`, socket);
    }
    if (await answers(socket)) {
      await ctl.close();
      throw new CnmError('ERR_SOCKET_IN_USE', `another daemon is serving on ${socket}; stop it or choose another --socket`, { value: socket });
    }
    unlinkSync(socket);
  }
  // as dockerd at start: the host is set up (predefined networks, reconcile) before serving
  try {
    await ctl.ready();
    // as dockerd: the daemon serves its sandboxes' embedded DNS, unless another daemon
    // or program of this host already does (one resolver per host: that one is told of
    // this daemon's changes)
    await ctl.serveDns().catch((e: unknown) => {
      if (!(e instanceof CnmError) || e.code !== 'ERR_SOCKET_IN_USE') throw e;
      log.warn('another process serves this host\'s DNS: this daemon leaves it to it', { err: e });
    });
  } catch (e) {
    await ctl.close();
    throw e;
  }
  let requests = 0;
  const server: Server = createServer(serverOptions(opts.limits));
  const guard = new Guard(server, opts.limits);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // every request is logged when answered: method, path, status, duration and an id
    // (the client's X-Request-Id, or one of ours) that its error line carries too
    const id = (req.headers['x-request-id'] as string | undefined) ?? `r${(++requests).toString(36)}`;
    const start = performance.now();
    res.once('finish', () => log.info('request', { id, method: req.method, path: req.url, status: res.statusCode, ms: Number((performance.now() - start).toFixed(2)) }));
    if (!guard.admit(req, res)) return;
    route(ctl, guard, req, res).catch((e: unknown) => sendError(res, e, req, id));
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
      await guard.drain();
      if (existsSync(socket)) unlinkSync(socket);
      await ctl.close();
    },
  };
}
