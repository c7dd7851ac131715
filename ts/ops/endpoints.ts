/**
 * Endpoint join and leave (libnetwork's endpoint.go): an endpoint is planned
 * (checks, addresses requested from the network's IPAM), reserved in one store
 * transaction (its record, its addresses bound, its host ports), programmed in
 * the kernel by the driver, then marked active. Connect and sandbox create share
 * these steps; sandbox create reserves its sandbox in the same transaction.
 */
import { CnmError, invalid, toCnmError } from '../errors.js';
import type { Driver } from '../drivers/driver.js';
import { gatewayMode, hostBinding, ifacePrefix } from '../drivers/bridge-options.js';
import { fault } from '../fault.js';
import type { AddressLease } from '../ipam/ipam-api.js';
import { log } from '../log.js';
import type { ConnectOptions } from '../options.js';
import { currentOwner } from '../owner.js';
import { type PortFamilies, releasePorts, reservePorts } from '../port-allocator.js';
import { checkBinding } from '../ports.js';
import { formatIp, parseIp } from '../net/ip.js';
import { endpointEvent } from '../events.js';
import { endpointsOfNetwork, endpointsOfSandbox, findSandbox, keys } from '../records.js';
import { attachGatewayBridge, detachGatewayBridge, needsGatewayBridge } from './gateway-bridge.js';
import { ensureLocalCopy, findAnyNetwork, whileHeld } from './global-networks.js';
import type { StoreTxn } from '../store/store.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { newId } from '../validate.js';
import type { OpContext } from './context.js';
import { gatewayFor, gatewayHeir, givesDefaultRoute, handOverDefaultRoute } from './default-gateway.js';
import { Forward, Undo } from './undo.js';
import { refreshFilesOf } from './sandbox-files.js';
import { addLinks, dropLinks, planLinks } from './links.js';
import { endpointNames, hasDns, ptrName } from '../dns/names.js';

/** An endpoint checked and given its addresses, ready to be reserved in a transaction. */
export interface EndpointPlan {
  net: NetworkRecord;
  sb: SandboxRecord;
  ep: EndpointRecord;
  driver: Driver;
  /** record the endpoint, bind its addresses and reserve its host ports, in the caller's transaction */
  reserve(tx: StoreTxn): void;
  /** give the addresses back when the reservation did not commit */
  release(): Promise<void>;
}

const isV6 = (subnet: string) => subnet.includes(':');

