/**
 * NetworkController: the entry point of cnm (libnetwork's controller.go). It
 * owns the driver and IPAM registry, the store and the firewall; it finds and
 * lists; every operation itself lives in ops/ and in the entities.
 *
 * Opening changes nothing: reads go through a read-only view of the state dir
 * (or an empty one). The first operation that changes something sets the host
 * up: it claims the host netns for this state dir, opens the store for writing,
 * loads the firewall's base rules, turns on forwarding, reconciles store and
 * kernel and makes the predefined networks.
 */
import { existsSync, rmSync } from 'node:fs';
import { DriverRegistry } from './drivers/registry.js';
import { CnmError } from './errors.js';
import { Firewall } from './firewall.js';
import { Proxies } from './proxy/proxies.js';
import { DefaultIpam } from './ipam/default-ipam.js';
import { log } from './log.js';
import { Endpoint } from './endpoint.js';
import { Network } from './network.js';
import type { OpContext } from './ops/context.js';
import { CommitMarks } from './ops/marks.js';
import { ProcessLease } from './ops/process-lease.js';
import { Reaper } from './reaper.js';
import { connect, disconnect } from './ops/endpoints.js';
import { claimHost, prepareHost } from './ops/host.js';
import { createNetwork, removeNetwork } from './ops/networks.js';
import { DEFAULT_BRIDGE_DEVICE, ensurePredefined } from './ops/predefined.js';
import { createSandbox, removeSandbox } from './ops/sandboxes.js';
import type { ConnectOptions, ControllerOptions, NetworkCreateOptions, SandboxCreateOptions } from './options.js';
import { allNetworks, allSandboxes, endpointsOfNetwork, endpointsOfSandbox, findSandbox, indexSandboxUsers, keys } from './records.js';
import { Cluster, type PeerRecord, clusterKeys } from './cluster/cluster.js';
import { PeerRecordHooks } from './cluster/peer-hooks.js';
import { PeerSync, kernelPeers } from './cluster/peer-sync.js';
import { OverlayDriver, overlayVxlan } from './drivers/overlay.js';
import { ClusterIpam } from './ipam/cluster-ipam.js';
import { BlockIpam } from './ipam/block-ipam.js';
import { RouteBlocks } from './cluster/route-blocks.js';
import { RouteSync } from './cluster/route-sync.js';
import { RoutedDriver } from './drivers/routed.js';
import { type ClusterHostInfo, clusterHosts, forgetClusterHost } from './ops/cluster-hosts.js';
import { createGlobalNetwork, dropLocalCopy, findAnyNetwork, globalNetworks, removeGlobalNetwork } from './ops/global-networks.js';
import type { StoreVerdict, StoreWatch } from './store/store.js';
import { checkRecords } from './store-check.js';
import { type ReconcileReport, reconcile } from './reconcile.js';
import { markReconciled, needsReconcile } from './reconcile-needed.js';
import { Sandbox } from './sandbox.js';
import { LmdbStore } from './store/lmdb-store.js';
import { ensureStateDir } from './store/state-dir.js';
import { type StoreView, openStoreView } from './store-view.js';
import { StoreHandle } from './store/store-handle.js';
import type { EndpointRecord, NetworkRecord } from './types.js';
import { type CnmEvent, type EventQuery, watchEvents } from './events.js';
import { filterListing, networkListing, storeInUse } from './network-filters.js';
import { type PruneFilters, networkPrunable, removeEach, sandboxPrunable, usedNetnsInodes } from './prune.js';
import { HostResolver } from './dns/host-resolver.js';
import { namesChanged } from './dns/notify.js';
import { peerNames } from './dns/names.js';
import type { DnsStats } from './native-api.js';
import { byText } from './compare.js';

export type { ConnectOptions, ControllerOptions, IpamPoolRequest, NetworkCreateOptions, SandboxCreateOptions } from './options.js';
export { DEFAULT_BRIDGE_DEVICE };

export { DEFAULT_STATE_DIR } from './store-view.js';

