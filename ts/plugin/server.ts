/**
 * The plugin side: serve a network driver and/or IPAM driver written in TypeScript
 * over Docker's plugin protocol on a unix socket. Docker (or cnm, with `pluginDir`)
 * finds the plugin by the socket's name: `<plugin dir>/<name>.sock`.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type {
  ActivateResponse,
  AddressSpacesResponse,
  AllocateNetworkRequest,
  AllocateNetworkResponse,
  CapabilitiesResponse,
  CreateEndpointRequest,
  CreateEndpointResponse,
  CreateNetworkRequest,
  DeleteEndpointRequest,
  DeleteNetworkRequest,
  DiscoveryNotification,
  EndpointOperInfoRequest,
  EndpointOperInfoResponse,
  FreeNetworkRequest,
  IpamCapabilitiesResponse,
  JoinRequest,
  JoinResponse,
  LeaveRequest,
  ProgramExternalConnectivityRequest,
  ReleaseAddressRequest,
  ReleasePoolRequest,
  RequestAddressRequest,
  RequestAddressResponse,
  RequestPoolRequest,
  RequestPoolResponse,
  RevokeExternalConnectivityRequest,
} from './api.js';
import { PLUGIN_CONTENT_TYPE } from './api.js';

type Awaitable<T> = T | Promise<T>;

/**
 * A network driver plugin. Every method may be async; throwing answers
 * `{"Err": message}`. Methods left out answer success with an empty object,
 * except the ones marked required.
 */
export interface NetworkDriverPlugin {
  /** default: {Scope: "local", ConnectivityScope: "local"} */
  getCapabilities?(): Awaitable<CapabilitiesResponse>;
  /** required */
  createNetwork(req: CreateNetworkRequest): Awaitable<void>;
  /** required */
  deleteNetwork(req: DeleteNetworkRequest): Awaitable<void>;
  allocateNetwork?(req: AllocateNetworkRequest): Awaitable<AllocateNetworkResponse | void>;
  freeNetwork?(req: FreeNetworkRequest): Awaitable<void>;
  /** required; answer only the interface fields you fill in (e.g. MacAddress) */
  createEndpoint(req: CreateEndpointRequest): Awaitable<CreateEndpointResponse | void>;
  deleteEndpoint?(req: DeleteEndpointRequest): Awaitable<void>;
  endpointOperInfo?(req: EndpointOperInfoRequest): Awaitable<EndpointOperInfoResponse | void>;
  /** required: make a link in the host netns and name it in InterfaceName.SrcName */
  join(req: JoinRequest): Awaitable<JoinResponse>;
  leave?(req: LeaveRequest): Awaitable<void>;
  discoverNew?(req: DiscoveryNotification): Awaitable<void>;
  discoverDelete?(req: DiscoveryNotification): Awaitable<void>;
  programExternalConnectivity?(req: ProgramExternalConnectivityRequest): Awaitable<void>;
  revokeExternalConnectivity?(req: RevokeExternalConnectivityRequest): Awaitable<void>;
}

/** An IPAM driver plugin. Throwing answers `{"Error": message}`. */
export interface IpamDriverPlugin {
  /** default: {RequiresMACAddress: false} */
  getCapabilities?(): Awaitable<IpamCapabilitiesResponse>;
  /** default: LocalDefault / GlobalDefault */
  getDefaultAddressSpaces?(): Awaitable<AddressSpacesResponse>;
  requestPool(req: RequestPoolRequest): Awaitable<RequestPoolResponse>;
  releasePool(req: ReleasePoolRequest): Awaitable<void>;
  requestAddress(req: RequestAddressRequest): Awaitable<RequestAddressResponse>;
  releaseAddress(req: ReleaseAddressRequest): Awaitable<void>;
}

/** Options of {@link servePlugin}. */
export interface ServePluginOptions {
  /** path of the unix socket, e.g. /run/docker/plugins/myplugin.sock */
  socket: string;
  driver?: NetworkDriverPlugin;
  ipam?: IpamDriverPlugin;
  /** file mode of the socket; default 0o660 */
  mode?: number;
}

/** A running plugin server. */
export interface PluginServer {
  readonly socket: string;
  readonly server: Server;
  /** stop serving and remove the socket file */
  close(): Promise<void>;
}

type Handler = (body: never) => Awaitable<unknown>;

/** The answer of a method the plugin left out: success. */
const ok = (): Record<string, never> => ({});

interface Route {
  handler: Handler;
  /** the error field of this subsystem: "Err" (network) or "Error" (IPAM) */
  errField: 'Err' | 'Error';
}