export async function planEndpoint(ctx: OpContext, net: NetworkRecord, sb: SandboxRecord, opts: ConnectOptions, creating: boolean): Promise<EndpointPlan> {
  if (net.state !== 'ready') throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${net.name} is being created or removed`, { network: net.name });
  if (!creating && sb.state !== 'ready') throw new CnmError('ERR_SANDBOX_NOT_FOUND', `sandbox ${sb.name} is being created or removed`, { sandbox: sb.name });
  const driver = await ctx.drivers.resolve(net.driver);
  const aliases = opts.aliases ?? [];
  if (!Array.isArray(aliases) || aliases.some((a) => typeof a !== 'string' || a === '' || /\s/.test(a))) {
    throw invalid('aliases must be non-empty strings without spaces', aliases);
  }
  if (net.predefined && aliases.length > 0) {
    throw invalid('network-scoped alias is supported only for containers in user defined networks', aliases);
  }
  const bindings = (opts.ports ?? []).map(checkBinding);
  if (bindings.length > 0 && driver.publishesPorts === false) {
    throw invalid(`network ${net.name} (driver ${net.driver}) does not publish ports: its sandboxes are reached at their own addresses`, net.name);
  }
  if (bindings.length > 0 && net.internal) {
    throw invalid(`network ${net.name} is internal: it has no way in or out, so ports cannot be published on it`, net.name);
  }
  if (opts.ip6 !== undefined && !net.ipam.userSubnet) {
    throw invalid('user specified IP address is supported only when connecting to networks with user configured subnets', opts.ip6);
  }
  if (opts.ip !== undefined) {
    if (net.predefined && net.name === 'bridge') throw invalid('user specified IP address is supported on user defined networks only', opts.ip);
    if (!net.ipam.userSubnet) throw invalid('user specified IP address is supported only when connecting to networks with user configured subnets', opts.ip);
  }
  const extra = endpointExtras(opts);
  const ep: EndpointRecord = {
    id: newId(),
    networkId: net.id,
    sandboxId: sb.id,
    ifname: '',
    hostIfname: '',
    mac: extra.mac ?? '',
    ipv4: '',
    ipv6: '',
    gateway: '',
    gateway6: '',
    defaultGateway: false,
    aliases,
    staticIp: opts.ip !== undefined,
    ...(opts.ip6 !== undefined ? { staticIp6: true } : {}),
    created: new Date().toISOString(),
    state: 'pending',
    owner: currentOwner(),
    ...(extra.mac ? { staticMac: true } : {}),
    ...(extra.linkLocal.length ? { linkLocal: extra.linkLocal } : {}),
    ...(extra.driverOpts ? { driverOpts: extra.driverOpts } : {}),
    ...((opts as InternalConnect).askedLinks?.length ? { links: [...(opts as InternalConnect).askedLinks!] } : {}),
  };
  // a global network's peer record, written with the address, carries the names for the other hosts' DNS
  const hooks = net.scope === 'global' && hasDns(net) ? ctx.drivers.clusterIpam?.hooks : undefined;
  hooks?.nameEndpoint?.(ep.id, { names: endpointNames(net, sb.name, sb.id, aliases), ptr: ptrName(net, sb.name) });
  let leases: Array<{ family: 4 | 6; lease: AddressLease }>;
  try {
    leases = driver.usesIpam ? await requestAddresses(ctx, net, opts, ep.id) : [];
  } finally {
    hooks?.nameEndpoint?.(ep.id, undefined);
  }
  const release = async () => {
    for (const l of leases) await l.lease.release().catch((e: unknown) => log.warn('giving back an unused address failed', { network: net.name, err: e }));
  };
  return {
    net,
    sb,
    ep,
    driver,
    release,
    reserve: (tx) => {
      if (!tx.get(keys.net(net.id))) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${net.name} not found`, { network: net.name });
      if (!tx.get(keys.sb(sb.id))) throw new CnmError('ERR_SANDBOX_NOT_FOUND', `sandbox ${sb.name} not found`, { sandbox: sb.name });
      const mine = endpointsOfSandbox(tx, sb.id);
      driver.checkEndpoint?.(net, endpointsOfNetwork(tx, net.id));
      if (mine.some((e) => e.networkId === net.id)) {
        throw new CnmError('ERR_ALREADY_CONNECTED', `endpoint with name ${sb.name} already exists in network ${net.name}`, { network: net.name, sandbox: sb.name });
      }
      if (driver.ownNetns && driver.usesIpam) {
        const prefix = ifacePrefix(net);
        const used = new Set(mine.map((e) => e.ifname));
        let i = 0;
        while (used.has(`${prefix}${i}`)) i++;
        ep.ifname = `${prefix}${i}`;
        ep.defaultGateway = givesDefaultRoute(net, mine);
      }
      for (const { family, lease } of leases) {
        const address = lease.bind(tx, ep.id);
        // with several subnets, the gateway is the one of the subnet the address came from
        if (family === 4) [ep.ipv4, ep.gateway] = [address, gatewayFor(net, address)];
        else [ep.ipv6, ep.gateway6] = [address, gatewayFor(net, address)];
      }
      driver.createEndpoint(net, ep);
      if (bindings.length > 0 && driver.usesIpam) {
        const family = (f: 4 | 6, address: string): PortFamilies['v4'] => (address === '' ? 'none' : gatewayMode(net, f) === 'routed' ? 'routed' : 'nat');
        const fam = { v4: family(4, ep.ipv4), v6: family(6, ep.ipv6) };
        ep.ports = reservePorts(tx, bindings, hostBinding(net, ctx.settings.defaultHostIp), ctx.settings.portRange, ep.id, fam);
      }
      tx.put(keys.ep(net.id, ep.id), ep);
      tx.put(keys.sbEp(sb.id, ep.id), net.id);
    },
  };
}

