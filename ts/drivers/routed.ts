/**
 * The `routed` driver: a global network carried between hosts by plain routing,
 * as flannel's host-gw mode does. Each host with endpoints on it holds a block
 * of its subnet (a /24 by default: RouteBlocks) on a local bridge; every other
 * such host routes that block via the host's underlay address (RouteSync). No
 * encapsulation and no NAT between hosts: a receiver sees the sender's own
 * address. Traffic that leaves the cluster is masqueraded unless
 * `com.docker.network.bridge.enable_ip_masquerade=false`. The hosts must reach
 * each other's underlay addresses directly (one L2 segment), as for host-gw.
 */
import { type Cluster, type PeerRecord, clusterKeys } from '../cluster/cluster.js';
import { PeerPublisher } from '../cluster/peer-publisher.js';
import type { RouteBlocks } from '../cluster/route-blocks.js';
import { BLOCK_OPTION, DEFAULT_BLOCK, blockGateway } from '../cluster/route-blocks.js';
import type { RouteSync } from '../cluster/route-sync.js';
import { CnmError, invalid } from '../errors.js';
import { log } from '../log.js';
import { quiesceVeth, retireDevice, retireVeth } from './retire.js';
import { native } from '../native.js';
import { blockView } from '../ipam/block-ipam.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { hostIfnameFor, interfaceAddresses, macFor } from './bridge-options.js';
import { vethComplete } from './bridge-repair.js';
import type { Driver, DriverContext, RepairInput, RepairResult } from './driver.js';
import { OncePerNetwork } from './once-per-network.js';

const BRIDGE_PREFIX = 'rtb-';
export const routedBridge = (netId: string) => `${BRIDGE_PREFIX}${netId.slice(0, 10)}`;
/** Whether a bridge is a routed network's (its firewall entries are that driver's to keep). */
export const isRoutedBridge = (name: string) => name.startsWith(BRIDGE_PREFIX);

export class RoutedDriver implements Driver {
  readonly name = 'routed';
  readonly usesIpam = true;
  readonly ownNetns = true;
  readonly publishesPorts = false;
  /** networks whose bridge this driver made (or is making) here since their last teardown */
  private readonly made = new OncePerNetwork();

  constructor(
    private readonly ctx: DriverContext,
    private readonly cluster: Cluster,
    private readonly blocks: RouteBlocks,
    private readonly routes: RouteSync,
    /** this host's endpoints of a network, from the local store */
    private readonly localEndpoints: (netId: string) => EndpointRecord[],
    /** an endpoint's DNS names for the other hosts */
    namesOf: (ep: EndpointRecord) => Pick<PeerRecord, 'names' | 'ptr'> = () => ({}),
  ) {
    this.peers = new PeerPublisher(cluster, namesOf);
  }

  /** this host's endpoints as the other hosts see them (their DNS, the network's in-use check) */
  private readonly peers: PeerPublisher;

  prepareNetwork(net: NetworkRecord): void {
    net.scope = 'global';
    if (net.enableIPv6) throw invalid('routed networks are IPv4 only for now: leave --ipv6 out', true);
    const size = net.options[BLOCK_OPTION] ?? String(DEFAULT_BLOCK);
    if (!/^\d+$/.test(size) || Number(size) < 8 || Number(size) > 30) throw invalid(`${BLOCK_OPTION} must be a prefix length from 8 to 30 (each host's block), not ${size}`, size);
    net.options[BLOCK_OPTION] = size;
    net.bridge = routedBridge(net.id);
  }

  /** Each host's block must fit the subnet, with at least two blocks: checked once the subnet is chosen. */
  checkPools(net: NetworkRecord): void {
    const v4 = net.ipam.config.filter((c) => !c.subnet.includes(':'));
    if (v4.length !== 1) throw invalid(`a routed network takes one IPv4 subnet, not ${v4.length}`, v4.map((c) => c.subnet));
    const prefix = Number(v4[0]!.subnet.split('/')[1]);
    const size = Number(net.options[BLOCK_OPTION]);
    if (size <= prefix) throw invalid(`${BLOCK_OPTION} /${size} leaves no room for several hosts in ${v4[0]!.subnet}: use a longer prefix than /${prefix}`, size);
  }

