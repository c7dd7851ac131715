/** The bridge driver's options (Docker's names) and the names and MACs it derives. */
import { invalid } from '../errors.js';
import { parseIp } from '../net/ip.js';
import type { EndpointRecord, NetworkRecord } from '../types.js';
import { checkIfname, parseBool, parseMtu } from '../validate.js';

/** Driver options the bridge understands (Docker's names). */
export const BridgeOptions = {
  name: 'com.docker.network.bridge.name',
  icc: 'com.docker.network.bridge.enable_icc',
  masquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  hostBinding: 'com.docker.network.bridge.host_binding_ipv4',
  defaultBridge: 'com.docker.network.bridge.default_bridge',
  mtu: 'com.docker.network.driver.mtu',
  ifacePrefix: 'com.docker.network.container_iface_prefix',
  gatewayMode4: 'com.docker.network.bridge.gateway_mode_ipv4',
  gatewayMode6: 'com.docker.network.bridge.gateway_mode_ipv6',
  trustedHostInterfaces: 'com.docker.network.bridge.trusted_host_interfaces',
  inhibitIPv4: 'com.docker.network.bridge.inhibit_ipv4',
} as const;

/**
 * How a network meets the world in one family (Docker's gateway modes): `nat`
 * publishes ports by DNAT on host addresses and masquerades outgoing traffic,
 * and only published container ports can be reached from outside; `nat-unprotected`
 * is nat without filtering of direct access; `routed` has no NAT: published
 * container ports are open to direct routing; `isolated` (internal networks
 * only) puts no address on the bridge.
 */
export type GatewayMode = 'nat' | 'nat-unprotected' | 'routed' | 'isolated';
const GATEWAY_MODES: readonly GatewayMode[] = ['nat', 'nat-unprotected', 'routed', 'isolated'];

const KNOWN = new Set<string>(Object.values(BridgeOptions));
const BOOLEAN = new Set<string>([BridgeOptions.icc, BridgeOptions.masquerade, BridgeOptions.defaultBridge, BridgeOptions.inhibitIPv4]);

/** The name a network's bridge gets when the user names none. */
export function defaultBridgeName(netId: string): string {
  return `br-${netId.slice(0, 12)}`;
}

/** The addresses an endpoint's interface carries: its IPAM ones and its link-local ones. */
export function interfaceAddresses(ep: Pick<EndpointRecord, 'ipv4' | 'ipv6' | 'linkLocal'>): string[] {
  return [ep.ipv4, ep.ipv6, ...(ep.linkLocal ?? [])].filter((a) => a !== '');
}

/** Host-side veth name derived from the endpoint id, so reconcile can map it back. */
export function hostIfnameFor(endpointId: string): string {
  return `veth${endpointId.slice(0, 9)}`;
}

/**
 * MAC derived from the IPv4 address (02:42 + address), as Docker did for years; without
 * one, from the first bytes of the (hex) endpoint or network id.
 */
export function macFor(ipv4Cidr: string, id: string): string {
  const bytes: number[] = [0x02, 0x42];
  if (ipv4Cidr) {
    const v = Number(parseIp(ipv4Cidr.split('/')[0]!).value);
    bytes.push(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  } else {
    for (let i = 0; i < 4; i++) bytes.push(parseInt(id.slice(i * 2, i * 2 + 2), 16));
  }
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Check the options of a bridge network and fill in its device name and MTU. */
export function prepareBridgeNetwork(net: NetworkRecord): void {
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
  for (const family of [4, 6] as const) {
    const key = family === 4 ? BridgeOptions.gatewayMode4 : BridgeOptions.gatewayMode6;
    const mode = net.options[key];
    if (mode === undefined) continue;
    if (!GATEWAY_MODES.includes(mode as GatewayMode)) throw invalid(`invalid value "${mode}" for ${key}: expected nat, nat-unprotected, routed or isolated`, mode);
    if (mode === 'isolated' && !net.internal) throw invalid(`${key}=isolated is only allowed on an internal network: add --internal`, mode);
  }
  const trusted = net.options[BridgeOptions.trustedHostInterfaces];
  if (trusted) for (const i of trusted.split(':')) checkIfname(i, `interface "${i}" in ${BridgeOptions.trustedHostInterfaces} (names separated by ":")`);
  const prefix = net.options[BridgeOptions.ifacePrefix];
  if (prefix !== undefined) checkIfname(`${prefix}99`, BridgeOptions.ifacePrefix);
  const name = net.options[BridgeOptions.name] ?? net.bridge ?? defaultBridgeName(net.id);
  net.bridge = checkIfname(name, 'bridge name');
}

/** The host address published ports of this network bind to by default. */
export function hostBinding(net: NetworkRecord, fallback: string): string {
  return net.options[BridgeOptions.hostBinding] ?? fallback;
}

/** The prefix of interface names inside sandboxes (eth by default). */
export function ifacePrefix(net: NetworkRecord): string {
  return net.options[BridgeOptions.ifacePrefix] ?? 'eth';
}

/** The network's gateway mode in one family (nat unless an option says otherwise). */
export function gatewayMode(net: NetworkRecord, family: 4 | 6): GatewayMode {
  return (net.options[family === 4 ? BridgeOptions.gatewayMode4 : BridgeOptions.gatewayMode6] as GatewayMode | undefined) ?? 'nat';
}

/** Whether the bridge holds the network's gateway address of that family (not when isolated, nor IPv4 when inhibited). */
export function bridgeHasGateway(net: NetworkRecord, family: 4 | 6): boolean {
  if (gatewayMode(net, family) === 'isolated') return false;
  const inhibit = net.options[BridgeOptions.inhibitIPv4];
  return !(family === 4 && inhibit !== undefined && parseBool(BridgeOptions.inhibitIPv4, inhibit));
}

/** The bridge's own addresses: a gateway per subnet (an isolated family, or IPv4 with inhibit_ipv4, has none). */
export function gatewayAddresses(net: NetworkRecord): string[] {
  return net.ipam.config.filter((c) => bridgeHasGateway(net, c.subnet.includes(':') ? 6 : 4)).map((c) => `${c.gateway}/${c.subnet.split('/')[1]}`);
}

/** Host interfaces through which direct routing to the network may come in. */
export function trustedInterfaces(net: NetworkRecord): string[] {
  const v = net.options[BridgeOptions.trustedHostInterfaces];
  return v === undefined || v === '' ? [] : v.split(':');
}