/** A connect whose links were planned by its caller: the endpoint records them as asked. */
export type InternalConnect = ConnectOptions & { askedLinks?: string[] };

/** A MAC as Docker takes it: six hex pairs, not a multicast address; lower case. */
export function checkMac(mac: unknown): string {
  if (typeof mac !== 'string' || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) throw invalid(`invalid MAC address ${JSON.stringify(mac)}: expected six hex pairs such as 02:42:ac:11:00:02`, mac);
  if (parseInt(mac.slice(0, 2), 16) & 1) throw invalid(`invalid MAC address ${mac}: it is a multicast address`, mac);
  return mac.toLowerCase();
}

/** The MAC, link-local addresses and driver options a connect asks for, checked. */
function endpointExtras(opts: ConnectOptions): { mac?: string; linkLocal: string[]; driverOpts?: Record<string, string> } {
  const mac = opts.mac === undefined || opts.mac === '' ? undefined : checkMac(opts.mac);
  const ll = opts.linkLocalIps ?? [];
  if (!Array.isArray(ll)) throw invalid('link-local IPs must be a list of addresses', ll);
  // libnetwork puts them on the interface as /16 (IPv4) or /64 (IPv6)
  const linkLocal = ll.map((a) => {
    const ip = parseIp(a, 'link-local IP');
    return `${formatIp(ip)}/${ip.family === 4 ? 16 : 64}`;
  });
  const d = opts.driverOpts;
  if (d !== undefined && d !== null && (typeof d !== 'object' || Array.isArray(d) || Object.values(d).some((v) => typeof v !== 'string'))) {
    throw invalid('driver options must map names to strings', d);
  }
  return { mac, linkLocal, driverOpts: d && Object.keys(d).length ? { ...d } : undefined };
}

/** One address of each family the network has, from its IPAM; the IPv4 one is given back if the IPv6 one fails. */
async function requestAddresses(ctx: OpContext, net: NetworkRecord, opts: ConnectOptions, endpointId: string): Promise<Array<{ family: 4 | 6; lease: AddressLease }>> {
  const has4 = net.ipam.config.some((c) => !isV6(c.subnet));
  const has6 = net.ipam.config.some((c) => isV6(c.subnet));
  if (opts.ip !== undefined && !has4) throw invalid(`network ${net.name} has no IPv4 subnet (it is IPv6-only): --ip cannot be used`, opts.ip);
  if (opts.ip6 !== undefined && !has6) throw invalid(`network ${net.name} has no IPv6 subnet: create it with --ipv6 to use --ip6`, opts.ip6);
  const ipam = await ctx.drivers.ipamOf(net);
  const out: Array<{ family: 4 | 6; lease: AddressLease }> = [];
  if (has4) out.push({ family: 4, lease: await ipam.requestAddress(net, 4, opts.ip, endpointId) });
  if (has6) {
    try {
      out.push({ family: 6, lease: await ipam.requestAddress(net, 6, opts.ip6, endpointId) });
    } catch (e) {
      for (const l of out) await l.lease.release().catch((u: unknown) => log.warn('giving back an unused address failed', { network: net.name, err: u }));
      throw e;
    }
  }
  return out;
}

/**
 * Put a reserved endpoint into the kernel: the driver's join and its published
 * ports, in flight together. What succeeded is pushed onto `undo`.
 */
export async function programEndpoint(plan: EndpointPlan, undo: Undo, joining?: Promise<{ mac?: string }>): Promise<void> {
  const { net, ep, driver } = plan;
  const [joined, published] = await Promise.allSettled([joining ?? startJoin(plan), ep.ports?.length ? driver.programExternalConnectivity(net, ep) : Promise.resolve()]);
  if (joined.status === 'fulfilled') undo.push('take the endpoint out of the sandbox', () => driver.leave(net, ep, plan.sb));
  if (published.status === 'fulfilled' && ep.ports?.length) undo.push('withdraw its published ports', () => driver.revokeExternalConnectivity(net, ep));
  if (joined.status === 'rejected') throw joined.reason;
  if (published.status === 'rejected') throw published.reason;
  if (joined.value.mac) ep.mac = joined.value.mac;
  fault('connect.kernel');
}