/** What {@link NetworkController.checkState} found. */
export interface CheckReport {
  /** every record read and checked (undefined for a host never set up: nothing stored) */
  store: StoreVerdict | undefined;
  /** records that disagree with each other */
  records: string[];
  /** what a reconcile would do to bring the kernel and the store into agreement */
  kernel: string[];
  /** what a reconcile would find and leave as it is (an address added by hand) */
  notices: string[];
  /** what could not be checked, and why */
  errors: string[];
  /** nothing found */
  clean: boolean;
}

export class NetworkController {
  readonly hostNetns: string | null;
  readonly stateDir: string;
  /** what the reconcile run when the host was set up found and did */
  lastReconcile: ReconcileReport | undefined;
  /** @internal */
  readonly store: StoreHandle;
  /** @internal */
  readonly drivers: DriverRegistry;
  /** @internal */
  readonly firewall: Firewall;
  /** @internal the context every operation gets */
  readonly ctx: OpContext;
  private readonly opts: ControllerOptions;
  /** @internal this host's part of the state dir */
  readonly hostDir: string;
  private resolver: HostResolver | undefined;
  private setup: Promise<void> | undefined;
  private closed = false;
  private peers: PeerSync | undefined;
  private overlay: OverlayDriver | undefined;
  private routed: RoutedDriver | undefined;
  /** the routes of routed networks on this host (exposed for the bench's convergence timing) */
  routeSync: RouteSync | undefined;
  private netWatch: StoreWatch | undefined;
  private rejoin: NodeJS.Timeout | undefined;

  private constructor(opts: ControllerOptions, store: StoreHandle, { checked, base, hostDir }: StoreView) {
    const { backend, settings } = checked;
    this.opts = opts;
    this.hostNetns = opts.hostNetns ?? null;
    this.stateDir = base;
    this.hostDir = hostDir;
    this.store = store;
    this.firewall = new Firewall(backend, this.hostNetns, opts.allowDirectRouting === true);
    const reaper = new Reaper(this.hostNetns, (fn) => store.txn(fn));
    this.drivers = new DriverRegistry(
      { hostNetns: this.hostNetns, firewall: this.firewall, proxies: new Proxies(this.hostNetns, this.hostDir), ipForward: settings.ipForward, pluginDir: opts.pluginDir, pluginTimeoutMs: opts.pluginTimeoutMs, reaper },
      new DefaultIpam(store, settings.pools),
    );
    const marks = new CommitMarks((fn) => store.txn(fn));
    const lease = new ProcessLease();
    store.prelude = (tx) => {
      lease.applyIn(tx);
      marks.applyIn(tx);
    };
    store.postlude = () => lease.committed();
    this.ctx = { hostNetns: this.hostNetns, store, drivers: this.drivers, firewall: this.firewall, settings, marks, reaper, lease };
  }

  /**
   * Open the controller: check the options and look at the state dir, changing
   * nothing. The host is set up by the first operation that changes something
   * (or by {@link ready}).
   */
  static async open(opts: ControllerOptions = {}): Promise<NetworkController> {
    const sv = openStoreView(opts);
    return new NetworkController(opts, new StoreHandle(sv.view), sv);
  }

  /** Set the host up now (the daemon does at start); idempotent. */
  ready(): Promise<void> {
    this.check();
    this.setup ??= this.setUp().catch((e: unknown) => {
      this.setup = undefined;
      throw e;
    });
    return this.setup;
  }

  /**
   * Set up, then make sure the store has room: an operation that changes
   * something is refused with ERR_NO_SPACE before its kernel work, not after
   * (a removal commits only once its links are gone).
   */
  private async writable(): Promise<void> {
    await this.ready();
    this.store.ensureRoom();
  }

