/**
 * NetworkController: the entry point of cnm. It owns the driver registry, IPAM and
 * the store, creates the predefined networks, and runs every mutating operation as
 * validate → reserve in the store → program the kernel → commit, undoing both
 * sides when a step fails.
 */
import { join } from 'node:path';
import { DriverRegistry } from './drivers/registry.js';
import type { Driver } from './drivers/driver.js';
import { BridgeOptions } from './drivers/bridge.js';
import { CnmError, invalid, toCnmError } from './errors.js';
import { DEFAULT_POOLS, type DefaultPool, chooseSubnet, nameserverPrefixes, ulaPrefix, validatePools } from './ipam/default-pools.js';
import { Ipam } from './ipam/ipam.js';
import { usesRemoteIpam } from './ipam/remote.js';
import { Pool, type PoolConfig } from './ipam/pool.js';
import { type Cidr, contains, formatCidr, overlaps, parseCidr, parseIp, parseSubnet } from './net/ip.js';
import { fault } from './fault.js';
import { Firewall, checkBackend } from './firewall.js';
import type { FirewallBackendName } from './native-api.js';
import { type PortBinding, checkBinding } from './ports.js';
import { releasePorts, reservePorts } from './port-allocator.js';
import { native } from './native.js';
import { Endpoint } from './endpoint.js';
import { Network } from './network.js';
import { currentOwner } from './owner.js';
import { allNetworks, allSandboxes, endpointsOfNetwork, endpointsOfSandbox, findNetwork, findSandbox, keys } from './records.js';
import { type ReconcileReport, reconcile } from './reconcile.js';
import { Sandbox } from './sandbox.js';
import { LmdbStore } from './store/lmdb-store.js';
import { ensureStateDir } from './store/state-dir.js';
import type { Store, StoreTxn } from './store/store.js';
import type { EndpointRecord, NetworkRecord, SandboxMode, SandboxRecord } from './types.js';
import { checkIfname, checkName, newId, parseMtu } from './validate.js';

/** Options of {@link NetworkController.open}; the daemon-level settings of Docker. */
export interface ControllerOptions {
  /** where the store lives; default /var/lib/cnm */
  stateDir?: string;
  /** named netns to treat as the host; default: the process's own netns */
  hostNetns?: string | null;
  /** default bridge address in CIDR form, e.g. "172.17.0.1/16" (Docker's --bip) */
  bip?: string;
  /** use this existing bridge device for the default bridge (Docker's -b) */
  bridge?: string;
  /** MTU of the default bridge network (Docker's --mtu) */
  mtu?: number;
  /** pools for automatic subnet choice (Docker's default-address-pools) */
  defaultAddressPools?: DefaultPool[];
  /** firewall backend; default nftables */
  firewall?: FirewallBackendName;
  /** Docker's --iptables: false means no firewall rules at all (firewall "none") */
  iptables?: boolean;
  /** inter-container communication on the default bridge (Docker's --icc); default true */
  icc?: boolean;
  /** turn on IPv4 forwarding in the host netns (Docker's --ip-forward); default true */
  ipForward?: boolean;
  /** default host IP for published ports (Docker's --ip); default 0.0.0.0 */
  ip?: string;
  /** host port range for ephemeral published ports; default: the host's ip_local_port_range */
  portRange?: [number, number];
  /** run reconcile when opening (default true; `cnm system reconcile --dry-run` turns it off) */
  reconcileOnOpen?: boolean;
  /** where remote network driver plugins are found (<dir>/<name>.sock, .spec, .json); default /run/docker/plugins */
  pluginDir?: string;
}

/** One IPAM pool as given to network create. */
export interface IpamPoolRequest {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  auxAddresses?: Record<string, string>;
}

/** What `docker network create` carries. */
export interface NetworkCreateOptions {
  name: string;
  driver?: string;
  /** one entry per subnet; omit to choose a subnet from the default pools */
  ipam?: IpamPoolRequest[];
  internal?: boolean;
  attachable?: boolean;
  options?: Record<string, string>;
  labels?: Record<string, string>;
  /** shorthand for the com.docker.network.driver.mtu option */
  mtu?: number;
  /** give the network IPv6 too; a /64 is chosen when no IPv6 subnet is given */
  enableIPv6?: boolean;
  /** an IPAM driver plugin by name (Docker's --ipam-driver); default: the default IPAM */
  ipamDriver?: string;
  /** options for the IPAM driver (Docker's --ipam-opt) */
  ipamOptions?: Record<string, string>;
}

/** Options of {@link NetworkController.connect}. */
export interface ConnectOptions {
  /** static IPv4 address */
  ip?: string;
  /** static IPv6 address */
  ip6?: string;
  aliases?: string[];
  /** ports to publish on this endpoint (bridge networks) */
  ports?: PortBinding[];
}

/** Options of {@link NetworkController.createSandbox}. */
export interface SandboxCreateOptions {
  name: string;
  /** a network name or id, `host`, `none` or `container:<sandbox>`; default `bridge` */
  net?: string;
  ip?: string;
  ip6?: string;
  aliases?: string[];
  /** ports to publish (Docker's -p), on the sandbox's network */
  ports?: PortBinding[];
}

export const DEFAULT_STATE_DIR = '/var/lib/cnm';
export const DEFAULT_BRIDGE_DEVICE = 'cnm0';

export class NetworkController {
  readonly hostNetns: string | null;
  readonly stateDir: string;
  /** @internal */ readonly store: Store;
  /** @internal */ readonly ipam: Ipam;
  /** @internal */ readonly drivers: DriverRegistry;
  /** @internal */ readonly firewall: Firewall;
  private readonly pools: readonly DefaultPool[];
  private readonly defaultHostIp: string;
  private portRange: [number, number];