  /** Nothing on any host until an endpoint joins there. */
  async createNetwork(): Promise<void> {}

  async deleteNetwork(net: NetworkRecord): Promise<void> {
    await this.teardown(net);
  }

  async rollbackNetwork(net: NetworkRecord): Promise<void> {
    await this.teardown(net);
  }

  /** The gateway is this host's bridge in its block (the IPAM gave an address of it). */
  createEndpoint(net: NetworkRecord, ep: EndpointRecord): void {
    ep.hostIfname = hostIfnameFor(ep.id);
    if (!ep.staticMac) ep.mac = macFor(ep.ipv4, ep.id);
    const block = this.blocks.known(net.id);
    if (block && ep.ipv4) ep.gateway = blockGateway(block);
  }

  async deleteEndpoint(): Promise<void> {}

  /**
   * The firewall's view: this host's block on the bridge, masqueraded out of the
   * cluster, open to direct routing (the other hosts' sandboxes come in through
   * the underlay with their own addresses: nothing is published), isolated from
   * the host's other bridges as any network.
   */
  private firewallNet(net: NetworkRecord, block: string) {
    return { ...this.ctx.firewall.network(blockView(net, block)), mode4: 'nat-unprotected' as const, protect: false };
  }

  /**
   * The network's bridge on this host with the block's gateway address, its
   * firewall entries and the routes: made once per network while it has
   * endpoints here (reconcile makes them again when deleted behind our back).
   */
  private async ensureLocal(net: NetworkRecord, force = false): Promise<void> {
    await this.made.ensure(
      net.id,
      async () => {
        const block = await this.blocks.claim(net);
        const gw = blockGateway(block);
        const bridge = routedBridge(net.id);
        await native.ensureBridge({ netns: this.ctx.hostNetns, name: bridge, mtu: net.mtu ?? null, mac: macFor(gw, net.id), addresses: [`${gw}/${block.split('/')[1]}`], up: true });
        if (this.ctx.ipForward) await native.sysctlSet(this.ctx.hostNetns, 'net.ipv4.ip_forward', '1');
        // the block's own route tagged like the routes to the other blocks: traffic between blocks is not masqueraded
        await native.setClusterRoutes({ netns: this.ctx.hostNetns, add: [{ dst: block, dev: bridge, src: gw }], remove: [] });
        if (this.ctx.firewall.enabled) await this.ctx.firewall.apply({ addNetworks: [this.firewallNet(net, block)] });
        await this.routes.activate(net);
      },
      force,
    );
  }

  /** Routes, firewall entries and bridge go; the block goes back (remembered for this host). */
  private async teardown(net: NetworkRecord, released = false): Promise<void> {
    this.made.forget(net.id);
    const block = this.blocks.known(net.id);
    await this.routes.deactivate(net.id);
    if (this.ctx.firewall.enabled && block) await this.ctx.firewall.apply({ removeNetworks: [this.firewallNet(net, block)] });
    await retireDevice(this.ctx, routedBridge(net.id));
    if (!released) await this.blocks.release(net.id).catch((e: unknown) => log.warn('giving back the block of a routed network failed (the lease ends it)', { network: net.name, err: e }));
  }