  private async setUp(): Promise<void> {
    // a wrong advertise address is bad input: refused before anything changes
    if (this.opts.clusterStore !== undefined) await Cluster.checkAdvertise(this.opts, this.hostNetns);
    const made = [this.stateDir, this.hostDir].filter((d) => !existsSync(d));
    ensureStateDir(this.stateDir);
    ensureStateDir(this.hostDir);
    try {
      await claimHost(this.hostNetns, this.stateDir, this.hostDir);
    } catch (e) {
      // refused: leave no trace of this state dir's attempt
      for (const d of made) rmSync(d, { recursive: true, force: true });
      throw e;
    }
    await this.store.replace(() => LmdbStore.open(this.hostDir));
    if (this.store.get(keys.sbUserIndex) === undefined) await this.store.txn((tx) => indexSandboxUsers(tx));
    const remade = await prepareHost(this.ctx, this.opts.portRange !== undefined);
    if (this.opts.clusterStore !== undefined) await this.joinCluster();
    // a firewall made again holds none of the stored networks' entries: those are put back now
    const lostEntries = remade && allNetworks(this.store).length > 0;
    if (lostEntries) log.warn('the firewall base ruleset was missing or changed by hand and has been made again: reconciling to restore its entries');
    if (this.opts.reconcileOnOpen !== false && (lostEntries || this.opts.reconcileOnOpen !== 'when-needed' || (await needsReconcile(this.ctx)))) {
      this.lastReconcile = await reconcile(this.ctx);
      await markReconciled(this.ctx).catch((e: unknown) => log.warn('recording the reconcile failed', { err: e }));
      if (this.lastReconcile.errors.length) log.warn('reconcile at start-up left problems', { errors: this.lastReconcile.errors });
    }
    await ensurePredefined(this.ctx, this.opts);
  }

  private check(): void {
    if (this.closed) throw new CnmError('ERR_CLOSED', 'the controller is closed: open a new one');
  }

  /**
   * Join the cluster store: the overlay driver, the cluster's IPAM and the peer
   * tables. A cluster store that does not answer leaves local networks working:
   * the join is tried again in the background, and global operations answer
   * ERR_CLUSTER_UNAVAILABLE meanwhile.
   */
  private async joinCluster(): Promise<void> {
    try {
      const cluster = await Cluster.join(this.opts, this.hostNetns, this.store);
      if (this.closed) {
        await cluster.close();
        return;
      }
      // the global networks this host has endpoints on: their keys are mirrored here
      try {
        for (const n of allNetworks(this.store)) {
          if (n.scope === 'global' && endpointsOfNetwork(this.store, n.id).length > 0) await cluster.keep(n.id);
        }
      } catch (e) {
        await cluster.close();
        throw e;
      }
      const peers = new PeerSync(cluster, kernelPeers(this.hostNetns));
      const overlay = new OverlayDriver(
        this.drivers.context,
        cluster,
        peers,
        (netId) => endpointsOfNetwork(this.store, netId),
        (ep) => peerNames(this.store, ep),
      );
      this.drivers.register(overlay);
      cluster.store.onRenewed(() => void overlay.republish().catch((err: unknown) => log.error('publishing this host\'s overlay endpoints again failed', { err })));
      const blocks = new RouteBlocks(cluster, this.store);
      const routeSync = new RouteSync(cluster, this.hostNetns, blocks);
      const routed = new RoutedDriver(
        this.drivers.context,
        cluster,
        blocks,
        routeSync,
        (netId) => endpointsOfNetwork(this.store, netId),
        (ep) => peerNames(this.store, ep),
      );
      this.drivers.register(routed);
      this.drivers.blockIpam = new BlockIpam(blocks, this.drivers.defaultIpam as DefaultIpam);
      cluster.store.onRenewed(() => void routed.republish(this.usedGlobal('routed')).catch((err: unknown) => log.error("holding this host's routed blocks again failed", { err })));
      this.routed = routed;
      this.routeSync = routeSync;
      routeSync.start();
      this.drivers.clusterIpam = new ClusterIpam(cluster.store, cluster.hostId, this.store);
      this.drivers.clusterIpam.hooks = new PeerRecordHooks(cluster);
      this.ctx.cluster = cluster;
      this.peers = peers;
      this.overlay = overlay;
      peers.start();
      // a global network removed by another host: this host's copy (no endpoints by then) goes too
      this.netWatch = cluster.store.watch('net/', cluster.store.revision(), (e) => {
        for (const c of e.changes) if (c.deleted) void dropLocalCopy(this.ctx, c.key.slice(4)).catch((err: unknown) => log.warn('dropping the copy of a removed global network failed', { err }));
      });
    } catch (e) {
      if (!(e instanceof CnmError) || e.code !== 'ERR_CLUSTER_UNAVAILABLE' || this.closed) throw e;
      log.warn('the cluster store is not reachable: local networks work, global ones once it is (retrying)', { err: e });
      this.rejoin = setTimeout(() => void this.joinCluster().catch((err: unknown) => log.error('joining the cluster failed', { err })), 2000);
    }
  }