function routes(opts: ServePluginOptions): Map<string, Route> {
  const m = new Map<string, Route>();
  const implementsList: string[] = [];
  const d = opts.driver;
  if (d) {
    implementsList.push('NetworkDriver');
    const add = (name: string, h: Handler) => m.set(`/NetworkDriver.${name}`, { handler: h, errField: 'Err' });
    add('GetCapabilities', async () => (d.getCapabilities ? await d.getCapabilities() : { Scope: 'local', ConnectivityScope: 'local' }));
    add('CreateNetwork', (r: CreateNetworkRequest) => d.createNetwork(r));
    add('DeleteNetwork', (r: DeleteNetworkRequest) => d.deleteNetwork(r));
    add('AllocateNetwork', async (r: AllocateNetworkRequest) => (d.allocateNetwork ? await d.allocateNetwork(r) : { Options: {} }));
    add('FreeNetwork', (r: FreeNetworkRequest) => d.freeNetwork?.(r) ?? ok());
    add('CreateEndpoint', (r: CreateEndpointRequest) => d.createEndpoint(r));
    add('DeleteEndpoint', (r: DeleteEndpointRequest) => d.deleteEndpoint?.(r) ?? ok());
    add('EndpointOperInfo', async (r: EndpointOperInfoRequest) => (d.endpointOperInfo ? await d.endpointOperInfo(r) : { Value: {} }) ?? { Value: {} });
    add('Join', (r: JoinRequest) => d.join(r));
    add('Leave', (r: LeaveRequest) => d.leave?.(r) ?? ok());
    add('DiscoverNew', (r: DiscoveryNotification) => d.discoverNew?.(r) ?? ok());
    add('DiscoverDelete', (r: DiscoveryNotification) => d.discoverDelete?.(r) ?? ok());
    add('ProgramExternalConnectivity', (r: ProgramExternalConnectivityRequest) => d.programExternalConnectivity?.(r) ?? ok());
    add('RevokeExternalConnectivity', (r: RevokeExternalConnectivityRequest) => d.revokeExternalConnectivity?.(r) ?? ok());
  }
  const ipam = opts.ipam;
  if (ipam) {
    implementsList.push('IpamDriver');
    const add = (name: string, h: Handler) => m.set(`/IpamDriver.${name}`, { handler: h, errField: 'Error' });
    add('GetCapabilities', async () => (ipam.getCapabilities ? await ipam.getCapabilities() : { RequiresMACAddress: false }));
    add('GetDefaultAddressSpaces', async () =>
      ipam.getDefaultAddressSpaces ? await ipam.getDefaultAddressSpaces() : { LocalDefaultAddressSpace: 'LocalDefault', GlobalDefaultAddressSpace: 'GlobalDefault' },
    );
    add('RequestPool', (r: RequestPoolRequest) => ipam.requestPool(r));
    add('ReleasePool', (r: ReleasePoolRequest) => ipam.releasePool(r));
    add('RequestAddress', (r: RequestAddressRequest) => ipam.requestAddress(r));
    add('ReleaseAddress', (r: ReleaseAddressRequest) => ipam.releaseAddress(r));
  }
  const activate: ActivateResponse = { Implements: implementsList };
  m.set('/Plugin.Activate', { handler: () => activate, errField: 'Err' });
  return m;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body ?? {});
  res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 4 << 20) throw new Error('request body larger than 4 MiB');
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  return JSON.parse(text) as unknown;
}

/** Remove a stale socket file; refuse to remove anything that is not a socket. */
function removeStale(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket`);
  unlinkSync(path);
}

/**
 * Serve a network driver and/or IPAM driver on a unix socket. The socket file is
 * replaced if a stale one is there and is removed by `close()`.
 */
export async function servePlugin(opts: ServePluginOptions): Promise<PluginServer> {
  if (!opts.driver && !opts.ipam) throw new Error('servePlugin needs a driver, an ipam or both');
  const table = routes(opts);
  const server = createServer((req, res) => {
    void (async () => {
      const route = table.get((req.url ?? '').split('?')[0]!);
      if (req.method !== 'POST' || !route) {
        // drain, then answer what Docker's client treats as "not implemented"
        req.resume();
        send(res, 404, { Err: `${req.method} ${req.url}: not implemented by this plugin` });
        return;
      }
      let body: unknown;
      try {
        body = await readBody(req);
      } catch (e) {
        send(res, 400, { [route.errField]: `bad request: ${(e as Error).message}` });
        return;
      }
      try {
        const out = await route.handler(body as never);
        send(res, 200, out ?? {});
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        send(res, 500, { [route.errField]: msg || 'plugin error' });
      }
    })();
  });
  removeStale(opts.socket);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(opts.socket, opts.mode ?? 0o660);
  return {
    socket: opts.socket,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        try {
          removeStale(opts.socket);
        } catch {
          // something else took the path: not ours to remove
        }
      }),
  };
}
