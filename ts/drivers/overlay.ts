/**
 * The `overlay` driver (Docker's, as a user sees it): a global network shared by
 * every host of the cluster, its traffic between hosts carried in VXLAN (one
 * VNI per network). On a host it exists only while it has endpoints there: the
 * first one makes a bridge and a VXLAN device on it (MTU = the underlay's - 50),
 * the last one removes them. Peers are programmed from the store (PeerSync),
 * never learnt; each local endpoint is published as a peer record bound to this
 * host's lease, so a host that dies drops out of everyone's tables.
 */
import { type Cluster, type PeerRecord, clusterKeys } from '../cluster/cluster.js';
import { PeerPublisher } from '../cluster/peer-publisher.js';
import type { PeerSync } from '../cluster/peer-sync.js';
import { invalid } from '../errors.js';
import { log } from '../log.js';
import { quiesceVeth, retireDevice, retireVeth } from './retire.js';
import { native } from '../native.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { hostIfnameFor, interfaceAddresses, macFor } from './bridge-options.js';
import { vethComplete } from './bridge-repair.js';
import type { Driver, DriverContext, RepairInput, RepairResult } from './driver.js';
import { OncePerNetwork } from './once-per-network.js';

/** Docker's option for the VNI of an overlay network. */
export const VXLANID_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';
/** VXLAN's own header cost on the underlay: outer IPv4, UDP, VXLAN and inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;

export const overlayBridge = (netId: string) => `ovb-${netId.slice(0, 10)}`;
export const overlayVxlan = (netId: string) => `ovx-${netId.slice(0, 10)}`;

/** The VNI a network record carries. */
export function vniOf(net: NetworkRecord): number {
  return Number(net.options[VXLANID_OPTION]);
}

export class OverlayDriver implements Driver {
  readonly name = 'overlay';
  /** networks whose devices this driver made (or is making) here since their last teardown */
  private readonly made = new OncePerNetwork();
  readonly usesIpam = true;
  readonly ownNetns = true;

  constructor(
    private readonly ctx: DriverContext,
    private readonly cluster: Cluster,
    private readonly peers: PeerSync,
    /** this host's endpoints of a network, from the local store */
    private readonly localEndpoints: (netId: string) => EndpointRecord[],
    /** an endpoint's DNS names for the other hosts (none when its network has no DNS) */
    namesOf: (ep: EndpointRecord) => Pick<PeerRecord, 'names' | 'ptr'> = () => ({}),
  ) {
    this.peerPub = new PeerPublisher(cluster, namesOf);
  }

  private readonly peerPub: PeerPublisher;

  /** The VNI option, if given, must be one VNI (Docker takes a list for its old multi-subnet form). */
  prepareNetwork(net: NetworkRecord): void {
    net.scope = 'global';
    const v = net.options[VXLANID_OPTION];
    if (v !== undefined && !/^\d+$/.test(v)) throw invalid(`${VXLANID_OPTION} must be one VNI, 1 to 16777215`, v);
    if (v !== undefined && (Number(v) < 1 || Number(v) > 0xffffff)) throw invalid(`VNI ${v} out of range: 1 to 16777215`, v);
    net.bridge = overlayBridge(net.id);
  }

  /** Nothing on any host until an endpoint joins there. */
  async createNetwork(): Promise<void> {}

  async deleteNetwork(net: NetworkRecord): Promise<void> {
    await this.teardown(net);
  }

  async rollbackNetwork(net: NetworkRecord): Promise<void> {
    await this.teardown(net);
  }

  createEndpoint(_net: NetworkRecord, ep: EndpointRecord): void {
    ep.hostIfname = hostIfnameFor(ep.id);
    if (!ep.staticMac) ep.mac = macFor(ep.ipv4, ep.id);
  }

  async deleteEndpoint(): Promise<void> {}

  private mtu(net: NetworkRecord): number {
    return net.mtu ?? this.cluster.underlayMtu - VXLAN_OVERHEAD;
  }

  /**
   * The network's bridge and VXLAN device on this host, made if missing. Made
   * once per network while it has endpoints here: later joins skip the two
   * netlink round trips (reconcile makes devices deleted behind our back again).
   */
  private async ensureLocal(net: NetworkRecord, force = false): Promise<void> {
    const mtu = this.mtu(net);
    await this.made.ensure(
      net.id,
      async () => {
        await native.ensureBridge({ netns: this.ctx.hostNetns, name: overlayBridge(net.id), mtu, up: true });
        await native.ensureVxlan({ netns: this.ctx.hostNetns, name: overlayVxlan(net.id), vni: vniOf(net), local: this.cluster.advertise, master: overlayBridge(net.id), mtu });
      },
      force,
    );
  }

  /** Remove the network's devices on this host (the bridge goes with its ports). */
  private async teardown(net: NetworkRecord): Promise<void> {
    this.peers.deactivate(net.id);
    this.made.forget(net.id);
    // the VXLAN device is deleted outright: a retired one would keep its VNI taken
    // (the kernel refuses a second device with it, down or not) until reaped
    await Promise.all([native.deleteLink(this.ctx.hostNetns, overlayVxlan(net.id)), retireDevice(this.ctx, overlayBridge(net.id), [])]);
  }