  /**
   * Network events (create, connect, disconnect, destroy) made by any process on
   * this host: those of the log since `since` (unix seconds), then each new one as
   * it is committed, until `until` or `signal` aborts. Without `since`, only new
   * ones, as `docker events`.
   *
   * ```js
   * for await (const e of ctl.events({ filters: { event: ['connect'] } })) console.log(e.Actor.Attributes.container);
   * ```
   */
  async *events(q: EventQuery = {}, signal?: AbortSignal): AsyncGenerator<CnmEvent> {
    this.check();
    // a host never set up has no log yet: set it up, so that other processes' changes reach this reader
    if (!this.store.persistent()) await this.ready();
    yield* watchEvents(this.store, q, signal);
  }

  /** The network drivers this controller has now: built-in ones, overlay and routed once in a cluster, plugins loaded. */
  driverNames(): string[] {
    return this.drivers.names();
  }

  /** Remove the networks no endpoint uses (not the predefined ones); the names removed. Filters until, label, label!. */
  async pruneNetworks(q: PruneFilters = {}): Promise<string[]> {
    const prunable = networkPrunable(q);
    const names = this.listNetworks()
      .filter((n) => this.endpointsOf(n.id).length === 0 && prunable(n.record))
      .map((n) => n.name);
    return removeEach(names, (n) => this.removeNetwork(n));
  }

  /** Remove the sandboxes no process uses (their namespace is empty of processes); the names removed. Filter until. */
  async pruneSandboxes(q: PruneFilters = {}): Promise<string[]> {
    const prunable = sandboxPrunable(usedNetnsInodes(), q);
    // a sandbox others share (container:…) goes after them: the order of creation, reversed
    const names = this.listSandboxes()
      .filter((s) => prunable(s.record))
      .map((s) => s.name)
      .reverse();
    return removeEach(names, (n) => this.removeSandbox(n));
  }

  /** `await using ctl = await NetworkController.open(…)` closes it at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Close the store; every later call fails with ERR_CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // a set-up in flight finishes first; its failure went to whoever awaited it
    await this.setup?.catch(() => undefined);
    clearTimeout(this.rejoin);
    await this.resolver?.close();
    this.resolver = undefined;
    this.netWatch?.close();
    this.peers?.stop();
    this.routeSync?.stop();
    await this.ctx.cluster?.close().catch((e: unknown) => log.warn('closing the cluster store failed', { err: e }));
    await this.ctx.reaper.flush();
    if (!(await this.ctx.marks.flush())) {
      log.error(`${this.ctx.marks.size} endpoint commit mark(s) could not be written; the next reconcile finishes those endpoints`);
    } else {
      // with every mark written, no kernel work of this process is ahead of its records
      await this.ctx.lease.release((fn) => this.store.txn(fn)).catch((e: unknown) => log.warn('dropping the process lease failed; the next command reconciles', { err: e }));
    }
    await this.store.close();
  }

  // ---------------------------------------------------------------- networks

  /** Create a network. Nothing is left behind when it fails. */
  async createNetwork(req: NetworkCreateOptions): Promise<Network> {
    await this.writable();
    // the overlay driver's networks are the cluster's
    if (req?.driver === 'overlay' || req?.driver === 'routed') return new Network(this, await createGlobalNetwork(this.ctx, req));
    return new Network(this, await createNetwork(this.ctx, req));
  }

  /**
   * The networks, in creation order; `filters` as Docker's network ls takes them
   * (name: substring, id: prefix, driver, label: key or key=value, type:
   * custom|builtin, scope, dangling: true|false), values of one key ORed, keys ANDed.
   */
  listNetworks(opts: { filters?: Record<string, string[] | string> } = {}): Network[] {
    this.check();
    const global = this.ctx.cluster ? globalNetworks(this.ctx.cluster.store) : [];
    return filterListing(networkListing(this.store, global), opts.filters, storeInUse(this.store)).map((n) => new Network(this, n));
  }

  /** A network by id, name or unique id prefix; ERR_NETWORK_NOT_FOUND otherwise. */
  getNetwork(ref: string): Network {
    this.check();
    return new Network(this, findAnyNetwork(this.ctx, ref));
  }

