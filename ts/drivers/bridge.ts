/**
 * The `bridge` driver: one Linux bridge per network in the host netns, one veth
 * pair per endpoint with its peer born inside the sandbox netns, and the
 * network's and ports' firewall entries.
 */
import { Firewall } from '../firewall.js';
import { log } from '../log.js';
import { quiesceVeth, retireDevice, retireVeth } from './retire.js';
import { native } from '../native.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { defaultBridgeName, gatewayAddresses, hostIfnameFor, interfaceAddresses, macFor, prepareBridgeNetwork } from './bridge-options.js';
import { proxySpecs, startProxies } from './bridge-proxies.js';
import { repairBridges, vethComplete } from './bridge-repair.js';
import type { Driver, DriverContext, RepairInput, RepairResult } from './driver.js';

export { BridgeOptions } from './bridge-options.js';

export class BridgeDriver implements Driver {
  readonly name = 'bridge';
  readonly usesIpam = true;
  readonly ownNetns = true;
  // removeOrphans (bridge-repair.ts) deletes the veths on its bridges that no endpoint names
  readonly joinAheadOfRecord = true;
  constructor(private readonly ctx: DriverContext) {}

  prepareNetwork(net: NetworkRecord): void {
    prepareBridgeNetwork(net);
  }

  async createNetwork(net: NetworkRecord): Promise<void> {
    // an isolated family, or IPv4 with inhibit_ipv4, has no address on the bridge
    const addresses = gatewayAddresses(net);
    const gateway4 = net.ipam.config.find((c) => c.subnet.includes('.'))?.gateway ?? '';
    const entries = this.ctx.firewall.network(net);
    // the firewall names the bridge (iifname/oifname) and needs no device: its entries
    // go in beside the bridge's creation
    const [made, firewalled] = await Promise.allSettled([
      native.ensureBridge({
        netns: this.ctx.hostNetns,
        name: net.bridge!,
        mtu: net.mtu ?? null,
        // A bridge made without a MAC takes the lowest one of its ports and changes it as
        // endpoints come and go; a sandbox that learnt the gateway's MAC from an ARP in
        // between then sends to a port that is gone, for seconds. A MAC given at creation
        // stays (Docker sets one too); derived from the gateway, a bridge that reconcile
        // makes again gets the same one. Only applied to a bridge this call creates.
        mac: macFor(gateway4, net.id),
        addresses,
        up: true,
      }),
      this.ctx.firewall.apply({ addNetworks: [entries] }),
    ]);
    const info = made.status === 'fulfilled' ? made.value : undefined;
    try {
      if (made.status === 'rejected') throw made.reason;
      if (firewalled.status === 'rejected') throw firewalled.reason;
      net.bridgeCreated = made.value.created;
      if (net.mtu === undefined) net.mtu = made.value.mtu;
      if (net.ipam.config.some((c) => c.subnet.includes(':'))) {
        if (this.ctx.ipForward) await native.sysctlSet(this.ctx.hostNetns, 'net.ipv6.conf.all.forwarding', '1');
        // The bridge's link-local address would stay tentative for a second of duplicate
        // address detection once the first port gives it carrier, and until then the host
        // sends no neighbour solicitation on it: the first IPv6 packets forwarded to a new
        // sandbox wait a whole retransmission. Its MAC is ours and unique; no DAD needed.
        await native.sysctlSet(this.ctx.hostNetns, `net/ipv6/conf/${net.bridge}/accept_dad`, '0');
      }
      if (this.ctx.firewall.enabled) {
        // published ports must answer on 127.0.0.1 too: let DNATed loopback traffic leave via the bridge
        // the path form: a bridge name may hold dots (br.x), which the dotted form would split
        await native.sysctlSet(this.ctx.hostNetns, `net/ipv4/conf/${net.bridge}/route_localnet`, '1');
      }
    } catch (e) {
      if (firewalled.status === 'fulfilled') {
        await this.ctx.firewall.apply({ removeNetworks: [entries] }).catch((u: unknown) => log.warn('withdrawing the firewall entries of a network not created failed', { network: net.name, err: u }));
      }
      if (info?.created) {
        await native.deleteLink(this.ctx.hostNetns, net.bridge!).catch((u: unknown) => log.warn('removing a bridge after a failed create failed', { bridge: net.bridge, err: u }));
      }
      throw e;
    }
  }

