/**
 * The bridge driver's part of reconcile: bridges missing after a reboot are made
 * again, bridges and endpoint pairs changed by someone else are put back as
 * their records say (addresses added by hand are reported), endpoints with
 * nothing left of their pair are reported lost, veths on our bridges
 * that no endpoint accounts for are removed, and the firewall holds exactly the
 * entries of the networks and published ports (missing ones restored, stale or
 * outdated ones removed), as do the userland proxies of ports on [::1].
 */
import { isGrave } from '../reaper.js';
import { Firewall } from '../firewall.js';
import { native } from '../native.js';
import type { FirewallLink, FirewallNetwork, LinkInfo, PortMapping } from '../native-api.js';
import { CnmError } from '../errors.js';
import { contains, formatIfAddr, parseCidr, parseIp } from '../net/ip.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { gatewayAddresses, interfaceAddresses } from './bridge-options.js';
import { syncProxies } from './bridge-proxies.js';
import type { Driver, DriverContext, RepairInput, RepairResult } from './driver.js';
import { isRoutedBridge } from './routed.js';

export async function repairBridges(driver: Driver, ctx: DriverContext, input: RepairInput): Promise<RepairResult> {
  const { networks, step } = input;
  const host = ctx.hostNetns;
  const changed: NetworkRecord[] = [];
  // read before the links: an endpoint recorded by now has its link in the listing
  const before = input.endpoints();
  let links = await native.listLinks(host);
  const present = new Set(links.map((l) => l.name));

  for (const net of networks) {
    if (net.bridge && !present.has(net.bridge)) {
      if (await step(`recreate missing bridge ${net.bridge} of network ${net.name}`, () => driver.createNetwork(net))) changed.push(net);
    }
  }
  if (changed.length) links = await native.listLinks(host);
  await repairBridgeDevices(input, host, links, changed);
  const lost = await repairEndpoints(driver, input, host, before, links);
  // listed again: the endpoints restored above have new links
  const after = await native.listLinks(host);
  await removeOrphans(input, host, after, new Map(after.map((l) => [l.name, l])));
  if (ctx.firewall.enabled) await syncFirewall(ctx.firewall, input, lost);
  await syncProxies(ctx.proxies, input, lost);
  return { changed, lost };
}

/** Kernel-made IPv6 link-local addresses (fe80::/10) are nobody's drift. */
const kernelMade = (cidr: string) => /^fe[89ab][0-9a-f]:/i.test(cidr);

/**
 * Bridges that are there but not as cnm left them: down, or without a gateway
 * address (put back); an address someone added by hand is reported, not
 * removed (it may be theirs on purpose), with a warning when it lies inside the
 * network's subnets, where IPAM may give it to an endpoint.
 */
async function repairBridgeDevices(input: RepairInput, host: string | null, links: LinkInfo[], recreated: NetworkRecord[]): Promise<void> {
  const byName = new Map(links.map((l) => [l.name, l]));
  for (const net of input.networks) {
    const br = net.bridge ? byName.get(net.bridge) : undefined;
    if (!br || recreated.includes(net)) continue;
    const want = gatewayAddresses(net);
    const have = new Set(br.addresses.map(canon));
    const missing = want.filter((a) => !have.has(canon(a)));
    if (!br.up || missing.length) {
      const what = [...(br.up ? [] : ['bring it up']), ...(missing.length ? [`put back its address${missing.length > 1 ? 'es' : ''} ${missing.join(', ')}`] : [])].join(' and ');
      await input.step(`bridge ${br.name} of network ${net.name}: ${what}`, () => native.ensureBridge({ netns: host, name: br.name, addresses: want, up: true }));
    }
    if (!net.bridgeCreated) continue; // a bridge of the user's: its other addresses are theirs
    const wanted = new Set(want.map(canon));
    for (const a of br.addresses.filter((x) => !wanted.has(canon(x)) && !kernelMade(x))) {
      input.notice?.(`address ${a} on bridge ${br.name} of network ${net.name} was not made by cnm; left as it is${inSubnets(net, a)}`);
    }
  }
}