  /** Remove a network; refused while endpoints exist or for predefined networks. */
  async removeNetwork(ref: string): Promise<void> {
    await this.writable();
    const net = findAnyNetwork(this.ctx, ref);
    if (net.scope === 'global') await removeGlobalNetwork(this.ctx, net);
    else await removeNetwork(this.ctx, ref);
  }

  // --------------------------------------------------------------- sandboxes

  /**
   * Create a sandbox: the named netns `name` (so `ip netns exec NAME` works),
   * joined to one network, or sharing the host's or another sandbox's netns.
   */
  async createSandbox(req: SandboxCreateOptions): Promise<Sandbox> {
    await this.writable();
    const sb = await createSandbox(this.ctx, req);
    await this.namesChanged();
    return new Sandbox(this, sb);
  }

  listSandboxes(): Sandbox[] {
    this.check();
    return allSandboxes(this.store)
      .filter((s) => s.state === 'ready')
      .sort((a, b) => byText(a.created, b.created))
      .map((s) => new Sandbox(this, s));
  }

  getSandbox(ref: string): Sandbox {
    this.check();
    return new Sandbox(this, findSandbox(this.store, ref));
  }

  /** Remove a sandbox: its endpoints, their addresses and its netns. */
  async removeSandbox(ref: string): Promise<void> {
    await this.writable();
    await removeSandbox(this.ctx, ref);
    await this.namesChanged();
  }

  // -------------------------------------------------------------- endpoints

  /** Connect a sandbox to a network (Docker's `network connect`). */
  async connect(netRef: string, sbRef: string, opts: ConnectOptions = {}): Promise<Endpoint> {
    await this.writable();
    const ep = await connect(this.ctx, netRef, sbRef, opts);
    await this.namesChanged();
    return new Endpoint(this, ep);
  }

  /** Disconnect a sandbox from a network and release its address. */
  async disconnect(netRef: string, sbRef: string): Promise<void> {
    await this.writable();
    await disconnect(this.ctx, netRef, sbRef);
    await this.namesChanged();
  }

  // -------------------------------------------------------------------- DNS

  /**
   * Serve this host's embedded DNS from this process (the daemon does): every
   * sandbox on a user-defined network resolves the names of its networks at
   * 127.0.0.11, and the rest through the upstream servers. Takes over from the
   * CLI's background resolver; ERR_SOCKET_IN_USE when another daemon or program
   * serves it. Stops with {@link close} or {@link stopDns}.
   */
  async serveDns(): Promise<void> {
    await this.ready();
    this.resolver ??= await HostResolver.claim(this.store, this.hostNetns, this.hostDir, {}, () => this.ctx.cluster);
  }

  /** Stop serving DNS from this process. */
  async stopDns(): Promise<void> {
    await this.resolver?.close();
    this.resolver = undefined;
  }

  /** The resolver's counters when this process serves DNS; undefined otherwise. */
  dnsStats(): DnsStats | undefined {
    return this.resolver?.service.stats();
  }

  /** The host's resolver has every change so far (see dns/notify.ts). */
  private async namesChanged(): Promise<void> {
    await namesChanged(this.store, this.hostDir, this.resolver, this.opts.dnsProcess);
  }

  /** Endpoints of a network, in any state. @internal */
  endpointsOf(netId: string): EndpointRecord[] {
    this.check();
    return endpointsOfNetwork(this.store, netId);
  }

  /** The hosts with endpoints on a global network, as inspect shows them. @internal */
  peersOf(netId: string): Array<{ Name: string; IP: string }> {
    const cluster = this.ctx.cluster;
    if (!cluster) return [];
    // a host follows the peers of the networks it has endpoints on only (Docker
    // shows Peers only where the network is in use too)
    if (!cluster.store.following(clusterKeys.peers(netId))) return [];
    const hosts = cluster.hosts();
    const seen = new Map<string, { Name: string; IP: string }>();
    for (const [, p] of cluster.store.range<PeerRecord>(clusterKeys.peers(netId))) {
      if (!seen.has(p.host)) seen.set(p.host, { Name: hosts.get(p.host)?.hostname ?? p.host.slice(0, 12), IP: p.vtep });
    }
    return [...seen.values()].sort((a, b) => byText(a.IP, b.IP));
  }