  async join(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<{ mac?: string }> {
    if (ep.ports?.length) throw invalid(`publishing ports on overlay network ${net.name} is not supported yet`, net.name);
    await this.ensureLocal(net);
    // published with its address already (see allocated); otherwise (a record that
    // differs) it goes to etcd while the kernel makes the veth
    const have = this.cluster.store.get<PeerRecord>(clusterKeys.peer(net.id, ep.id));
    const want = this.peerRecord(ep);
    const current = have !== undefined && have.host === want.host && have.vtep === want.vtep && have.mac === want.mac && have.ips.join() === want.ips.join();
    const published = (current ? Promise.resolve() : this.peerPub.publish(net, [ep])).then(
      () => undefined,
      (e: unknown) => e,
    );
    let info;
    try {
      info = await native.attachVeth({
        hostNetns: this.ctx.hostNetns,
        sandboxNetns: sb.netns,
        hostIfname: ep.hostIfname,
        master: overlayBridge(net.id),
        ifname: ep.ifname,
        mtu: this.mtu(net),
        mac: ep.mac,
        addresses: interfaceAddresses(ep),
        // no default route through an overlay: Docker gives overlay sandboxes a second
        // interface on a local bridge (docker_gwbridge) for that
        gateway: null,
        gateway6: null,
      });
    } catch (e) {
      if (!current && (await published) === undefined) await this.peerPub.unpublish(net, ep);
      throw e;
    }
    const failed = await published;
    try {
      if (failed !== undefined) throw failed;
      await this.peers.activate(net.id, overlayVxlan(net.id));
    } catch (e) {
      await native.detachVeth(this.ctx.hostNetns, ep.hostIfname).catch((u: unknown) => log.warn('removing the veth of a failed overlay join failed', { endpoint: ep.id, err: u }));
      if (!current && failed === undefined) await this.peerPub.unpublish(net, ep);
      throw e;
    }
    return { mac: info.mac };
  }

  /** This endpoint as the other hosts see it. */
  peerRecord(ep: EndpointRecord): PeerRecord {
    return this.peerPub.record(ep);
  }

  /**
   * Publish every local endpoint of the networks kept here again: after a new
   * lease (the old one expired while etcd was out of reach), the records bound
   * to the old one are gone or going.
   */
  async republish(): Promise<void> {
    const recs: Array<[string, PeerRecord]> = [];
    for (const netId of this.peers.networks()) {
      for (const ep of this.localEndpoints(netId)) {
        if (ep.state === 'active') recs.push([clusterKeys.peer(netId, ep.id), this.peerRecord(ep)]);
      }
    }
    if (recs.length === 0) return;
    await this.cluster.store.txn((tx) => {
      for (const [k, r] of recs) tx.put(k, r, { ephemeral: true });
    });
  }

  endpointComplete(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<boolean> {
    return vethComplete(this.ctx.hostNetns, net, ep, sb);
  }

  async leave(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord, quiesced?: boolean): Promise<void> {
    await this.cluster.store.txn((tx) => tx.del(clusterKeys.peer(net.id, ep.id)));
    if (!quiesced) await retireVeth(this.ctx, ep, sb);
    const others = this.localEndpoints(net.id).filter((e) => e.id !== ep.id);
    if (others.length === 0) await this.teardown(net);
  }

  async quiesce(_net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
    await quiesceVeth(this.ctx, ep, sb);
  }

  async programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    if (ep.ports?.length) throw invalid(`publishing ports on overlay network ${net.name} is not supported yet`, net.name);
  }

  async revokeExternalConnectivity(): Promise<void> {}

  /**
   * Overlay networks with endpoints here get their devices again (a reboot), their
   * endpoints' peer records again (the lease ran out while the host was away) and
   * their peer tables resynced.
   */
  async repair(input: RepairInput): Promise<RepairResult> {
    const eps = input.endpoints().filter((e) => e.state === 'active');
    const links = new Set((await native.listLinks(this.ctx.hostNetns)).map((l) => l.name));
    for (const net of input.networks) {
      const mine = eps.filter((e) => e.networkId === net.id);
      if (mine.length === 0) continue;
      if (!links.has(overlayBridge(net.id)) || !links.has(overlayVxlan(net.id))) {
        await input.step(`make the devices of overlay network ${net.name} on this host again`, () => this.ensureLocal(net, true));
      }
      const missing = mine.filter((e) => !this.cluster.store.get(clusterKeys.peer(net.id, e.id)));
      if (missing.length) {
        await input.step(
          missing.map((e) => `publish endpoint ${e.id.slice(0, 12)} of overlay network ${net.name} again`),
          () =>
            this.cluster.store.txn((tx) => {
              for (const e of missing) tx.put(clusterKeys.peer(net.id, e.id), this.peerRecord(e), { ephemeral: true });
            }),
        );
      }
      // the peer tables follow the store whatever happened: not a repair of its own
      if (!input.dryRun) await this.peers.resync(net.id, overlayVxlan(net.id));
    }
    return { changed: [], lost: [] };
  }
}