  async deleteNetwork(net: NetworkRecord): Promise<void> {
    await this.ctx.firewall.apply({ removeNetworks: [this.ctx.firewall.network(net)] });
    if (net.bridgeCreated) await retireDevice(this.ctx, net.bridge!, gatewayAddresses(net));
  }

  /**
   * The bridge goes if we made it, or may have: a half-made record does not know
   * yet. Its firewall entries go with the repair that follows (nothing accounts for them).
   */
  async rollbackNetwork(net: NetworkRecord): Promise<void> {
    if (!net.bridge) return;
    if (net.bridgeCreated || net.bridge === defaultBridgeName(net.id)) await native.deleteLink(this.ctx.hostNetns, net.bridge);
  }

  async programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    const ports = Firewall.ports(net, ep);
    if (ports.length) await this.ctx.firewall.apply({ addPorts: ports });
    const specs = proxySpecs(ep);
    if (!specs.length) return;
    try {
      await startProxies(this.ctx.proxies, specs);
    } catch (e) {
      if (ports.length) await this.ctx.firewall.apply({ removePorts: ports }).catch((u: unknown) => log.warn('withdrawing published ports after a failed proxy start failed', { endpoint: ep.id, err: u }));
      throw e;
    }
  }

  async revokeExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    if (proxySpecs(ep).length) await this.ctx.proxies.stopEndpoint(ep.id);
    const ports = Firewall.ports(net, ep);
    if (ports.length) await this.ctx.firewall.apply({ removePorts: ports });
  }

  createEndpoint(_net: NetworkRecord, ep: EndpointRecord): void {
    ep.hostIfname = hostIfnameFor(ep.id);
    if (!ep.staticMac) ep.mac = macFor(ep.ipv4, ep.id);
  }

  async deleteEndpoint(): Promise<void> {}

  async join(net: NetworkRecord, ep: EndpointRecord, sb: { netns: string }): Promise<{ mac?: string }> {
    const info = await native.attachVeth({
      hostNetns: this.ctx.hostNetns,
      sandboxNetns: sb.netns,
      hostIfname: ep.hostIfname,
      master: net.bridge!,
      ifname: ep.ifname,
      mtu: net.mtu ?? null,
      mac: ep.mac,
      addresses: interfaceAddresses(ep),
      gateway: ep.defaultGateway && ep.ipv4 ? ep.gateway : null,
      gateway6: ep.defaultGateway && ep.ipv6 ? (ep.gateway6 ?? null) : null,
      // with br_netfilter the DNAT of a sandbox reaching its own published port
      // happens on the bridge, which must send the frame back out the port it
      // came in by; only endpoints that publish ports need it (it costs a request)
      hairpin: this.ctx.firewall.enabled && (ep.ports?.length ?? 0) > 0,
    });
    return { mac: info.mac };
  }

  endpointComplete(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<boolean> {
    return vethComplete(this.ctx.hostNetns, net, ep, sb);
  }

  /** The pair is retired (the reaper deletes it); gone already (the sandbox went first) is fine. */
  async leave(_net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord, quiesced?: boolean): Promise<void> {
    if (!quiesced) await retireVeth(this.ctx, ep, sb);
  }

  async quiesce(_net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
    await quiesceVeth(this.ctx, ep, sb);
  }

  repair(input: RepairInput): Promise<RepairResult> {
    return repairBridges(this, this.ctx, input);
  }
}
