/**
 * The bridge driver's part of reconcile: bridges missing after a reboot are made
 * again, endpoints whose veth is gone are reported lost, veths on our bridges
 * that no endpoint accounts for are removed, and the firewall holds exactly the
 * entries of the networks and published ports (missing ones restored, stale or
 * outdated ones removed), as do the userland proxies of ports on [::1].
 */
import { isGrave } from '../reaper.js';
import { Firewall } from '../firewall.js';
import { native } from '../native.js';
import type { FirewallLink, FirewallNetwork, LinkInfo, PortMapping } from '../native-api.js';
import { formatIfAddr, parseCidr, parseIp } from '../net/ip.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { syncProxies } from './bridge-proxies.js';
import type { Driver, DriverContext, RepairInput, RepairResult } from './driver.js';
import { isRoutedBridge } from './routed.js';

export async function repairBridges(driver: Driver, ctx: DriverContext, input: RepairInput): Promise<RepairResult> {
  const { networks, step } = input;
  const host = ctx.hostNetns;
  const changed: NetworkRecord[] = [];
  // read before the links: an endpoint recorded by now has its link in the listing
  const before = input.endpoints();
  const links = await native.listLinks(host);
  const byName = new Map(links.map((l) => [l.name, l]));

  for (const net of networks) {
    if (net.bridge && !byName.has(net.bridge)) {
      if (await step(`recreate missing bridge ${net.bridge} of network ${net.name}`, () => driver.createNetwork(net))) changed.push(net);
    }
  }

  const lost = await lostEndpoints(host, before, links);
  await removeOrphans(input, host, links, byName);
  if (ctx.firewall.enabled) await syncFirewall(ctx.firewall, input, lost);
  await syncProxies(ctx.proxies, input, lost);
  return { changed, lost };
}

/**
 * Active endpoints whose veth is gone (a crash between a disconnect's kernel work
 * and its commit, or a link deleted by hand): the records follow the kernel.
 */
async function lostEndpoints(host: string | null, eps: EndpointRecord[], links: LinkInfo[]): Promise<EndpointRecord[]> {
  const active = eps.filter((ep) => ep.state === 'active' && ep.hostIfname !== '');
  const listed = new Set(links.map((l) => l.name));
  if (!active.some((ep) => !listed.has(ep.hostIfname))) return [];
  // the listing may be older than an attach that finished since: look again
  const fresh = new Set((await native.listLinks(host)).map((l) => l.name));
  return active.filter((ep) => !fresh.has(ep.hostIfname));
}

/** veths on our bridges that belong to no endpoint. */
async function removeOrphans(input: RepairInput, host: string | null, links: LinkInfo[], byName: Map<string, LinkInfo>): Promise<void> {
  const ours = new Map<number, NetworkRecord>();
  for (const net of input.networks) {
    const l = net.bridge ? byName.get(net.bridge) : undefined;
    if (l) ours.set(l.index, net);
  }
  // read after the links: a veth in the listing had its endpoint recorded before it was made
  const known = new Set(input.endpoints().map((e) => e.hostIfname));
  for (const l of links) {
    // a retired one (in the grave group) is the reaper's, a moment from now
    if (l.kind === 'veth' && l.master != null && ours.has(l.master) && !known.has(l.name) && !isGrave(l.group)) {
      await input.step(`remove orphan veth ${l.name} on bridge ${ours.get(l.master)!.bridge}`, () => native.deleteLink(host, l.name));
    }
  }
}

/**
 * The published keys of a port entry, one per family it publishes in: backends
 * report a dual-stack mapping as one entry or as one per family.
 */
function portKeys(p: PortMapping): string[] {
  const v6Host = p.hostIp?.includes(':') === true;
  const out: string[] = [];
  if (p.containerIp && !v6Host) out.push(`4|${p.proto}|${p.hostIp ?? ''}|${p.hostPort}|${p.containerIp}|${p.containerPort}|${p.routed4 === true}`);
  if (p.containerIp6 && (p.hostIp == null || v6Host)) out.push(`6|${p.proto}|${p.hostIp ?? ''}|${p.hostPort}|${p.containerIp6}|${p.containerPort}|${p.routed6 === true}`);
  return out;
}

