/**
 * Global-scope networks (overlay, routed): their records, pools and VNIs live in the
 * cluster store, reserved in one compare-and-swap transaction, so two hosts can
 * never take one name, subnet or VNI. A host keeps a local copy of a global
 * network while it has endpoints on it, so that the local operations (connect,
 * disconnect, reconcile) work on it as on any network; the copy goes with the
 * host's last endpoint, or when the network leaves the cluster.
 */
import { type PeerRecord, clusterKeys } from '../cluster/cluster.js';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import { type Cidr, parseSubnet } from '../net/ip.js';
import type { NetworkCreateOptions } from '../options.js';
import { allNetworks, endpointsOfNetwork, findNetwork, keys } from '../records.js';
import type { Store, StoreTxn } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import { VXLANID_OPTION } from '../drivers/overlay.js';
import { RoutedDriver } from '../drivers/routed.js';
import { RouteBlocks } from '../cluster/route-blocks.js';
import type { OpContext } from './context.js';
import { planNetwork } from './network-plan.js';
import { appendEvent } from '../events.js';
import { reserveNetwork } from './networks.js';

/** Docker's first overlay VNI. */
export const FIRST_VNI = 4096;

function clusterOf(ctx: OpContext) {
  if (!ctx.cluster) throw new CnmError('ERR_INVALID_ARGUMENT', 'global networks need a cluster store: start cnm with --cluster-store and --cluster-advertise');
  return ctx.cluster;
}

/** The VNI a new network takes: the one asked for if free, else the first free from 4096. */
function reserveVni(tx: StoreTxn, rec: NetworkRecord): void {
  const asked = rec.options[VXLANID_OPTION];
  let vni: number;
  if (asked !== undefined) {
    vni = Number(asked);
    const holder = tx.get<string>(clusterKeys.vni(vni));
    if (holder !== undefined) {
      throw new CnmError('ERR_INVALID_ARGUMENT', `VNI ${vni} is already used by network ${tx.get<NetworkRecord>(keys.net(holder))?.name ?? holder}: choose another or leave ${VXLANID_OPTION} out`, { value: asked });
    }
  } else {
    const used = new Set(tx.range<string>('vni/').map(([k]) => Number(k.slice(4))));
    vni = FIRST_VNI;
    while (used.has(vni)) vni++;
    rec.options[VXLANID_OPTION] = String(vni);
  }
  tx.put(clusterKeys.vni(vni), rec.id);
}

/** Create a global network in the cluster store; nothing is made in any kernel until an endpoint joins. */
export async function createGlobalNetwork(ctx: OpContext, req: NetworkCreateOptions): Promise<NetworkRecord> {
  const cluster = clusterOf(ctx);
  const { rec, requested, driver } = await planNetwork(ctx, req);
  rec.scope = 'global';
  const ipam = await ctx.drivers.ipamOf(rec);
  const local = allNetworks(ctx.store).find((n) => n.name === rec.name && n.scope !== 'global');
  if (local) throw new CnmError('ERR_NAME_CONFLICT', `network with name ${rec.name} already exists on this host (local scope)`, { value: rec.name, network: rec.name });
  const exclude = async (): Promise<Cidr[]> => allNetworks(cluster.store).flatMap((n) => n.ipam.config.map((c) => parseSubnet(c.subnet)));
  const asked = rec.options[VXLANID_OPTION];
  for (let attempt = 0; ; attempt++) {
    rec.ipam.config = await ipam.requestPools({ network: rec, requested, exclude });
    if (driver instanceof RoutedDriver) driver.checkPools(rec);
    rec.state = 'ready';
    delete rec.owner;
    try {
      await cluster.store.txn((tx) => {
        if (asked === undefined) delete rec.options[VXLANID_OPTION];
        reserveNetwork(tx, rec);
        if (rec.driver === 'overlay') reserveVni(tx, rec);
        tx.put(keys.net(rec.id), rec);
      });
      // the event goes to this host's log (each host has its own, as each Docker engine)
      await recordEvent(ctx, 'create', rec);
      return rec;
    } catch (e) {
      // an automatic subnet another host took between our look and our write: choose again
      const retry = e instanceof CnmError && e.code === 'ERR_SUBNET_OVERLAP' && rec.ipam.config.some((c) => c.auto) && attempt < 3;
      if (!retry) throw e;
    }
  }
}

/** A global network's create or destroy in this host's event log (best effort: the change is made). */
async function recordEvent(ctx: OpContext, action: 'create' | 'destroy', rec: NetworkRecord): Promise<void> {
  await ctx.store
    .txn((tx) => appendEvent(tx, action, rec.id, { name: rec.name, type: rec.driver }, 'swarm'))
    .catch((e: unknown) => log.warn('recording a global network event failed', { network: rec.name, err: e }));
}

/** Remove a global network: refused while any host has an endpoint on it. */
export async function removeGlobalNetwork(ctx: OpContext, rec: NetworkRecord): Promise<void> {
  const cluster = clusterOf(ctx);
  const inUse = (where: string) => new CnmError('ERR_NETWORK_IN_USE', `error while removing network: network ${rec.name} id ${rec.id} has active endpoints (${where})`, { network: rec.name });
  if (endpointsOfNetwork(ctx.store, rec.id).length > 0) throw inUse('on this host');
  const ipam = ctx.drivers.clusterIpam;
  // its peers and addresses are mirrored only where it has endpoints: follow them for this
  const letGo = await cluster.follow(rec.id);
  try {
    await removeFromCluster(cluster.store, rec, inUse, ipam);
  } finally {
    letGo();
  }
  await recordEvent(ctx, 'destroy', rec);
  await dropLocalCopy(ctx, rec.id);
}