  /**
   * For the CLI's cluster agent: follow, and keep the peer tables of, the global
   * networks this host has active endpoints on now (other processes' commits
   * included), and stop for the others. @internal
   */
  async syncClusterNetworks(): Promise<void> {
    const cluster = this.ctx.cluster;
    const peers = this.peers;
    if (!cluster || !peers) return;
    const used = this.usedGlobal();
    const want = used.map((n) => n.id);
    for (const n of used) {
      await cluster.keep(n.id);
      if (n.driver === 'routed') await this.routeSync?.activate(n);
      else await peers.activate(n.id, overlayVxlan(n.id));
    }
    for (const id of peers.networks()) {
      if (want.includes(id)) continue;
      peers.deactivate(id);
      cluster.unkeep(id);
    }
    for (const id of this.routeSync?.networks() ?? []) {
      if (want.includes(id)) continue;
      await this.routeSync?.deactivate(id);
      cluster.unkeep(id);
    }
  }

  /** This host's global networks (of `driver`, if given) with an active endpoint here. */
  private usedGlobal(driver?: string): NetworkRecord[] {
    return allNetworks(this.store).filter(
      (n) => n.scope === 'global' && (driver === undefined || n.driver === driver) && endpointsOfNetwork(this.store, n.id).some((e) => e.state === 'active'),
    );
  }

  /** Publish this host's global endpoints again, bound to the current lease. @internal */
  async republishCluster(): Promise<void> {
    await this.overlay?.republish();
    await this.routed?.republish(this.usedGlobal('routed'));
  }

  /**
   * The cluster's hosts: the live ones, and those gone that still hold
   * addresses of global networks. ERR_CLUSTER_UNAVAILABLE without a cluster store.
   */
  async clusterHosts(): Promise<ClusterHostInfo[]> {
    await this.ready();
    return clusterHosts(this.ctx);
  }

  /**
   * Give back every address a gone host holds (by id or a unique id prefix of 6
   * or more): it will not come back. Refused for a live host. Returns how many
   * addresses went back.
   */
  async forgetClusterHost(ref: string): Promise<number> {
    await this.writable();
    return forgetClusterHost(this.ctx, ref);
  }

  /** Endpoints of a sandbox. @internal */
  sandboxEndpoints(sbId: string): EndpointRecord[] {
    this.check();
    return endpointsOfSandbox(this.store, sbId);
  }

  /**
   * Check everything, changing nothing: every record of the store (its checksum,
   * its key), the records against each other, and the kernel against them (what
   * a reconcile would do, and what it would only report). What cannot be read is
   * reported in `errors`; the check carries on past it.
   */
  async checkState(): Promise<CheckReport> {
    this.check();
    const report: CheckReport = { store: undefined, records: [], kernel: [], notices: [], errors: [], clean: false };
    try {
      report.store = this.store.verify();
    } catch (e) {
      report.errors.push(`the store cannot be read: ${(e as Error).message}`);
    }
    try {
      report.records = checkRecords(this.store);
    } catch (e) {
      report.errors.push(`the records cannot be compared: ${(e as Error).message}`);
    }
    try {
      const r = await reconcile(this.ctx, { dryRun: true });
      report.kernel = r.actions;
      report.notices = r.notices;
      report.errors.push(...r.errors);
    } catch (e) {
      report.errors.push(`the kernel cannot be compared with the store: ${(e as Error).message}`);
    }
    report.clean = !report.store?.damaged.length && !report.records.length && !report.kernel.length && !report.notices.length && !report.errors.length;
    return report;
  }

  /**
   * Bring store and kernel into agreement and report what was done (with
   * `dryRun`: what would be done, changing nothing at all).
   */
  async reconcile(opts: { dryRun?: boolean } = {}): Promise<ReconcileReport> {
    if (opts.dryRun) this.check();
    else await this.ready();
    const report = await reconcile(this.ctx, opts);
    if (!opts.dryRun) await markReconciled(this.ctx).catch((e: unknown) => log.warn('recording the reconcile failed', { err: e }));
    return report;
  }
}