  private constructor(opts: ControllerOptions, store: Store, stateDir: string, backend: FirewallBackendName) {
    this.hostNetns = opts.hostNetns ?? null;
    this.stateDir = stateDir;
    this.store = store;
    this.ipam = new Ipam(store);
    this.firewall = new Firewall(backend, this.hostNetns);
    this.drivers = new DriverRegistry({ hostNetns: this.hostNetns, firewall: this.firewall, ipForward: opts.ipForward !== false, pluginDir: opts.pluginDir });
    this.pools = opts.defaultAddressPools ?? DEFAULT_POOLS;
    this.defaultHostIp = opts.ip ?? '0.0.0.0';
    this.portRange = opts.portRange ?? [32768, 60999];
  }

  /**
   * Open the controller: check options, open the store under stateDir (one store
   * per host netns), reconcile store and kernel, and create the predefined
   * networks `none`, `host` and `bridge`.
   */
  static async open(opts: ControllerOptions = {}): Promise<NetworkController> {
    if (opts.bip !== undefined && opts.bridge !== undefined) {
      throw invalid('you specified -b & --bip, mutually exclusive options: configure one or the other', opts.bip);
    }
    if (opts.bridge !== undefined) checkIfname(opts.bridge, 'bridge');
    if (opts.bip !== undefined) parseCidr(opts.bip, 'bip');
    if (opts.mtu !== undefined) parseMtu(opts.mtu);
    if (opts.defaultAddressPools) validatePools(opts.defaultAddressPools);
    const backend = firewallBackend(opts);
    if (opts.icc === false && backend === 'none') {
      throw invalid('you specified --iptables=false (firewall none) with --icc=false: ICC=false needs the firewall to work; set --icc or --iptables to true', opts.icc);
    }
    if (opts.ip !== undefined && parseIp(opts.ip, 'ip').family !== 4) throw invalid(`--ip ${opts.ip} must be an IPv4 address`, opts.ip);
    if (opts.portRange !== undefined) checkPortRange(opts.portRange);
    const host = opts.hostNetns ?? null;
    if (host !== null) {
      checkName('host netns', host, 200);
      if (!(await native.netnsExists(host))) {
        throw new CnmError('ERR_NETNS_NOT_FOUND', `host netns ${host} does not exist (create it with "ip netns add ${host}")`, {
          netns: host,
        });
      }
    }
    const base = opts.stateDir ?? DEFAULT_STATE_DIR;
    const dir = join(base, host === null ? 'root' : `netns-${host}`);
    // the base dir is checked too: it holds every host's state
    ensureStateDir(base);
    const store = LmdbStore.open(dir);
    const ctl = new NetworkController(opts, store, base, backend);
    try {
      await ctl.prepareHost(opts);
      if (opts.reconcileOnOpen !== false) await ctl.reconcile();
      await ctl.ensurePredefined(opts);
    } catch (e) {
      await store.close();
      throw e;
    }
    return ctl;
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** Firewall base rules, IP forwarding and the ephemeral port range of the host netns. */
  private async prepareHost(opts: ControllerOptions): Promise<void> {
    await this.firewall.init();
    if (opts.ipForward !== false && (await native.sysctlGet(this.hostNetns, 'net.ipv4.ip_forward')).trim() !== '1') {
      await native.sysctlSet(this.hostNetns, 'net.ipv4.ip_forward', '1');
    }
    if (opts.portRange === undefined) {
      const [lo, hi] = (await native.sysctlGet(this.hostNetns, 'net.ipv4.ip_local_port_range')).trim().split(/\s+/).map(Number);
      if (lo && hi && lo <= hi) this.portRange = [lo, hi];
    }
  }

  // ---------------------------------------------------------------- networks

  /** Create a network. Nothing is left behind when it fails. */
  async createNetwork(req: NetworkCreateOptions): Promise<Network> {
    const rec = await this.planNetwork(req);
    return new Network(this, await this.commitNetwork(rec));
  }

  private async planNetwork(req: NetworkCreateOptions, predefined = false): Promise<NetworkRecord> {
    if (typeof req !== 'object' || req === null) throw invalid('network create needs options', req);
    checkName('network', req.name);
    const driverName = req.driver ?? 'bridge';
    if (typeof driverName !== 'string' || driverName === '') throw invalid('driver name must not be empty', driverName);
    const driver = await this.drivers.resolve(driverName);
    if (!predefined && (driverName === 'host' || driverName === 'null')) {
      throw invalid(`only one instance of "${driverName}" network is allowed`, driverName);
    }
    const ipamDriver = req.ipamDriver ?? 'default';
    if (typeof ipamDriver !== 'string' || ipamDriver === '') throw invalid('IPAM driver name must not be empty', ipamDriver);
    const remoteIpam = ipamDriver !== 'default';
    if (remoteIpam) {
      if (!driver.usesIpam) throw invalid(`the ${driverName} driver takes no IPAM driver`, ipamDriver);
      // the plugin must be there and implement IpamDriver
      await this.drivers.resolveIpam(ipamDriver);
    }
    const options = { ...req.options };
    const labels = { ...req.labels };
    const ipamOptions = { ...req.ipamOptions };
    for (const [what, rec] of [['option', options], ['label', labels], ['IPAM option', ipamOptions]] as const) {
      for (const [k, v] of Object.entries(rec)) {
        if (k === '' || typeof v !== 'string') throw invalid(`${what} ${k}: keys must be non-empty and values strings`, k);
      }
    }
    if (req.mtu !== undefined) options[BridgeOptions.mtu] = String(parseMtu(req.mtu));
    const reqs = req.ipam ?? [];
    if (!Array.isArray(reqs)) throw invalid('ipam must be a list of pools', reqs);
    const config: PoolConfig[] = [];
    if (driver.usesIpam) {
      for (const p of reqs) {
        if (!p.subnet) {
          if (p.gateway || p.ipRange) throw invalid('--gateway and --ip-range need a --subnet', p.gateway ?? p.ipRange);
          if (p.auxAddresses && Object.keys(p.auxAddresses).length > 0) throw invalid('--aux-address needs a --subnet', p.auxAddresses);
          continue;
        }
        // Pool validates gateway, range and aux addresses against the subnet
        const cfg = new Pool({ subnet: p.subnet, gateway: p.gateway, ipRange: p.ipRange, auxAddresses: p.auxAddresses }).config;
        if (remoteIpam) {
          // the request as given: the plugin chooses what the user left out
          const raw: PoolConfig = { subnet: cfg.subnet };
          if (p.gateway) raw.gateway = cfg.gateway;
          if (p.ipRange) raw.ipRange = cfg.ipRange;
          if (cfg.auxAddresses && Object.keys(cfg.auxAddresses).length > 0) raw.auxAddresses = cfg.auxAddresses;
          config.push(raw);
        } else {
          if (!p.gateway) cfg.gatewayAuto = true;
          config.push(cfg);
        }
      }
      for (let i = 0; i < config.length; i++) {
        for (let j = i + 1; j < config.length; j++) {
          if (overlaps(parseSubnet(config[i]!.subnet), parseSubnet(config[j]!.subnet))) {
            throw new CnmError('ERR_SUBNET_OVERLAP', `subnets ${config[i]!.subnet} and ${config[j]!.subnet} overlap`, {
              subnet: config[j]!.subnet,
            });
          }
        }
      }
    } else if (reqs.some((p) => p.subnet)) {
      throw invalid(`the ${driverName} driver takes no subnet`, reqs);
    }
    if (req.enableIPv6 !== undefined && typeof req.enableIPv6 !== 'boolean') throw invalid('enableIPv6 must be a boolean', req.enableIPv6);
    // an IPv6 subnet asks for IPv6 as plainly as --ipv6 does
    const enableIPv6 = driver.usesIpam && (req.enableIPv6 === true || config.some((c) => c.subnet.includes(':')));
    const rec: NetworkRecord = {
      id: newId(),
      name: req.name,
      driver: driverName,
      scope: 'local',
      created: new Date().toISOString(),
      internal: req.internal === true,
      attachable: req.attachable === true,
      enableIPv6,
      options,
      labels,
      ipam: { driver: ipamDriver, options: ipamOptions, config, userSubnet: config.length > 0 },
      state: 'creating',
    };
    if (req.ipamOptions !== undefined && req.ipamOptions !== null) rec.ipam.optionsGiven = true;
    if (predefined) rec.predefined = true;
    driver.prepareNetwork(rec);
    return rec;
  }

  /** Reserve in the store, program the kernel, commit; undo on failure. */
  private async commitNetwork(rec: NetworkRecord): Promise<NetworkRecord> {
    const driver = await this.drivers.resolve(rec.driver);
    if (usesRemoteIpam(rec)) return this.commitRemoteIpamNetwork(rec, driver);
    const given = rec.ipam.config;
    const autoV4 = driver.usesIpam && !given.some((c) => !c.subnet.includes(':'));
    const autoV6 = driver.usesIpam && rec.enableIPv6 && !given.some((c) => c.subnet.includes(':'));
    const autoSubnet = autoV4 || autoV6;
    let avoid: Cidr[] = [];
    if (autoSubnet) avoid = await this.hostPrefixes();
    for (let attempt = 0; ; attempt++) {
      if (autoSubnet) {
        const taken = allNetworks(this.store).flatMap((n) => n.ipam.config.map((c) => parseSubnet(c.subnet)));
        const chosen: PoolConfig[] = [];
        if (autoV4) chosen.push(new Pool({ subnet: chooseSubnet(this.pools, [...avoid, ...taken]) }).config);
        if (autoV6) chosen.push(new Pool({ subnet: chooseSubnet([{ base: ulaPrefix(), size: 64 }], [...avoid, ...taken], 6) }).config);
        rec.ipam.config = [...given, ...chosen];
        driver.prepareNetwork(rec);
      }
      try {
        this.store.txn((tx) => this.reserveNetwork(tx, rec));
        break;
      } catch (e) {
        // another process took the subnet we chose between our look and our write
        if (!(autoSubnet && e instanceof CnmError && e.code === 'ERR_SUBNET_OVERLAP' && attempt < 3)) throw e;
      }
    }
    let created = false;
    try {
      fault('network.create.reserve');
      await driver.createNetwork(rec);
      created = true;
      fault('network.create.kernel');
    } catch (e) {
      const err = toCnmError(e, `create network ${rec.name}`);
      if (created) await driver.deleteNetwork(rec).catch((u: Error) => (err.details.undoErrors = [u]));
      this.store.txn((tx) => this.unreserveNetwork(tx, rec));
      throw err;
    }
    rec.state = 'ready';
    delete rec.owner;
    this.store.txn((tx) => tx.put(keys.net(rec.id), rec));
    fault('network.create.commit');
    return rec;
  }

  /**
   * commitNetwork for a network whose addresses come from an IPAM plugin: the pools
   * and gateways are requested first, and released again when a later step fails.
   */
  private async commitRemoteIpamNetwork(rec: NetworkRecord, driver: Driver): Promise<NetworkRecord> {
    const ipam = await this.drivers.resolveIpam(rec.ipam.driver);
    rec.ipam.config = await ipam.requestPools(rec.ipam.config, rec.ipam.options, rec.enableIPv6);
    let reserved = false;
    let created = false;
    try {
      driver.prepareNetwork(rec);
      this.store.txn((tx) => this.reserveNetwork(tx, rec));
      reserved = true;
      fault('network.create.reserve');
      await driver.createNetwork(rec);
      created = true;
      fault('network.create.kernel');
    } catch (e) {
      const err = toCnmError(e, `create network ${rec.name}`);
      const undo: Error[] = [];
      if (created) await driver.deleteNetwork(rec).catch((u: Error) => undo.push(u));
      if (reserved) this.store.txn((tx) => this.unreserveNetwork(tx, rec));
      await ipam.releasePools(rec.ipam.config).catch((u: Error) => undo.push(u));
      if (undo.length) err.details.undoErrors = undo;
      throw err;
    }
    rec.state = 'ready';
    delete rec.owner;
    this.store.txn((tx) => tx.put(keys.net(rec.id), rec));
    fault('network.create.commit');
    return rec;
  }

  /** Give a remote IPAM network's gateways and pools back to the plugin. @internal */
  async releaseRemotePools(net: NetworkRecord): Promise<void> {
    if (!usesRemoteIpam(net)) return;
    await (await this.drivers.resolveIpam(net.ipam.driver)).releasePools(net.ipam.config);
  }

  /**
   * Give a remote IPAM network's endpoint addresses back to the plugin. Best effort,
   * as in libnetwork (which logs a failure): the endpoint is gone either way. @internal
   */
  async releaseRemoteAddress(net: NetworkRecord | undefined, ep: Pick<EndpointRecord, 'ipv4' | 'ipv6'>): Promise<void> {
    if (!net || !usesRemoteIpam(net) || (!ep.ipv4 && !ep.ipv6)) return;
    let ipam;
    try {
      ipam = await this.drivers.resolveIpam(net.ipam.driver);
    } catch {
      return; // the plugin is gone: nothing more we can do for its bookkeeping
    }
    for (const address of [ep.ipv4, ep.ipv6]) {
      // a refusal is the plugin's bookkeeping too; the other address is still given back
      await ipam.releaseAddress(net, address).catch(() => undefined);
    }
  }

  private reserveNetwork(tx: StoreTxn, rec: NetworkRecord): void {
    if (tx.get(keys.netName(rec.name)) !== undefined) {
      throw new CnmError('ERR_NAME_CONFLICT', `network with name ${rec.name} already exists`, { value: rec.name, network: rec.name });
    }
    for (const other of allNetworks(tx)) {
      if (rec.bridge && other.bridge === rec.bridge) {
        throw new CnmError('ERR_NAME_CONFLICT', `bridge device ${rec.bridge} is already used by network ${other.name}`, { value: rec.bridge });
      }
      for (const a of rec.ipam.config) {
        for (const b of other.ipam.config) {
          if (overlaps(parseSubnet(a.subnet), parseSubnet(b.subnet))) {
            throw new CnmError('ERR_SUBNET_OVERLAP', `Pool overlaps with other one on this address space: ${a.subnet} overlaps ${b.subnet} of network ${other.name}`, {
              subnet: a.subnet,
              network: other.name,
            });
          }
        }
      }
    }
    rec.owner = currentOwner();
    tx.put(keys.net(rec.id), rec);
    tx.put(keys.netName(rec.name), rec.id);
  }

  /** @internal */
  unreserveNetwork(tx: StoreTxn, rec: NetworkRecord): void {
    tx.del(keys.net(rec.id));
    if (tx.get(keys.netName(rec.name)) === rec.id) tx.del(keys.netName(rec.name));
    this.ipam.purge(tx, rec);
  }

  /** Prefixes automatic subnet choice must avoid: host routes and nameservers. */
  private async hostPrefixes(): Promise<Cidr[]> {
    const out: Cidr[] = nameserverPrefixes();
    for (const r of await native.listRoutes(this.hostNetns, null)) {
      try {
        const c = parseCidr(r.dst, 'route');
        if (c.prefix > 0) out.push(c);
      } catch {
        // routes we cannot parse cannot be compared; skip them
      }
    }
    return out;
  }

  /** All networks, in creation order. */
  listNetworks(): Network[] {
    return allNetworks(this.store)
      .filter((n) => n.state === 'ready')
      .sort((a, b) => a.created.localeCompare(b.created))
      .map((n) => new Network(this, n));
  }

  /** A network by id, name or unique id prefix; ERR_NETWORK_NOT_FOUND otherwise. */
  getNetwork(ref: string): Network {
    return new Network(this, findNetwork(this.store, ref));
  }

  /** Remove a network; refused while endpoints exist or for predefined networks. */
  async removeNetwork(ref: string): Promise<void> {
    const rec = findNetwork(this.store, ref);
    if (rec.predefined) {
      throw new CnmError('ERR_PREDEFINED_NETWORK', `${rec.name} is a pre-defined network and cannot be removed`, { network: rec.name });
    }
    const eps = endpointsOfNetwork(this.store, rec.id);
    if (eps.length > 0) {
      throw new CnmError('ERR_NETWORK_IN_USE', `error while removing network: network ${rec.name} id ${rec.id} has active endpoints`, {
        network: rec.name,
      });
    }
    this.store.txn((tx) => {
      const cur = tx.get<NetworkRecord>(keys.net(rec.id));
      if (!cur) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${ref} not found`, { value: ref });
      if (endpointsOfNetwork(tx, rec.id).length > 0) {
        throw new CnmError('ERR_NETWORK_IN_USE', `network ${rec.name} has active endpoints`, { network: rec.name });
      }
      tx.put(keys.net(rec.id), { ...cur, state: 'deleting', owner: currentOwner() });
    });
    try {
      fault('network.rm.mark');
      await (await this.drivers.resolve(rec.driver)).deleteNetwork(rec);
    } catch (e) {
      this.store.txn((tx) => tx.put(keys.net(rec.id), rec));
      throw toCnmError(e, `remove network ${rec.name}`);
    }
    // the kernel side is gone: from here on the removal only moves forward
    fault('network.rm.kernel');
    this.store.txn((tx) => this.unreserveNetwork(tx, rec));
    fault('network.rm.commit');
    // as libnetwork: the gateway address and pools go back to the IPAM plugin last
    await this.releaseRemotePools(rec).catch(() => undefined);
  }

  // --------------------------------------------------------------- sandboxes

  /**
   * Create a sandbox: the named netns `name` (so `ip netns exec NAME` works),
   * joined to one network, or sharing the host's or another sandbox's netns.
   */
  async createSandbox(req: SandboxCreateOptions): Promise<Sandbox> {
    if (typeof req !== 'object' || req === null) throw invalid('sandbox create needs options', req);
    checkName('sandbox', req.name);
    const netRef = req.net ?? 'bridge';
    if (typeof netRef !== 'string' || netRef === '') throw invalid('--net must not be empty', netRef);
    let mode: SandboxMode = 'network';
    let shared: SandboxRecord | undefined;
    let net: NetworkRecord | undefined;
    if (netRef.startsWith('container:')) {
      mode = 'container';
      shared = findSandbox(this.store, netRef.slice('container:'.length));
      if (req.ip !== undefined) throw invalid('conflicting options: --ip and --net container:… cannot be used together', req.ip);
    } else {
      net = findNetwork(this.store, netRef);
      if (net.driver === 'host') mode = 'host';
      else if (net.driver === 'null') mode = 'none';
      if (mode !== 'network' && (req.ip !== undefined || req.ip6 !== undefined)) {
        throw invalid(`conflicting options: --ip/--ip6 cannot be used with network mode ${mode}`, req.ip ?? req.ip6);
      }
    }
    if (await native.netnsExists(req.name)) {
      throw new CnmError('ERR_NAME_CONFLICT', `a network namespace named ${req.name} already exists`, { value: req.name, sandbox: req.name });
    }
    const sb: SandboxRecord = {
      id: newId(),
      name: req.name,
      netns: req.name,
      mode,
      created: new Date().toISOString(),
      state: 'creating',
      owner: currentOwner(),
    };
    if (shared) sb.sharedWith = shared.id;
    this.store.txn((tx) => {
      if (tx.get(keys.sbName(sb.name)) !== undefined) {
        throw new CnmError('ERR_NAME_CONFLICT', `sandbox name ${sb.name} is already in use`, { value: sb.name, sandbox: sb.name });
      }
      tx.put(keys.sb(sb.id), sb);
      tx.put(keys.sbName(sb.name), sb.id);
    });
    let netnsMade = false;
    let joined: EndpointRecord | undefined;
    try {
      fault('sandbox.create.reserve');
      if (mode === 'host') await native.netnsBind(sb.netns, this.hostNetns);
      else if (mode === 'container') await native.netnsBind(sb.netns, shared!.netns);
      else await native.netnsCreate(sb.netns);
      netnsMade = true;
      fault('sandbox.create.netns');
      // host-mode sandboxes publish nothing: they use the host's ports directly, as in Docker
      const ports = mode === 'network' ? req.ports : undefined;
      if (net) joined = await this.join(net, sb, { ip: req.ip, ip6: req.ip6, aliases: req.aliases, ports }, true);
      fault('sandbox.create.join');
    } catch (e) {
      const undo: Error[] = [];
      if (joined && net) {
        const driver = await this.drivers.resolve(net.driver);
        if (joined.ports?.length) await driver.revokeExternalConnectivity(net, joined).catch((u: Error) => undo.push(u));
        await driver.leave(net, joined, sb).catch((u: Error) => undo.push(u));
      }
      if (netnsMade) await native.netnsDelete(sb.netns).catch((u: Error) => undo.push(u));
      this.store.txn((tx) => {
        if (joined) this.forgetEndpoint(tx, joined);
        tx.del(keys.sb(sb.id));
        tx.del(keys.sbName(sb.name));
      });
      if (joined) await this.releaseRemoteAddress(net, joined);
      const err = toCnmError(e, `create sandbox ${sb.name}`);
      if (undo.length) err.details.undoErrors = undo;
      throw err;
    }
    sb.state = 'ready';
    delete sb.owner;
    this.store.txn((tx) => tx.put(keys.sb(sb.id), sb));
    fault('sandbox.create.commit');
    return new Sandbox(this, sb);
  }

  listSandboxes(): Sandbox[] {
    return allSandboxes(this.store)
      .filter((s) => s.state === 'ready')
      .sort((a, b) => a.created.localeCompare(b.created))
      .map((s) => new Sandbox(this, s));
  }

  getSandbox(ref: string): Sandbox {
    return new Sandbox(this, findSandbox(this.store, ref));
  }

  /** Remove a sandbox: its endpoints, their addresses and its netns. Best effort. */
  async removeSandbox(ref: string): Promise<void> {
    const sb = findSandbox(this.store, ref);
    const users = allSandboxes(this.store).filter((s) => s.sharedWith === sb.id);
    if (users.length > 0) {
      throw new CnmError('ERR_SANDBOX_IN_USE', `sandbox ${sb.name} is shared by ${users.map((u) => u.name).join(', ')} (container:${sb.name}); remove those first`, {
        sandbox: sb.name,
      });
    }
    this.store.txn((tx) => tx.put(keys.sb(sb.id), { ...sb, state: 'deleting', owner: currentOwner() }));
    // deleting the netns takes the sandbox ends of all veths with it; the host ends
    // are then deleted explicitly, all in flight together
    try {
      fault('sandbox.rm.mark');
      await native.netnsDelete(sb.netns);
    } catch (e) {
      this.store.txn((tx) => tx.put(keys.sb(sb.id), sb));
      throw toCnmError(e, `remove sandbox ${sb.name}`);
    }
    fault('sandbox.rm.netns');
    const eps = endpointsOfSandbox(this.store, sb.id);
    const results = await Promise.allSettled(
      eps.map(async (ep) => {
        const net = this.store.get<NetworkRecord>(keys.net(ep.networkId));
        if (!net) return;
        const driver = await this.drivers.resolve(net.driver);
        if (ep.ports?.length) await driver.revokeExternalConnectivity(net, ep);
        await driver.leave(net, ep, sb);
      }),
    );
    fault('sandbox.rm.leave');
    // the netns is gone, so the records go too; a failed host-end delete is reported
    // and left for reconcile, which removes veths that belong to no endpoint
    const nets = new Map(eps.map((ep) => [ep.id, this.store.get<NetworkRecord>(keys.net(ep.networkId))]));
    this.store.txn((tx) => {
      for (const ep of eps) this.forgetEndpoint(tx, ep);
      tx.del(keys.sb(sb.id));
      if (tx.get(keys.sbName(sb.name)) === sb.id) tx.del(keys.sbName(sb.name));
    });
    await Promise.all(eps.map((ep) => this.releaseRemoteAddress(nets.get(ep.id), ep)));
    fault('sandbox.rm.commit');
    const errors = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as Error);
    if (errors.length > 0) {
      const first = toCnmError(errors[0], `remove sandbox ${sb.name}`);
      first.details.undoErrors = errors.slice(1);
      throw first;
    }
  }

  // -------------------------------------------------------------- endpoints

  /** Connect a sandbox to a network (Docker's `network connect`). */
  async connect(netRef: string, sbRef: string, opts: ConnectOptions = {}): Promise<Endpoint> {
    const net = findNetwork(this.store, netRef);
    const sb = findSandbox(this.store, sbRef);
    if (sb.mode === 'container') {
      throw invalid('container sharing network namespace with another container or host cannot be connected to any other network', sb.name);
    }
    if (sb.mode === 'host' || net.driver === 'host') {
      throw invalid('container cannot be disconnected from host network or connected to host network', sb.name);
    }
    if (sb.mode === 'none' || net.driver === 'null') {
      throw invalid('container cannot be connected to multiple networks with one of the networks in private (none) mode', sb.name);
    }
    return new Endpoint(await this.join(net, sb, opts, false));
  }

  private async join(net: NetworkRecord, sb: SandboxRecord, opts: ConnectOptions, creating: boolean): Promise<EndpointRecord> {
    if (net.state !== 'ready') throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${net.name} is being created or removed`, { network: net.name });
    if (!creating && sb.state !== 'ready') throw new CnmError('ERR_SANDBOX_NOT_FOUND', `sandbox ${sb.name} is being created or removed`, { sandbox: sb.name });
    const driver = await this.drivers.resolve(net.driver);
    const aliases = opts.aliases ?? [];
    if (!Array.isArray(aliases) || aliases.some((a) => typeof a !== 'string' || a === '' || /\s/.test(a))) {
      throw invalid('aliases must be non-empty strings without spaces', aliases);
    }
    if (net.predefined && aliases.length > 0) {
      throw invalid('network-scoped alias is supported only for containers in user defined networks', aliases);
    }
    const bindings = (opts.ports ?? []).map(checkBinding);
    if (bindings.length > 0 && net.internal) {
      throw invalid(`network ${net.name} is internal: it has no way in or out, so ports cannot be published on it`, net.name);
    }
    if (opts.ip6 !== undefined && !net.ipam.userSubnet) {
      throw invalid('user specified IP address is supported only when connecting to networks with user configured subnets', opts.ip6);
    }
    if (opts.ip !== undefined) {
      if (net.predefined && net.name === 'bridge') throw invalid('user specified IP address is supported on user defined networks only', opts.ip);
      if (!net.ipam.userSubnet) throw invalid('user specified IP address is supported only when connecting to networks with user configured subnets', opts.ip);
    }
    const ep: EndpointRecord = {
      id: newId(),
      networkId: net.id,
      sandboxId: sb.id,
      ifname: '',
      hostIfname: '',
      mac: '',
      ipv4: '',
      ipv6: '',
      gateway: '',
      gateway6: '',
      defaultGateway: false,
      aliases,
      staticIp: opts.ip !== undefined,
      created: new Date().toISOString(),
      state: 'pending',
      owner: currentOwner(),
    };
    const hostIp = net.options[BridgeOptions.hostBinding] ?? this.defaultHostIp;
    // an IPAM plugin is asked before the (synchronous) store transaction
    let remote: { ipv4: string; ipv6: string } | undefined;
    if (usesRemoteIpam(net) && driver.ownNetns && driver.usesIpam) {
      const has6 = net.ipam.config.some((c) => c.subnet.includes(':'));
      if (opts.ip6 !== undefined && !has6) throw invalid(`network ${net.name} has no IPv6 subnet: create it with --ipv6 to use --ip6`, opts.ip6);
      const ipam = await this.drivers.resolveIpam(net.ipam.driver);
      remote = { ipv4: await ipam.requestAddress(net, 4, opts.ip), ipv6: '' };
      if (has6) {
        try {
          remote.ipv6 = await ipam.requestAddress(net, 6, opts.ip6);
        } catch (e) {
          await this.releaseRemoteAddress(net, remote);
          throw e;
        }
      }
    }
    try {
      this.store.txn((tx) => {
        this.reserveEndpoint(tx, net, sb, ep, driver, opts.ip, opts.ip6, remote);
        if (bindings.length > 0 && driver.usesIpam) {
          ep.ports = reservePorts(tx, bindings, hostIp, this.portRange, ep.id);
          tx.put(keys.ep(net.id, ep.id), ep);
        }
      });
    } catch (e) {
      if (remote !== undefined) await this.releaseRemoteAddress(net, remote);
      throw e;
    }
    // the port rules can go in before the link exists, so both are in flight together
    const [joined, published] = await Promise.allSettled([
      (async () => {
        fault('connect.reserve');
        const r = await driver.join(net, ep, sb);
        return r;
      })(),
      ep.ports?.length ? driver.programExternalConnectivity(net, ep) : Promise.resolve(),
    ]);
    let injected: unknown;
    if (joined.status === 'fulfilled' && published.status === 'fulfilled') {
      try {
        fault('connect.kernel');
      } catch (e) {
        injected = e;
      }
    }
    if (joined.status === 'rejected' || published.status === 'rejected' || injected !== undefined) {
      const first = joined.status === 'rejected' ? joined.reason : published.status === 'rejected' ? published.reason : injected;
      const err = toCnmError(first, `connect ${sb.name} to ${net.name}`);
      const undo: Error[] = [];
      if (joined.status === 'fulfilled') await driver.leave(net, ep, sb).catch((u: Error) => undo.push(u));
      if (published.status === 'fulfilled' && ep.ports?.length) await driver.revokeExternalConnectivity(net, ep).catch((u: Error) => undo.push(u));
      if (undo.length) err.details.undoErrors = undo;
      this.store.txn((tx) => this.forgetEndpoint(tx, ep));
      await this.releaseRemoteAddress(net, ep);
      throw err;
    }
    if (joined.value.mac) ep.mac = joined.value.mac;
    ep.state = 'active';
    delete ep.owner;
    // the commit mark only matters to reconcile after a crash, so it is written in
    // the background; it re-reads the record so a disconnect in between wins
    this.store.txnLater((tx) => {
      const cur = tx.get<EndpointRecord>(keys.ep(net.id, ep.id));
      if (cur?.state === 'pending') tx.put(keys.ep(net.id, ep.id), ep);
    });
    if (process.env.CNM_FAULT) {
      // make the background commit land first, so that a crash here is "after commit"
      await this.store.flushed();
      fault('connect.commit');
    }
    return ep;
  }

  private reserveEndpoint(
    tx: StoreTxn,
    net: NetworkRecord,
    sb: SandboxRecord,
    ep: EndpointRecord,
    driver: Driver,
    ip?: string,
    ip6?: string,
    /** the addresses an IPAM plugin gave (remote IPAM networks) */
    remote?: { ipv4: string; ipv6: string },
  ): void {
    if (!tx.get(keys.net(net.id))) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${net.name} not found`, { network: net.name });
    if (!tx.get(keys.sb(sb.id))) throw new CnmError('ERR_SANDBOX_NOT_FOUND', `sandbox ${sb.name} not found`, { sandbox: sb.name });
    const mine = endpointsOfSandbox(tx, sb.id);
    if (mine.some((e) => e.networkId === net.id)) {
      throw new CnmError('ERR_ALREADY_CONNECTED', `endpoint with name ${sb.name} already exists in network ${net.name}`, {
        network: net.name,
        sandbox: sb.name,
      });
    }
    if (driver.ownNetns && driver.usesIpam) {
      const prefix = net.options[BridgeOptions.ifacePrefix] ?? 'eth';
      const used = new Set(mine.map((e) => e.ifname));
      let i = 0;
      while (used.has(`${prefix}${i}`)) i++;
      ep.ifname = `${prefix}${i}`;
      // a remote IPAM network's address came from its plugin: the default IPAM keeps no record of it
      if (usesRemoteIpam(net)) {
        if (remote === undefined) throw new CnmError('ERR_PLUGIN', `no address from IPAM driver ${net.ipam.driver}`, { network: net.name });
        ep.ipv4 = remote.ipv4;
      } else {
        ep.ipv4 = this.ipam.allocate(tx, net, 4, ep.id, ip);
      }
      // with several subnets, the gateway is the one of the subnet the address came from
      ep.gateway = gatewayFor(net, ep.ipv4);
      if (remote?.ipv6) {
        ep.ipv6 = remote.ipv6;
        ep.gateway6 = gatewayFor(net, ep.ipv6);
      } else if (usesRemoteIpam(net)) {
        if (ip6 !== undefined) throw invalid(`network ${net.name} has no IPv6 subnet`, ip6);
      } else if (net.ipam.config.some((c) => c.subnet.includes(':'))) {
        ep.ipv6 = this.ipam.allocate(tx, net, 6, ep.id, ip6);
        ep.gateway6 = gatewayFor(net, ep.ipv6);
      } else if (ip6 !== undefined) {
        throw invalid(`network ${net.name} has no IPv6 subnet: create it with --ipv6 to use --ip6`, ip6);
      }
      ep.defaultGateway = !net.internal && !mine.some((e) => e.defaultGateway);
    }
    driver.createEndpoint(net, ep);
    tx.put(keys.ep(net.id, ep.id), ep);
    tx.put(keys.sbEp(sb.id, ep.id), net.id);
  }

  /** Drop an endpoint's records and addresses (inside a transaction). */
  /** @internal */
  forgetEndpoint(tx: StoreTxn, ep: EndpointRecord): void {
    const net = tx.get<NetworkRecord>(keys.net(ep.networkId));
    // a remote IPAM address goes back to its plugin after the transaction (releaseRemoteAddress)
    if (net && !usesRemoteIpam(net)) {
      this.ipam.release(tx, net, ep.ipv4);
      this.ipam.release(tx, net, ep.ipv6);
    }
    releasePorts(tx, ep.ports ?? []);
    tx.del(keys.ep(ep.networkId, ep.id));
    tx.del(keys.sbEp(ep.sandboxId, ep.id));
  }

  /** Disconnect a sandbox from a network and release its address. */
  async disconnect(netRef: string, sbRef: string): Promise<void> {
    const net = findNetwork(this.store, netRef);
    const sb = findSandbox(this.store, sbRef);
    const ep = endpointsOfSandbox(this.store, sb.id).find((e) => e.networkId === net.id);
    if (!ep) {
      throw new CnmError('ERR_NOT_CONNECTED', `container ${sb.name} is not connected to network ${net.name}`, { network: net.name, sandbox: sb.name });
    }
    if (net.driver === 'host' || net.driver === 'null') {
      throw invalid(`container cannot be disconnected from ${net.name} network`, net.name);
    }
    const driver = await this.drivers.resolve(net.driver);
    // the way back is open until the link goes: a failure before that leaves all as it was
    try {
      if (ep.ports?.length) await driver.revokeExternalConnectivity(net, ep);
      fault('disconnect.revoke');
    } catch (e) {
      if (ep.ports?.length) await driver.programExternalConnectivity(net, ep).catch(() => undefined);
      throw toCnmError(e, `disconnect ${sb.name} from ${net.name}`);
    }
    await driver.leave(net, ep, sb);
    fault('disconnect.leave');
    const heir = ep.defaultGateway ? this.gatewayHeir(sb, ep) : undefined;
    this.store.txn((tx) => {
      this.forgetEndpoint(tx, ep);
      if (heir) tx.put(keys.ep(heir.networkId, heir.id), { ...heir, defaultGateway: true });
    });
    await this.releaseRemoteAddress(net, ep);
    fault('disconnect.commit');
    // the default route left with the interface: another network's gateway takes over, as in Docker
    if (heir) await native.setDefaultRoute(sb.netns, heir.ifname, heir.gateway, 4);
    if (heir?.ipv6 && heir.gateway6) await native.setDefaultRoute(sb.netns, heir.ifname, heir.gateway6, 6);
  }

  /** The endpoint that takes over the default route when `leaving` goes. */
  private gatewayHeir(sb: SandboxRecord, leaving: EndpointRecord): EndpointRecord | undefined {
    return endpointsOfSandbox(this.store, sb.id)
      .filter((e) => e.id !== leaving.id && e.gateway !== '' && e.ipv4 !== '')
      .filter((e) => !this.store.get<NetworkRecord>(keys.net(e.networkId))?.internal)
      .sort((a, b) => a.ifname.localeCompare(b.ifname, 'en', { numeric: true }))[0];
  }

  /** Endpoints of a network (for inspect). @internal */
  endpointsOf(netId: string): EndpointRecord[] {
    return endpointsOfNetwork(this.store, netId);
  }

  /** Endpoints of a sandbox. @internal */
  sandboxEndpoints(sbId: string): EndpointRecord[] {
    return endpointsOfSandbox(this.store, sbId);
  }

  /** Bring store and kernel into agreement (runs at open). */
  async reconcile(opts: { dryRun?: boolean } = {}): Promise<ReconcileReport> {
    return reconcile(this, opts);
  }

  // ------------------------------------------------------------- predefined

  private async ensurePredefined(opts: ControllerOptions): Promise<void> {
    for (const [name, driver] of [
      ['none', 'null'],
      ['host', 'host'],
    ] as const) {
      if (this.store.get(keys.netName(name)) === undefined) {
        const rec = await this.planNetwork({ name, driver }, true);
        await this.commitNetwork(rec);
      }
    }
    const wanted = await this.defaultBridgeRequest(opts);
    const id = this.store.get<string>(keys.netName('bridge'));
    if (id !== undefined) {
      const cur = this.store.get<NetworkRecord>(keys.net(id));
      if (cur && sameDefaultBridge(cur, wanted)) return;
      if (cur && endpointsOfNetwork(this.store, cur.id).length > 0) {
        throw new CnmError('ERR_NETWORK_IN_USE', 'the default bridge settings (bip, bridge, mtu) changed but sandboxes still use the default bridge; remove them first', {
          network: 'bridge',
        });
      }
      if (cur) {
        await this.drivers.get('bridge').deleteNetwork(cur);
        this.store.txn((tx) => this.unreserveNetwork(tx, cur));
      }
    }
    const rec = await this.planNetwork(wanted, true);
    await this.commitNetwork(rec);
  }

  private async defaultBridgeRequest(opts: ControllerOptions): Promise<NetworkCreateOptions> {
    const device = opts.bridge ?? DEFAULT_BRIDGE_DEVICE;
    const options: Record<string, string> = {
      [BridgeOptions.defaultBridge]: 'true',
      [BridgeOptions.icc]: String(opts.icc !== false),
      [BridgeOptions.masquerade]: 'true',
      [BridgeOptions.hostBinding]: opts.ip ?? '0.0.0.0',
      [BridgeOptions.name]: device,
    };
    if (opts.mtu !== undefined) options[BridgeOptions.mtu] = String(opts.mtu);
    const req: NetworkCreateOptions = { name: 'bridge', driver: 'bridge', options };
    if (opts.bip !== undefined) {
      const c = parseCidr(opts.bip, 'bip');
      req.ipam = [{ subnet: formatCidr(c), gateway: opts.bip.split('/')[0] }];
    } else if (opts.bridge !== undefined) {
      // an existing device: use the address it already has, as Docker does
      const link = (await native.listLinks(this.hostNetns)).find((l) => l.name === opts.bridge);
      if (!link) throw new CnmError('ERR_LINK_NOT_FOUND', `bridge device ${opts.bridge} does not exist; create it first or drop -b`, { ifname: opts.bridge });
      const v4 = link.addresses.find((a) => a.includes('.'));
      if (v4) req.ipam = [{ subnet: formatCidr(parseCidr(v4)), gateway: v4.split('/')[0] }];
    }
    return req;
  }
}

function sameDefaultBridge(cur: NetworkRecord, wanted: NetworkCreateOptions): boolean {
  const opts = (o: Record<string, string>) => JSON.stringify(Object.entries(o).sort());
  if (opts(cur.options) !== opts(wanted.options ?? {})) return false;
  const w = wanted.ipam?.[0];
  if (!w) return true;
  const c = cur.ipam.config[0];
  return c?.subnet === w.subnet && c?.gateway === w.gateway;
}

function firewallBackend(opts: ControllerOptions): FirewallBackendName {
  if (opts.iptables === false) {
    if (opts.firewall !== undefined && opts.firewall !== 'none') {
      throw invalid(`--iptables=false conflicts with --firewall ${opts.firewall}`, opts.firewall);
    }
    return 'none';
  }
  return opts.firewall === undefined ? 'nftables' : checkBackend(opts.firewall);
}

function checkPortRange(r: unknown): void {
  const ok = Array.isArray(r) && r.length === 2 && r.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535) && r[0] <= r[1];
  if (!ok) throw invalid(`port range ${JSON.stringify(r)} must be [low, high] with 1 <= low <= high <= 65535`, r);
}

function gatewayFor(net: NetworkRecord, address: string): string {
  const ip = parseIp(address.split('/')[0]!);
  return net.ipam.config.find((c) => contains(parseSubnet(c.subnet), ip))?.gateway ?? '';
}
