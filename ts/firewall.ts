/**
 * The firewall as the bridge driver sees it: typed network and port entries turned
 * into one native batch per operation, on the chosen backend, in the host netns.
 */
import { gatewayMode, trustedInterfaces } from './drivers/bridge-options.js';
import { invalid } from './errors.js';
import { native } from './native.js';
import type { FirewallBackendName, FirewallBatch, FirewallNetwork, FirewallState, PortMapping } from './native-api.js';
import { type PortMappingRecord, proxied } from './ports.js';
import type { EndpointRecord, NetworkRecord } from './types.js';
import { parseBool } from './validate.js';

export const FIREWALL_BACKENDS: readonly FirewallBackendName[] = ['nftables', 'iptables', 'none'];

export const OPT_ICC = 'com.docker.network.bridge.enable_icc';
export const OPT_MASQ = 'com.docker.network.bridge.enable_ip_masquerade';

export function checkBackend(name: unknown): FirewallBackendName {
  if (typeof name !== 'string' || !FIREWALL_BACKENDS.includes(name as FirewallBackendName)) {
    throw invalid(`unknown firewall backend ${JSON.stringify(name)}: expected nftables, iptables or none`, name);
  }
  return name as FirewallBackendName;
}

export class Firewall {
  constructor(
    readonly backend: FirewallBackendName,
    readonly netns: string | null,
    /** Docker's --allow-direct-routing: no network drops direct access to its subnets */
    readonly allowDirectRouting = false,
  ) {}

  get enabled(): boolean {
    return this.backend !== 'none';
  }

  /** Make the base ruleset, or put it back; true when it had to (what it held is to be restored by reconcile). */
  async init(): Promise<boolean> {
    return this.enabled ? native.firewallInit(this.backend, this.netns) : false;
  }

  async apply(batch: Omit<FirewallBatch, 'backend' | 'netns'>): Promise<void> {
    if (!this.enabled) return;
    const empty = [batch.addNetworks, batch.removeNetworks, batch.addPorts, batch.removePorts, batch.addLinks, batch.removeLinks].every((l) => !l || l.length === 0);
    if (empty) return;
    await native.applyFirewall({ ...batch, backend: this.backend, netns: this.netns });
  }

  async state(): Promise<FirewallState> {
    if (!this.enabled) return { networks: [], ports: [], links: [], baseIntact: true };
    return native.firewallState(this.backend, this.netns);
  }

  /** Whether sandboxes of a bridge network talk freely (Docker's icc), or only as their links allow. */
  static icc(net: NetworkRecord): boolean {
    const v = net.options[OPT_ICC];
    return v === undefined ? true : parseBool(OPT_ICC, v);
  }

  /**
   * The firewall entry of a bridge network: its subnets, how each family meets the
   * world (an isolated family is, to the firewall, an internal nat one) and who may
   * route to it directly.
   */
  network(net: NetworkRecord): FirewallNetwork {
    const opt = (k: string, dflt: boolean) => (net.options[k] === undefined ? dflt : parseBool(k, net.options[k]!));
    const mode = (family: 4 | 6) => {
      const m = gatewayMode(net, family);
      return m === 'isolated' ? 'nat' : m;
    };
    return {
      bridge: net.bridge!,
      subnets: net.ipam.config.filter((c) => !c.subnet.includes(':')).map((c) => c.subnet),
      subnets6: net.ipam.config.filter((c) => c.subnet.includes(':')).map((c) => c.subnet),
      masquerade: opt(OPT_MASQ, true) && !net.internal,
      icc: Firewall.icc(net),
      internal: net.internal,
      tag: net.id,
      mode4: mode(4),
      mode6: mode(6),
      protect: !this.allowDirectRouting,
      trusted: trustedInterfaces(net),
    };
  }

  /**
   * The firewall entries of an endpoint's published ports, one per mapping record:
   * each record is of one family (its host address's), published to the endpoint's
   * address of that family; a routed one is opened on the container port instead.
   * Those on [::1] have none: a userland proxy serves them (see proxy/).
   */
  static ports(net: NetworkRecord, ep: EndpointRecord, maps: readonly PortMappingRecord[] = ep.ports ?? []): PortMapping[] {
    const containerIp = ep.ipv4 ? ep.ipv4.split('/')[0]! : null;
    const containerIp6 = ep.ipv6 ? ep.ipv6.split('/')[0]! : null;
    return maps.filter((m) => !proxied(m)).map((m) => {
      const v6 = m.hostIp.includes(':');
      const any = m.hostIp === '0.0.0.0' || m.hostIp === '::';
      return {
        proto: m.proto,
        hostIp: any ? null : m.hostIp,
        hostPort: m.routed ? m.containerPort : m.hostPort,
        containerIp: v6 ? null : containerIp,
        containerIp6: v6 ? containerIp6 : null,
        containerPort: m.containerPort,
        bridge: net.bridge!,
        tag: ep.id,
        routed4: m.routed === true && !v6,
        routed6: m.routed === true && v6,
      };
    });
  }
}