  async join(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<{ mac?: string }> {
    if (ep.ports?.length) throw this.noPorts(net);
    await this.ensureLocal(net);
    const published = this.peers.publish(net, [ep]).then(
      () => undefined,
      (e: unknown) => e,
    );
    let info;
    try {
      info = await native.attachVeth({
        hostNetns: this.ctx.hostNetns,
        sandboxNetns: sb.netns,
        hostIfname: ep.hostIfname,
        master: routedBridge(net.id),
        ifname: ep.ifname,
        mtu: net.mtu ?? null,
        mac: ep.mac,
        addresses: interfaceAddresses(ep),
        gateway: ep.defaultGateway && ep.ipv4 ? ep.gateway : null,
        gateway6: null,
      });
    } catch (e) {
      if ((await published) === undefined) await this.peers.unpublish(net, ep);
      throw e;
    }
    const failed = await published;
    if (failed !== undefined) {
      await native.detachVeth(this.ctx.hostNetns, ep.hostIfname).catch((u: unknown) => log.warn('removing the veth of a failed routed join failed', { endpoint: ep.id, err: u }));
      throw failed;
    }
    return { mac: info.mac };
  }

  endpointComplete(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<boolean> {
    return vethComplete(this.ctx.hostNetns, net, ep, sb);
  }

  async leave(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord, quiesced?: boolean): Promise<void> {
    const last = this.localEndpoints(net.id).every((e) => e.id === ep.id);
    // the last endpoint here: its record and the block go in one transaction, while
    // the kernel deletes the veth, so that the other hosts drop the route at once
    const records = last
      ? this.blocks.release(net.id, (tx) => tx.del(clusterKeys.peer(net.id, ep.id))).catch((e: unknown) => log.warn('giving back the block of a routed network failed (the lease ends it)', { network: net.name, err: e }))
      : this.peers.unpublish(net, ep);
    await Promise.all([records, quiesced ? undefined : retireVeth(this.ctx, ep, sb)]);
    if (last) await this.teardown(net, true);
  }

  async quiesce(_net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
    await quiesceVeth(this.ctx, ep, sb);
  }

  private noPorts(net: NetworkRecord): CnmError {
    return invalid(`network ${net.name} is routed: its sandboxes are reached at their own addresses from the whole cluster, so ports are not published`, net.name);
  }

  async programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    if (ep.ports?.length) throw this.noPorts(net);
  }

  async revokeExternalConnectivity(): Promise<void> {}

  /**
   * Hold the blocks and publish the endpoints of `nets` (this host's routed
   * networks with endpoints) again under a new lease, which may be another
   * process's (the cluster agent of a host used through the command alone).
   */
  async republish(nets: NetworkRecord[]): Promise<void> {
    for (const net of nets) {
      const eps = this.localEndpoints(net.id).filter((e) => e.state === 'active');
      if (eps.length === 0) continue;
      await this.blocks.claim(net, true);
      await this.peers.publish(net, eps);
    }
  }

  /**
   * Networks with endpoints here: bridge, block, firewall entries and routes made
   * again when missing (a restart gets its block back), peer records published
   * again, routes synced in full.
   */
  async repair(input: RepairInput): Promise<RepairResult> {
    const eps = input.endpoints().filter((e) => e.state === 'active');
    const links = new Set((await native.listLinks(this.ctx.hostNetns)).map((l) => l.name));
    const used = input.networks.filter((n) => eps.some((e) => e.networkId === n.id));
    // entries flushed behind our back are made again with the rest (the bridge driver's repair leaves them be)
    const filtered = this.ctx.firewall.enabled && used.length > 0 ? new Set((await this.ctx.firewall.state()).networks.map((n) => n.bridge)) : undefined;
    for (const net of used) {
      const mine = eps.filter((e) => e.networkId === net.id);
      const held = this.cluster.store.get<{ block: string }>(`rblock/${net.id}/${this.cluster.hostId}`);
      const fwGone = filtered !== undefined && !filtered.has(routedBridge(net.id));
      if (!links.has(routedBridge(net.id)) || !this.made.has(net.id) || held === undefined || fwGone) {
        await input.step(`make this host's part of routed network ${net.name} again (block, bridge, routes)`, () => this.ensureLocal(net, true));
      } else if (!input.dryRun) {
        await this.routes.resync(net.id);
      }
      const missing = mine.filter((e) => !this.cluster.store.get(clusterKeys.peer(net.id, e.id)));
      if (missing.length) await input.step(missing.map((e) => `publish endpoint ${e.id.slice(0, 12)} of routed network ${net.name} again`), () => this.peers.publish(net, missing));
    }
    return { changed: [], lost: [] };
  }
}
