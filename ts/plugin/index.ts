/**
 * `cnm/plugin`: write Docker / libnetwork remote network driver and IPAM driver
 * plugins in TypeScript, and talk to such plugins.
 *
 * ```ts
 * import { servePlugin } from 'cnm/plugin';
 * await servePlugin({ socket: '/run/docker/plugins/myplugin.sock', driver: { … } });
 * ```
 */
export * from './api.js';
export { type IpamDriverPlugin, type NetworkDriverPlugin, type PluginServer, type ServePluginOptions, servePlugin } from './server.js';
export {
  type CallOptions,
  DEFAULT_SOCKET_DIR,
  DEFAULT_SPEC_DIRS,
  type DiscoveredPlugin,
  type PluginAddress,
  PluginClient,
  type PluginClientOptions,
  discoverPlugin,
  parsePluginUrl,
  validPluginName,
} from './client.js';