/** The warning for an address inside one of the network's subnets. */
function inSubnets(net: NetworkRecord, cidr: string): string {
  const ip = parseIp(cidr.split('/')[0]!);
  const sub = net.ipam.config.find((c) => {
    const s = parseCidr(c.subnet);
    return s.family === ip.family && contains(s, ip);
  });
  return sub ? ` (it lies inside subnet ${sub.subnet}, where cnm may give it to an endpoint: remove it, or reserve it with an aux address)` : '';
}

interface EndpointState {
  ep: EndpointRecord;
  net: NetworkRecord;
  sb: SandboxRecord | undefined;
  hostLink: LinkInfo | undefined;
  /** the sandbox's links; undefined when its netns is gone */
  sbLinks: LinkInfo[] | undefined;
}

/**
 * Each active endpoint's pair against its record. A pair someone changed (its
 * host end off the bridge or down, an end moved to another netns or deleted,
 * the sandbox end down or without an address or its default route) is made
 * again from the record, with the same names, MAC and addresses. An endpoint
 * with neither end left is lost (a crash between a disconnect's kernel work and
 * its commit, or links deleted by hand): its records follow the kernel.
 * Addresses added by hand inside a sandbox are reported.
 */
async function repairEndpoints(driver: Driver, input: RepairInput, host: string | null, eps: EndpointRecord[], links: LinkInfo[]): Promise<EndpointRecord[]> {
  const nets = new Map(input.networks.map((n) => [n.id, n]));
  const sandboxes = new Map((input.sandboxes?.() ?? []).map((s) => [s.sandbox.id, s.sandbox]));
  const sbLinks = new Map<string, Promise<LinkInfo[] | undefined>>();
  const linksOf = (netns: string) => {
    let p = sbLinks.get(netns);
    if (!p) {
      p = native.listLinks(netns).catch((e: unknown) => {
        if (e instanceof CnmError && e.code === 'ERR_NETNS_NOT_FOUND') return undefined;
        throw e;
      });
      sbLinks.set(netns, p);
    }
    return p;
  };
  const read = async (ep: EndpointRecord, hostLinks: LinkInfo[]): Promise<EndpointState> => {
    const sb = sandboxes.get(ep.sandboxId);
    return { ep, net: nets.get(ep.networkId)!, sb, hostLink: hostLinks.find((l) => l.name === ep.hostIfname), sbLinks: sb ? await linksOf(sb.netns) : undefined };
  };
  const active = eps.filter((ep) => ep.state === 'active' && ep.hostIfname !== '' && nets.get(ep.networkId)?.bridge);
  // each sandbox's links (and routes) are read several at a time: one netlink dump each, on threads of their own
  const suspects: EndpointRecord[] = [];
  await eachAtMost(READ_AT_ONCE, active, async (ep) => {
    const st = await read(ep, links);
    if ((await drift(st, links)) === undefined) noticeExtras(input, st);
    else suspects.push(ep);
  });
  const lost: EndpointRecord[] = [];
  for (const ep of suspects) {
    // the listings may be older than work finished since (an attach, a disconnect's retire): look again
    const fresh = await native.listLinks(host);
    sbLinks.clear();
    const st = await read(ep, fresh);
    const why = await drift(st, fresh);
    if (why === undefined) continue;
    if (why === LOST) {
      lost.push(ep);
      continue;
    }
    const { net, sb, hostLink } = st;
    const peer = st.sbLinks?.find((l) => l.name === ep.ifname);
    await input.step(`restore the link of endpoint ${ep.id.slice(0, 12)} on ${net.name} in sandbox ${sb!.name} (${why})`, async () => {
      // what is left of the pair goes (deleting one end takes the other, wherever it was moved)
      if (hostLink) await native.deleteLink(host, ep.hostIfname);
      if (peer) await native.deleteLink(sb!.netns, ep.ifname);
      await driver.join(net, ep, sb!);
    });
  }
  return lost;
}

const LOST = Symbol('lost');

/** How many sandboxes are read at once. */
const READ_AT_ONCE = 8;

