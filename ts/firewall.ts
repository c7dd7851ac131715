/**
 * The firewall as the bridge driver sees it: typed network and port entries turned
 * into one native batch per operation, on the chosen backend, in the host netns.
 */
import { invalid } from './errors.js';
import { native } from './native.js';
import type { FirewallBackendName, FirewallBatch, FirewallNetwork, FirewallState, PortMapping } from './native-api.js';
import type { PortMappingRecord } from './ports.js';
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
  ) {}

  get enabled(): boolean {
    return this.backend !== 'none';
  }

  async init(): Promise<void> {
    if (this.enabled) await native.firewallInit(this.backend, this.netns);
  }

  async apply(batch: Omit<FirewallBatch, 'backend' | 'netns'>): Promise<void> {
    if (!this.enabled) return;
    const empty = [batch.addNetworks, batch.removeNetworks, batch.addPorts, batch.removePorts].every((l) => !l || l.length === 0);
    if (empty) return;
    await native.applyFirewall({ ...batch, backend: this.backend, netns: this.netns });
  }

  async state(): Promise<FirewallState> {
    if (!this.enabled) return { networks: [], ports: [] };
    return native.firewallState(this.backend, this.netns);
  }

  /** The firewall entry of a bridge network. */
  static network(net: NetworkRecord): FirewallNetwork {
    const opt = (k: string, dflt: boolean) => (net.options[k] === undefined ? dflt : parseBool(k, net.options[k]!));
    return {
      bridge: net.bridge!,
      subnet: net.ipam.config.find((c) => c.subnet.includes('.'))?.subnet ?? '',
      subnet6: net.ipam.config.find((c) => c.subnet.includes(':'))?.subnet ?? null,
      masquerade: opt(OPT_MASQ, true) && !net.internal,
      icc: opt(OPT_ICC, true),
      internal: net.internal,
      tag: net.id,
    };
  }

  /**
   * The firewall entries of an endpoint's published ports. A dual-stack endpoint's
   * ports are published on IPv6 too (to its IPv6 address), unless bound to a
   * specific IPv4 host address.
   */
  static ports(net: NetworkRecord, ep: EndpointRecord, maps: readonly PortMappingRecord[] = ep.ports ?? []): PortMapping[] {
    const containerIp = ep.ipv4.split('/')[0]!;
    const containerIp6 = ep.ipv6 ? ep.ipv6.split('/')[0]! : null;
    return maps.map((m) => {
      const hostIp = m.hostIp === '0.0.0.0' ? undefined : m.hostIp;
      return {
        proto: m.proto,
        hostIp,
        hostPort: m.hostPort,
        containerIp,
        containerIp6: hostIp === undefined ? containerIp6 : null,
        containerPort: m.containerPort,
        bridge: net.bridge!,
        tag: ep.id,
      };
    });
  }
}