/** The driver's join of a reserved endpoint, started. */
async function startJoin(plan: EndpointPlan): Promise<{ mac?: string }> {
  fault('connect.reserve');
  return plan.driver.join(plan.net, plan.ep, plan.sb);
}

/**
 * Reserve a planned endpoint in one transaction. With the process lease held
 * and a driver whose repair removes unrecorded links, its join starts inside
 * that transaction, once the writes are final, so that the kernel work overlaps
 * the commit's disk flush (a crash in between leaves the lease, and reconcile
 * removes the link); the join in flight is returned. A transaction that fails
 * takes its join back out and gives the addresses back.
 */
async function reserveEndpoint(ctx: OpContext, plan: EndpointPlan): Promise<{ joining?: Promise<{ mac?: string }> }> {
  const canAhead = plan.driver.joinAheadOfRecord === true;
  const ahead = canAhead && ctx.lease.held;
  // the first connect of a process keeps its record first; its transaction writes the lease
  if (canAhead) ctx.lease.want();
  let joining: Promise<{ mac?: string }> | undefined;
  try {
    await ctx.store.txn((tx) => {
      plan.reserve(tx);
      if (ahead && tx.beforeCommit) {
        tx.beforeCommit(() => {
          joining = startJoin(plan);
          // awaited by the caller, or below when the commit fails
          joining.catch(() => undefined);
          fault('connect.ahead');
        });
      }
    });
  } catch (e) {
    if (joining) {
      await joining.then(
        () => plan.driver.leave(plan.net, plan.ep, plan.sb).catch((u: unknown) => log.warn('taking out a join whose record did not commit failed; reconcile removes it', { endpoint: plan.ep.id, err: u })),
        () => undefined,
      );
    }
    await plan.release();
    throw e;
  }
  // wrapped: an async function returning the promise itself would wait for it
  return { joining };
}

/** Mark a programmed endpoint active, inside the caller's transaction. */
export function markActive(tx: StoreTxn, ep: EndpointRecord): void {
  if (!tx.get(keys.ep(ep.networkId, ep.id))) {
    throw new CnmError('ERR_ENDPOINT_NOT_FOUND', `endpoint ${ep.id.slice(0, 12)} was removed while it was being connected`, { value: ep.id });
  }
  ep.state = 'active';
  delete ep.owner;
  tx.put(keys.ep(ep.networkId, ep.id), ep);
  endpointEvent(tx, 'connect', ep);
}

/** Record an endpoint whose kernel side is complete as active (reconcile, after its owner died). */
export async function finishEndpoint(ctx: OpContext, ep: EndpointRecord): Promise<void> {
  await ctx.store.txn((tx) => {
    const cur = tx.get<EndpointRecord>(keys.ep(ep.networkId, ep.id));
    if (cur?.state === 'pending') markActive(tx, cur);
  });
}

/** Connect a sandbox to a network (Docker's `network connect`). */
export async function connect(ctx: OpContext, netRef: string, sbRef: string, opts: ConnectOptions): Promise<EndpointRecord> {
  const net = findAnyNetwork(ctx, netRef);
  if (opts?.links !== undefined) {
    // links are checked before anything changes, made once the endpoint is
    const linker = findSandbox(ctx.store, sbRef);
    const links = planLinks(ctx, opts.links, linker.name, net, linker.links);
    const ep = await connect(ctx, net.id, linker.id, { ...opts, links: undefined, askedLinks: opts.links } as InternalConnect);
    try {
      await addLinks(ctx, findSandbox(ctx.store, linker.id), links);
    } catch (e) {
      await disconnect(ctx, net.id, linker.id).catch((u: unknown) => log.warn('leaving a network after its links failed failed', { network: net.name, err: u }));
      throw e;
    }
    return ep;
  }
  if (!needsGatewayBridge(net)) return connectTo(ctx, net, sbRef, opts);
  // an overlay sandbox meets the world, and publishes its ports, on the gateway bridge
  const ep = await connectTo(ctx, net, sbRef, { ...opts, ports: undefined });
  const sb = findSandbox(ctx.store, sbRef);
  try {
    await attachGatewayBridge(ctx, sb, opts.ports);
  } catch (e) {
    await disconnect(ctx, net.id, sb.id).catch((u: unknown) => log.warn('leaving an overlay network after a failed gateway bridge join failed', { network: net.name, err: u }));
    throw e;
  }
  return ep;
}

