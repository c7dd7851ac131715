/**
 * The `bridge` driver: one Linux bridge per network in the host netns, one veth
 * pair per endpoint with its peer born inside the sandbox netns.
 */
import { invalid } from '../errors.js';
import { Firewall } from '../firewall.js';
import { parseIp } from '../net/ip.js';
import { native } from '../native.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { checkIfname, parseBool, parseMtu } from '../validate.js';
import type { Driver, DriverContext } from './driver.js';

/** Driver options the bridge understands (Docker's names). */
export const BridgeOptions = {
  name: 'com.docker.network.bridge.name',
  icc: 'com.docker.network.bridge.enable_icc',
  masquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  hostBinding: 'com.docker.network.bridge.host_binding_ipv4',
  defaultBridge: 'com.docker.network.bridge.default_bridge',
  mtu: 'com.docker.network.driver.mtu',
  ifacePrefix: 'com.docker.network.container_iface_prefix',
} as const;

const KNOWN = new Set<string>(Object.values(BridgeOptions));
const BOOLEAN = new Set<string>([BridgeOptions.icc, BridgeOptions.masquerade, BridgeOptions.defaultBridge]);

/** Host-side veth name derived from the endpoint id, so reconcile can map it back. */
export function hostIfnameFor(endpointId: string): string {
  return `veth${endpointId.slice(0, 9)}`;
}

/** MAC derived from the IPv4 address (02:42 + address), as Docker did for years. */
export function macFor(ipv4Cidr: string, endpointId: string): string {
  const bytes: number[] = [0x02, 0x42];
  if (ipv4Cidr) {
    const v = Number(parseIp(ipv4Cidr.split('/')[0]!).value);
    bytes.push(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  } else {
    for (let i = 0; i < 4; i++) bytes.push(parseInt(endpointId.slice(i * 2, i * 2 + 2), 16));
  }
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export class BridgeDriver implements Driver {
  readonly name = 'bridge';
  readonly usesIpam = true;
  readonly ownNetns = true;
  constructor(private readonly ctx: DriverContext) {}

  prepareNetwork(net: NetworkRecord): void {
    for (const [k, v] of Object.entries(net.options)) {
      if (k.startsWith('com.docker.network.') && !KNOWN.has(k)) {
        throw invalid(`unknown option ${k} for the bridge driver`, k);
      }
      if (BOOLEAN.has(k)) parseBool(k, v);
    }
    const mtuOpt = net.options[BridgeOptions.mtu];
    if (mtuOpt !== undefined) net.mtu = parseMtu(mtuOpt, BridgeOptions.mtu);
    const hb = net.options[BridgeOptions.hostBinding];
    if (hb !== undefined) parseIp(hb, BridgeOptions.hostBinding);
    const prefix = net.options[BridgeOptions.ifacePrefix];
    if (prefix !== undefined) checkIfname(`${prefix}99`, BridgeOptions.ifacePrefix);
    const name = net.options[BridgeOptions.name] ?? net.bridge ?? `br-${net.id.slice(0, 12)}`;
    net.bridge = checkIfname(name, 'bridge name');
  }

  async createNetwork(net: NetworkRecord): Promise<void> {
    const addresses = net.ipam.config.map((c) => `${c.gateway}/${c.subnet.split('/')[1]}`);
    const info = await native.ensureBridge({
      netns: this.ctx.hostNetns,
      name: net.bridge!,
      mtu: net.mtu ?? null,
      addresses,
      up: true,
    });
    net.bridgeCreated = info.created;
    if (net.mtu === undefined) net.mtu = info.mtu;
    try {
      if (this.ctx.ipForward && net.ipam.config.some((c) => c.subnet.includes(':'))) {
        await native.sysctlSet(this.ctx.hostNetns, 'net.ipv6.conf.all.forwarding', '1');
      }
      if (this.ctx.firewall.enabled) {
        // published ports must answer on 127.0.0.1 too: let DNATed loopback traffic leave via the bridge
        await native.sysctlSet(this.ctx.hostNetns, `net.ipv4.conf.${net.bridge}.route_localnet`, '1');
      }
      await this.ctx.firewall.apply({ addNetworks: [Firewall.network(net)] });
    } catch (e) {
      if (info.created) await native.deleteLink(this.ctx.hostNetns, net.bridge!).catch(() => undefined);
      throw e;
    }
  }

  async deleteNetwork(net: NetworkRecord): Promise<void> {
    await this.ctx.firewall.apply({ removeNetworks: [Firewall.network(net)] });
    if (net.bridgeCreated) await native.deleteLink(this.ctx.hostNetns, net.bridge!);
  }

  async programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    await this.ctx.firewall.apply({ addPorts: Firewall.ports(net, ep) });
  }

  async revokeExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    await this.ctx.firewall.apply({ removePorts: Firewall.ports(net, ep) });
  }

  createEndpoint(_net: NetworkRecord, ep: EndpointRecord): void {
    ep.hostIfname = hostIfnameFor(ep.id);
    ep.mac = macFor(ep.ipv4, ep.id);
  }

  async deleteEndpoint(): Promise<void> {}

  async join(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<{ mac?: string }> {
    const info = await native.attachVeth({
      hostNetns: this.ctx.hostNetns,
      sandboxNetns: sb.netns,
      hostIfname: ep.hostIfname,
      master: net.bridge!,
      ifname: ep.ifname,
      mtu: net.mtu ?? null,
      mac: ep.mac,
      addresses: [ep.ipv4, ep.ipv6].filter((a) => a !== ''),
      gateway: ep.defaultGateway && ep.ipv4 ? ep.gateway : null,
      gateway6: ep.defaultGateway && ep.ipv6 ? (ep.gateway6 ?? null) : null,
      // with br_netfilter the DNAT of a sandbox reaching its own published port
      // happens on the bridge, which must send the frame back out the port it
      // came in by; only endpoints that publish ports need it (it costs a request)
      hairpin: this.ctx.firewall.enabled && (ep.ports?.length ?? 0) > 0,
    });
    return { mac: info.mac };
  }

  async leave(_net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    await native.detachVeth(this.ctx.hostNetns, ep.hostIfname);
  }
}