/** Run `fn` on every item, at most `limit` at a time. */
async function eachAtMost<T>(limit: number, items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Why an endpoint's pair is not what its record says; LOST when nothing of it is left; undefined when it is sound. */
async function drift(st: EndpointState, hostLinks: LinkInfo[]): Promise<string | typeof LOST | undefined> {
  const { ep, net, sb, hostLink, sbLinks } = st;
  // a retired pair (a disconnect under way, or done and not yet committed) is the reaper's
  if (hostLink && isGrave(hostLink.group)) return undefined;
  const peer = sbLinks?.find((l) => l.name === ep.ifname);
  if (!hostLink) return peer ? `its host end ${ep.hostIfname} is gone from the host` : LOST;
  // a sandbox whose netns is gone is released by reconcile's sandbox pass
  if (!sb || !sbLinks) return undefined;
  const bridge = hostLinks.find((l) => l.name === net.bridge);
  if (!bridge || hostLink.master !== bridge.index) return `its host end ${ep.hostIfname} is not on bridge ${net.bridge}`;
  if (!hostLink.up) return `its host end ${ep.hostIfname} is down`;
  if (!peer) return `${ep.ifname} is gone from the sandbox`;
  if (!peer.up) return `${ep.ifname} is down`;
  const have = new Set(peer.addresses.map(canon));
  const missing = interfaceAddresses(ep).filter((a) => !have.has(canon(a)));
  if (missing.length) return `${ep.ifname} lacks ${missing.join(', ')}`;
  if (ep.defaultGateway && !(await hasDefaultRoutes(sb.netns, ep, peer.index))) return `the default route through ${ep.gateway || ep.gateway6} is gone`;
  return undefined;
}

/** Addresses on a sound endpoint's interface that cnm did not put there. */
function noticeExtras(input: RepairInput, { ep, sb, sbLinks }: EndpointState): void {
  const peer = sbLinks?.find((l) => l.name === ep.ifname);
  if (!peer || !sb) return;
  const want = new Set(interfaceAddresses(ep).map(canon));
  for (const a of peer.addresses.filter((x) => !want.has(canon(x)) && !kernelMade(x))) {
    input.notice?.(`address ${a} on ${ep.ifname} of sandbox ${sb.name} was not made by cnm; left as it is`);
  }
}

/** veths on our bridges that belong to no endpoint. */
async function removeOrphans(input: RepairInput, host: string | null, links: LinkInfo[], byName: Map<string, LinkInfo>): Promise<void> {
  const ours = new Map<number, NetworkRecord>();
  for (const net of input.networks) {
    const l = net.bridge ? byName.get(net.bridge) : undefined;
    if (l) ours.set(l.index, net);
  }
  // read after the links, and after any transaction in flight: a veth in the listing
  // had its endpoint recorded before it was made, or in the same transaction
  await input.settled?.();
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
  let state = await firewall.state();
  // rules flushed by hand may leave every entry listed while no rule looks at them
  if (!state.baseIntact && input.networks.some((n) => n.bridge)) {
    const what = `put back the firewall's base ruleset (${firewall.backend}), changed by someone else`;
    if (await input.step(what, () => firewall.init())) state = await firewall.state();
  }
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
  return !ep.defaultGateway || hasDefaultRoutes(netns, ep, peer.index);
}

/** Whether the sandbox has the endpoint's default routes (each family it has a gateway in) through link `oif`. */
async function hasDefaultRoutes(netns: string, ep: EndpointRecord, oif: number): Promise<boolean> {
  for (const [family, gw] of [
    [4, ep.gateway],
    [6, ep.gateway6 ?? ''],
  ] as const) {
    if (gw === '' || (family === 6 && ep.ipv6 === '') || (family === 4 && ep.ipv4 === '')) continue;
    const want = parseIp(gw).value;
    const routes = await native.listRoutes(netns, family);
    if (!routes.some((r) => r.gateway && parseIp(r.gateway).value === want && r.oif === oif && isDefault(r.dst))) return false;
  }
  return true;
}