async function connectTo(ctx: OpContext, net: NetworkRecord, sbRef: string, opts: ConnectOptions): Promise<EndpointRecord> {
  const sb = findSandbox(ctx.store, sbRef);
  if (sb.mode === 'container') {
    throw invalid('container sharing network namespace with another container or host cannot be connected to any other network', sb.name);
  }
  if (sb.mode === 'host' || net.driver === 'host') {
    throw invalid('container cannot be disconnected from host network or connected to host network', sb.name);
  }
  if (sb.mode === 'none' || net.driver === 'null') {
    throw invalid('container cannot be connected to multiple networks with one of the networks in private (none) mode', sb.name);
  }
  // a global network's keys are followed here, and its local copy kept, while this runs
  const letGo = await ensureLocalCopy(ctx, net);
  let committed = false;
  try {
    const plan = await planEndpoint(ctx, net, sb, opts, false);
    const { joining } = await reserveEndpoint(ctx, plan);
    // its hosts file (a new address) is written beside the kernel work
    const files = refreshFilesOf(ctx, sb.id, net);
    const undo = new Undo();
    undo.push('write its hosts file again', async () => {
      await files;
      await refreshFilesOf(ctx, sb.id, net, plan.ep);
    });
    undo.push('drop the endpoint records', () => forgetEndpoint(ctx, net, plan.ep));
    try {
      await programEndpoint(plan, undo, joining);
    } catch (e) {
      throw await undo.run(e, `connect ${sb.name} to ${net.name}`);
    }
    await files;
    // done: the active mark goes with this process's next transaction (marks.ts);
    // should the process die first, reconcile finds the kernel side complete and finishes it
    ctx.marks.add(plan.ep);
    fault('connect.commit');
    committed = true;
    return plan.ep;
  } finally {
    await letGo(committed);
  }
}

/** Disconnect a sandbox from a network and release its address. */
export async function disconnect(ctx: OpContext, netRef: string, sbRef: string): Promise<void> {
  const net = findAnyNetwork(ctx, netRef);
  const sb = findSandbox(ctx.store, sbRef);
  const ep = endpointsOfSandbox(ctx.store, sb.id).find((e) => e.networkId === net.id);
  if (!ep) {
    throw new CnmError('ERR_NOT_CONNECTED', `container ${sb.name} is not connected to network ${net.name}`, { network: net.name, sandbox: sb.name });
  }
  if (net.driver === 'host' || net.driver === 'null') {
    throw invalid(`container cannot be disconnected from ${net.name} network`, net.name);
  }
  const driver = await ctx.drivers.resolve(net.driver);
  // the way back is open until the link goes: a failure before that leaves all as it was;
  // its hosts file (one address less) is written beside the kernel work
  const files = refreshFilesOf(ctx, sb.id, net, ep);
  const undo = new Undo();
  undo.push('write its hosts file again', async () => {
    await files;
    await refreshFilesOf(ctx, sb.id, net);
  });
  try {
    if (ep.ports?.length) {
      await driver.revokeExternalConnectivity(net, ep);
      undo.push('publish its ports again', () => driver.programExternalConnectivity(net, ep));
    }
    fault('disconnect.revoke');
    await driver.leave(net, ep, sb);
  } catch (e) {
    throw await undo.run(e, `disconnect ${sb.name} from ${net.name}`);
  }
  // the link is gone: from here on the disconnect only moves forward
  const fwd = new Forward(`disconnect ${sb.name} from ${net.name}`);
  await fwd.step('the step after the kernel work', () => fault('disconnect.leave'));
  await fwd.step('take its links on this network out', () => dropLinks(ctx, sb, net.id));
  const heir = ep.defaultGateway ? gatewayHeir(ctx.store, sb, ep) : undefined;
  await fwd.step('drop the endpoint records', () => forgetEndpoint(ctx, net, ep, heir));
  await fwd.step('the step after the commit', () => fault('disconnect.commit'));
  // the default route left with the interface: another network's gateway takes over, as in Docker
  if (heir) await fwd.step('hand the default route over', () => handOverDefaultRoute(sb, heir));
  if (needsGatewayBridge(net)) await fwd.step('leave the gateway bridge', () => detachGatewayBridge(ctx, sb));
  await files;
  fwd.finish();
}