async function removeFromCluster(store: Store, rec: NetworkRecord, inUse: (where: string) => CnmError, ipam: OpContext['drivers']['clusterIpam']): Promise<void> {
  await store.txn((tx) => {
    const cur = tx.get<NetworkRecord>(keys.net(rec.id));
    if (!cur) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${rec.name} not found`, { value: rec.name });
    const peers = tx.range<PeerRecord>(clusterKeys.peers(rec.id));
    if (peers.length > 0) throw inUse(`on ${new Set(peers.map(([, p]) => p.vtep)).size} host(s)`);
    tx.del(keys.net(rec.id));
    if (tx.get(keys.netName(rec.name)) === rec.id) tx.del(keys.netName(rec.name));
    const vni = Number(cur.options[VXLANID_OPTION]);
    if (tx.get(clusterKeys.vni(vni)) === rec.id) tx.del(clusterKeys.vni(vni));
    RouteBlocks.purge(tx, rec.id);
    ipam?.allocator.purge(tx, rec);
  });
}

/**
 * The network a reference names: this host's networks first, then the
 * cluster's. A global one is returned as the cluster has it.
 */
export function findAnyNetwork(ctx: OpContext, ref: string): NetworkRecord {
  try {
    const n = findNetwork(ctx.store, ref);
    if (n.scope !== 'global' || !ctx.cluster) return n;
    return ctx.cluster.store.get<NetworkRecord>(keys.net(n.id)) ?? n;
  } catch (e) {
    if (!ctx.cluster || !(e instanceof CnmError) || e.code !== 'ERR_NETWORK_NOT_FOUND') throw e;
    return findNetwork(ctx.cluster.store, ref);
  }
}

/**
 * Before an endpoint joins a global network here: the network's keys are
 * followed (kept while this host has endpoints on it) and this host has its
 * copy of the network. The returned function ends the operation: unless it
 * committed an endpoint (then there is one: no need to look), a network left
 * with no endpoint here is dropped again.
 */
export async function ensureLocalCopy(ctx: OpContext, net: NetworkRecord): Promise<(committed?: boolean) => Promise<void>> {
  if (net.scope !== 'global') return async () => undefined;
  if (!ctx.cluster) throw new CnmError('ERR_CLUSTER_UNAVAILABLE', `network ${net.name} is global: this host has not joined the cluster store`, { network: net.name });
  const letGo = await ctx.cluster.hold(net.id);
  const end = async (committed = false) => {
    letGo();
    if (committed) return;
    await dropLocalCopy(ctx, net.id).catch((e: unknown) => log.warn('dropping an unused copy of a global network failed', { network: net.name, err: e }));
  };
  try {
    if (!ctx.store.get(keys.net(net.id))) {
      await ctx.store.txn((tx) => {
        // the copy takes no name key: a global name is the cluster's to hold
        if (!tx.get(keys.net(net.id))) tx.put(keys.net(net.id), net);
      });
    }
  } catch (e) {
    await end();
    throw e;
  }
  return end;
}

/**
 * Run `fn` (the records of endpoints dropped, then their addresses given back)
 * with the global ones of `nets` held, so that a concurrent removal of this
 * host's other endpoints there cannot stop following a network whose addresses
 * are still being given back; then drop those left with no endpoint here.
 */
export async function whileHeld<T>(ctx: OpContext, nets: Array<NetworkRecord | undefined>, fn: () => Promise<T>): Promise<T> {
  const global = [...new Map(nets.filter((n): n is NetworkRecord => n?.scope === 'global').map((n) => [n.id, n])).values()];
  const letGos: Array<() => void> = [];
  for (const n of global) {
    // etcd away: the work below fails on its own and is logged there
    const letGo = await ctx.cluster?.hold(n.id).catch((e: unknown) => log.warn('following a global network for an endpoint removal failed', { network: n.name, err: e }));
    if (letGo) letGos.push(letGo);
  }
  try {
    return await fn();
  } finally {
    for (const letGo of letGos) letGo();
    for (const n of global) await dropLocalCopy(ctx, n.id).catch((e: unknown) => log.warn('dropping the copy of a global network failed', { network: n.name, err: e }));
  }
}

/** Drop this host's copy of a global network that has no endpoints here, and stop following it. */
export async function dropLocalCopy(ctx: OpContext, netId: string): Promise<void> {
  const unused = () => endpointsOfNetwork(ctx.store, netId).length === 0 && !ctx.cluster?.held(netId);
  const copy = ctx.store.get<NetworkRecord>(keys.net(netId));
  if ((copy && copy.scope !== 'global') || !unused()) return;
  if (copy) {
    const driver = await ctx.drivers.resolve(copy.driver);
    await driver.deleteNetwork(copy).catch((e: unknown) => log.warn('removing the devices of an overlay network on this host failed', { network: copy.name, err: e }));
    await ctx.store.txn((tx) => {
      if (endpointsOfNetwork(tx, netId).length === 0) tx.del(keys.net(netId));
    });
  }
  // an operation that started meanwhile keeps it
  if (unused()) ctx.cluster?.unkeep(netId);
}

/** Every network of the cluster, as its store holds them. */
export function globalNetworks(store: Store): NetworkRecord[] {
  return allNetworks(store).filter((n) => n.state === 'ready');
}