const sorted = (l: readonly string[]) => [...l].sort();

/**
 * A network entry as a backend reads it back: masquerade is off when no family
 * does NAT; nftables protects every nat family by its bridge and keeps no subnets;
 * iptables protects a nat family's subnets (so knows them, and the trusted
 * interfaces, only through protection) and has no IPv6 rules (so no IPv6 mode)
 * for a network without an IPv6 subnet.
 */
export function networkShape(n: FirewallNetwork, backend: string): string {
  const ipt = backend === 'iptables';
  const subnets = n.subnets ?? [];
  const subnets6 = n.subnets6 ?? [];
  const m4 = n.mode4 ?? 'nat';
  const m6 = ipt && subnets6.length === 0 ? 'nat' : (n.mode6 ?? 'nat');
  const p4 = n.protect !== false && m4 === 'nat' && (!ipt || subnets.length > 0);
  const p6 = n.protect !== false && m6 === 'nat' && (!ipt || subnets6.length > 0);
  const masq = n.masquerade && !n.internal && !(m4 === 'routed' && m6 === 'routed');
  return JSON.stringify([
    n.bridge,
    masq,
    n.icc,
    n.internal,
    m4,
    m6,
    p4 || p6,
    p4 || p6 ? sorted(n.trusted ?? []) : [],
    ipt && p4 ? sorted(subnets) : [],
    ipt && p6 ? sorted(subnets6) : [],
    ipt && subnets6.length > 0,
  ]);
}

/** A link as both backends report it: nftables keeps neither bridge nor tag. */
const linkKey = (l: FirewallLink) => `${l.proto}|${l.from}|${l.to}|${l.port}`;

/** Firewall entries: every ready bridge network and published port present, nothing else. */
async function syncFirewall(firewall: Firewall, input: RepairInput, lost: EndpointRecord[]): Promise<void> {
  const state = await firewall.state();
  const gone = new Set(lost.map((e) => e.id));
  const netById = new Map(input.networks.map((n) => [n.id, n]));
  const wantNets = input.networks.filter((n) => n.bridge).map((n) => firewall.network(n));
  const wantPorts = input
    .endpoints()
    .filter((ep) => !gone.has(ep.id) && netById.has(ep.networkId))
    .flatMap((ep) => Firewall.ports(netById.get(ep.networkId)!, ep));
  const netKey = (n: FirewallNetwork) => networkShape(n, firewall.backend);
  const haveNets = new Set(state.networks.map(netKey));
  const haveBridges = new Set(state.networks.map((n) => n.bridge));
  const wantNetKeys = new Set(wantNets.map(netKey));
  const havePorts = new Set(state.ports.flatMap(portKeys));
  const wantPortKeys = new Set(wantPorts.flatMap(portKeys));
  const addNetworks = wantNets.filter((n) => !haveNets.has(netKey(n)));
  // a routed network's entries are that driver's to keep
  const removeNetworks = state.networks.filter((n) => !wantNetKeys.has(netKey(n)) && !isRoutedBridge(n.bridge));
  const addPorts = wantPorts.filter((p) => portKeys(p).some((k) => !havePorts.has(k)));
  const removePorts = state.ports.filter((p) => portKeys(p).some((k) => !wantPortKeys.has(k)));
  // a port removed because one of its families is stale takes the others with it: add those back
  for (const p of wantPorts) if (!addPorts.includes(p) && removePorts.some((r) => portKeys(r).some((k) => portKeys(p).includes(k)))) addPorts.push(p);
  // legacy links: by their key (nftables keeps neither bridge nor tag); only those of these networks' bridges
  const bridges = new Set(wantNets.map((n) => n.bridge));
  const wantLinks = input.links?.() ?? [];
  const haveLinks = new Set(state.links.map(linkKey));
  const wantLinkKeys = new Set(wantLinks.map(linkKey));
  const addLinks = wantLinks.filter((l) => !haveLinks.has(linkKey(l)));
  const removeLinks = state.links.filter((l) => !wantLinkKeys.has(linkKey(l)) && (l.bridge === '' || bridges.has(l.bridge) || !haveBridges.has(l.bridge)));
  if (!addNetworks.length && !removeNetworks.length && !addPorts.length && !removePorts.length && !addLinks.length && !removeLinks.length) return;
  const what = [
    ...removeNetworks.map((n) => `remove firewall entries of bridge ${n.bridge}`),
    ...addNetworks.map((n) => `${haveBridges.has(n.bridge) ? 'update' : 'restore'} firewall entries of bridge ${n.bridge}`),
    ...removePorts.map((p) => `remove stale port mapping ${p.proto}/${p.hostPort}`),
    ...addPorts.map((p) => `restore port mapping ${p.proto}/${p.hostPort} -> ${p.containerIp ?? `[${p.containerIp6}]`}:${p.containerPort}`),
    ...removeLinks.map((l) => `remove stale link ${l.from} -> ${l.to}:${l.port}/${l.proto}`),
    ...addLinks.map((l) => `restore link ${l.from} -> ${l.to}:${l.port}/${l.proto}`),
  ];
  await input.step(what, async () => {
    // removals first, in their own batch, so that an updated entry is re-added cleanly
    await firewall.apply({ removeNetworks, removePorts, removeLinks });
    await firewall.apply({ addNetworks, addPorts, addLinks });
  });
}