/** Drop an endpoint's records and host ports, inside the caller's transaction (a connected one is reported disconnected). */
export function dropEndpointRecords(tx: StoreTxn, ep: EndpointRecord): void {
  if (tx.get<EndpointRecord>(keys.ep(ep.networkId, ep.id))?.state === 'active') endpointEvent(tx, 'disconnect', ep);
  releasePorts(tx, ep.ports ?? []);
  tx.del(keys.ep(ep.networkId, ep.id));
  tx.del(keys.sbEp(ep.sandboxId, ep.id));
}

/**
 * Drop an endpoint's records (with `heir` taking over the default route), then
 * give its addresses back to the network's IPAM.
 */
export async function forgetEndpoint(ctx: OpContext, net: NetworkRecord | undefined, ep: EndpointRecord, heir?: EndpointRecord): Promise<void> {
  const inTxn = await releaserIn(ctx, net);
  // this host's last endpoint on a global network: its copy goes after
  await whileHeld(ctx, [net], async () => {
    await ctx.store.txn((tx) => {
      dropEndpointRecords(tx, ep);
      // its links, retired by the leave, wait for the reaper
      ctx.reaper.note(tx);
      if (heir) tx.put(keys.ep(heir.networkId, heir.id), { ...heir, defaultGateway: true });
      inTxn?.(tx, ep);
    });
    if (!inTxn) await releaseAddresses(ctx, net, ep);
  });
}

/**
 * Where the network's IPAM keeps its allocations in the local store, the release
 * of an endpoint's addresses to run inside the transaction that drops it.
 */
export async function releaserIn(ctx: OpContext, net: NetworkRecord | undefined): Promise<((tx: StoreTxn, ep: Pick<EndpointRecord, 'ipv4' | 'ipv6'>) => void) | undefined> {
  if (!net || !(await ctx.drivers.resolve(net.driver)).usesIpam) return undefined;
  const ipam = await ctx.drivers.ipamOf(net).catch(() => undefined);
  const release = ipam?.releaseAddressIn?.bind(ipam);
  if (!release) return undefined;
  return (tx, ep) => {
    for (const address of [ep.ipv4, ep.ipv6]) {
      if (!address) continue;
      try {
        release(tx, net, address);
      } catch (e) {
        // best effort, as after the commit: reconcile frees what is left
        log.warn('giving an address back to IPAM failed', { network: net.name, address, err: e });
      }
    }
  };
}

/**
 * Give an endpoint's addresses back to its network's IPAM, after its records are
 * gone. Best effort, as in libnetwork: a failure is logged, and the default IPAM's
 * reconcile frees addresses whose endpoint is gone.
 */
export async function releaseAddresses(ctx: OpContext, net: NetworkRecord | undefined, ep: Pick<EndpointRecord, 'ipv4' | 'ipv6'>): Promise<void> {
  if (!net || (!ep.ipv4 && !ep.ipv6)) return;
  try {
    const ipam = await ctx.drivers.ipamOf(net);
    for (const address of [ep.ipv4, ep.ipv6]) {
      if (!address) continue;
      await ipam.releaseAddress(net, address).catch((e: unknown) => log.warn('giving an address back to IPAM failed', { network: net.name, address, err: e }));
    }
  } catch (e) {
    log.warn('giving addresses back to IPAM failed', { network: net.name, ipam: net.ipam.driver, err: toCnmError(e) });
  }
}
