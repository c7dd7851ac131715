/**
 * The driver registry: built-in drivers and remote plugins, one shape; and the
 * IPAM drivers: the built-in one ("default") and IPAM plugins, one interface.
 */
import { existsSync } from 'node:fs';
import { CnmError } from '../errors.js';
import type { ClusterIpam } from '../ipam/cluster-ipam.js';
import type { Ipam } from '../ipam/ipam-api.js';
import type { NetworkRecord } from '../types.js';
import { DEFAULT_SOCKET_DIR, DEFAULT_SPEC_DIRS, PluginClient, discoverPlugin, validPluginName } from '../plugin/client.js';
import type { CapabilitiesResponse } from '../plugin/api.js';
import { BridgeDriver } from './bridge.js';
import type { Driver, DriverContext } from './driver.js';
import { MacvlanDriver } from './macvlan.js';
import { NoopDriver } from './noop.js';
import { RemoteDriver } from './remote.js';
import { RemoteIpam } from '../ipam/remote.js';

/** How long an unknown driver name is looked for as a plugin whose socket may be late. */
const DISCOVERY_RETRY_MS = 1000;

export class DriverRegistry {
  private readonly drivers = new Map<string, Driver>();
  private readonly loading = new Map<string, Promise<Driver>>();
  private readonly ipams = new Map<string, Promise<Ipam>>();
  /** the IPAM of global networks, once the host has joined a cluster */
  clusterIpam: ClusterIpam | undefined;
  /** the IPAM of routed networks (each host's block), once the host has joined a cluster */
  blockIpam: Ipam | undefined;

  constructor(
    /** what the drivers share (the host, the firewall) */
    readonly context: DriverContext,
    /** the built-in IPAM, answering to "default" */
    readonly defaultIpam: Ipam,
  ) {
    this.register(new BridgeDriver(context));
    this.register(new MacvlanDriver(context));
    this.register(new NoopDriver('host', false));
    this.register(new NoopDriver('null', true));
  }

  register(d: Driver): void {
    this.drivers.set(d.name, d);
  }

  /** A built-in driver or a plugin already loaded; ERR_UNKNOWN_DRIVER otherwise. */
  get(name: string): Driver {
    const d = this.drivers.get(name);
    if (!d) throw this.unknown(name);
    return d;
  }

  /** Like {@link get}, but an unknown name is looked up as a remote plugin (and kept). */
  async resolve(name: string): Promise<Driver> {
    const d = this.drivers.get(name);
    if (d) return d;
    if (name === 'overlay' || name === 'routed') {
      throw new CnmError('ERR_INVALID_ARGUMENT', `the ${name} driver needs a cluster store: start cnm with --cluster-store etcd://HOST:PORT and --cluster-advertise IP`, { value: name });
    }
    let p = this.loading.get(name);
    if (!p) {
      p = this.loadPlugin(name).finally(() => this.loading.delete(name));
      this.loading.set(name, p);
    }
    return p;
  }

  /** Where plugins are looked for: the configured dir alone, or Docker's dirs. */
  pluginDirs(): string[] {
    return this.context.pluginDir ? [this.context.pluginDir] : [DEFAULT_SOCKET_DIR, ...DEFAULT_SPEC_DIRS];
  }

  private unknown(name: string): CnmError {
    return new CnmError(
      'ERR_UNKNOWN_DRIVER',
      `unknown network driver "${name}": available drivers are ${[...this.drivers.keys()].join(', ')}, or a plugin in ${this.pluginDirs().join(', ')}`,
      { value: name },
    );
  }

  /**
   * An IPAM driver: the built-in one for "default" (or ""), else a plugin that
   * implements IpamDriver; ERR_UNKNOWN_DRIVER when there is no such plugin. A
   * failed load is not kept.
   */
  async resolveIpam(name: string): Promise<Ipam> {
    if (name === 'default' || name === '') return this.defaultIpam;
    let p = this.ipams.get(name);
    if (!p) {
      p = this.loadIpam(name);
      this.ipams.set(name, p);
      p.catch(() => this.ipams.delete(name));
    }
    return p;
  }

  /** The IPAM of a network: the cluster's for a global network, else the one it names. */
  async ipamOf(net: NetworkRecord): Promise<Ipam> {
    if (net.scope !== 'global') return this.resolveIpam(net.ipam.driver);
    const ipam = net.driver === 'routed' ? this.blockIpam : this.clusterIpam;
    if (!ipam) throw new CnmError('ERR_CLUSTER_UNAVAILABLE', `network ${net.name} is global: this host has not joined the cluster store`, { network: net.name });
    return ipam;
  }

  private unknownIpam(name: string): CnmError {
    return new CnmError('ERR_UNKNOWN_DRIVER', `unknown IPAM driver "${name}": the default IPAM driver, or a plugin in ${this.pluginDirs().join(', ')}`, { value: name });
  }

  private async loadIpam(name: string): Promise<RemoteIpam> {
    const found = validPluginName(name) ? await this.discover(name) : null;
    if (!found) throw this.unknownIpam(name);
    const client = new PluginClient(found.address, { name, timeoutMs: this.context.pluginTimeoutMs });
    const impl = await client.activate();
    if (!impl.includes('IpamDriver')) {
      throw new CnmError('ERR_UNKNOWN_DRIVER', `plugin ${name} (${found.source}) does not implement IpamDriver (it implements ${impl.join(', ') || 'nothing'})`, {
        value: name,
      });
    }
    await client.call('IpamDriver.GetCapabilities', {}, { optional: true });
    return new RemoteIpam(name, client);
  }

  /** Find plugin `name`, looking again for about a second while its socket may be late. */
  private async discover(name: string): Promise<ReturnType<typeof discoverPlugin>> {
    const dirs = this.pluginDirs();
    // a plugin started together with us may not have made its socket yet: look
    // again for about a second, as Docker does (longer), unless no dir exists at all
    let found = discoverPlugin(name, dirs);
    for (let wait = 25, waited = 0; !found && waited < DISCOVERY_RETRY_MS && dirs.some((d) => existsSync(d)); waited += wait, wait = Math.min(wait * 2, 250)) {
      await new Promise((r) => setTimeout(r, wait));
      found = discoverPlugin(name, dirs);
    }
    return found;
  }

  /** Discover, activate and ask the capabilities of plugin `name`, as Docker does. */
  private async loadPlugin(name: string): Promise<Driver> {
    if (!validPluginName(name)) throw this.unknown(name);
    const found = await this.discover(name);
    if (!found) throw this.unknown(name);
    const client = new PluginClient(found.address, { name, timeoutMs: this.context.pluginTimeoutMs });
    const impl = await client.activate();
    if (!impl.includes('NetworkDriver')) {
      throw new CnmError('ERR_UNKNOWN_DRIVER', `plugin ${name} (${found.source}) does not implement NetworkDriver (it implements ${impl.join(', ') || 'nothing'})`, {
        value: name,
      });
    }
    const caps = await client.call<CapabilitiesResponse>('NetworkDriver.GetCapabilities', {});
    if (caps.Scope !== 'local' && caps.Scope !== 'global') {
      throw new CnmError('ERR_PLUGIN', `plugin ${name}: GetCapabilities: invalid Scope ${JSON.stringify(caps.Scope)}`, { value: name });
    }
    const d = new RemoteDriver(name, client, this.context, caps);
    this.register(d);
    return d;
  }

  names(): string[] {
    return [...this.drivers.keys()];
  }
}