/** An interface address in one spelling (IPv6 has several). */
function canon(cidr: string): string {
  const c = parseCidr(cidr);
  return formatIfAddr(c.family, c.addr, c.prefix);
}

const isDefault = (dst: string) => parseCidr(dst).prefix === 0;

/**
 * Whether an endpoint's veth is all that attachVeth makes: the host end up on the
 * network's bridge, the sandbox end up with the endpoint's addresses and, when it
 * gives the default route, that route through its gateway.
 */
export async function vethComplete(host: string | null, net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<boolean> {
  if (!ep.hostIfname || !ep.ifname || !net.bridge) return false;
  const hostLinks = await native.listLinks(host);
  const bridge = hostLinks.find((l) => l.name === net.bridge);
  const veth = hostLinks.find((l) => l.name === ep.hostIfname);
  if (!bridge || !veth || veth.master !== bridge.index || !veth.up) return false;
  return sandboxSideComplete(sb.netns, ep);
}

/**
 * Whether the sandbox side of an endpoint is all its attach makes: link
 * `ep.ifname` (of `kind`, when given) up with the endpoint's addresses and, when
 * it gives the default route, that route through its gateway.
 */
export async function sandboxSideComplete(netns: string, ep: EndpointRecord, kind?: string): Promise<boolean> {
  if (!ep.ifname || !(await native.netnsExists(netns))) return false;
  const peer = (await native.listLinks(netns)).find((l) => l.name === ep.ifname);
  if (!peer || !peer.up || (kind !== undefined && peer.kind !== kind)) return false;
  const have = new Set(peer.addresses.map(canon));
  if ([ep.ipv4, ep.ipv6].some((a) => a !== '' && !have.has(canon(a)))) return false;
  if (!ep.defaultGateway) return true;
  for (const [family, gw] of [
    [4, ep.gateway],
    [6, ep.gateway6 ?? ''],
  ] as const) {
    if (gw === '' || (family === 6 && ep.ipv6 === '')) continue;
    const want = parseIp(gw).value;
    const routes = await native.listRoutes(netns, family);
    if (!routes.some((r) => r.gateway && parseIp(r.gateway).value === want && r.oif === peer.index && isDefault(r.dst))) return false;
  }
  return true;
}
