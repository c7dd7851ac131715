/**
 * The cluster's hosts as an operator sees them: the live ones (their lease
 * holds) and those gone that still hold addresses. A host gone for good keeps
 * its addresses (it may come back and reconcile) until it is forgotten, as
 * Docker keeps a down node's resources until `docker node rm`.
 */
import { CnmError } from '../errors.js';
import { allNetworks } from '../records.js';
import type { NetworkRecord } from '../types.js';
import type { OpContext } from './context.js';
import { byText } from '../compare.js';

/** One host of the cluster. */
export interface ClusterHostInfo {
  id: string;
  /** empty for a host that is gone */
  hostname: string;
  advertise: string;
  alive: boolean;
  /** addresses of global networks it holds */
  addresses: number;
}

function clusterOf(ctx: OpContext) {
  if (!ctx.cluster) throw new CnmError('ERR_CLUSTER_UNAVAILABLE', 'this host has not joined a cluster store: start cnm with --cluster-store and --cluster-advertise');
  return ctx.cluster;
}

/** Run `fn` on each global network with its keys followed. */
async function eachNetwork(ctx: OpContext, fn: (net: NetworkRecord) => Promise<void>): Promise<void> {
  const cluster = clusterOf(ctx);
  for (const net of allNetworks(cluster.store)) {
    const letGo = await cluster.follow(net.id);
    try {
      await fn(net);
    } finally {
      letGo();
    }
  }
}

/** Every live host, and every gone one that still holds addresses. */
export async function clusterHosts(ctx: OpContext): Promise<ClusterHostInfo[]> {
  const cluster = clusterOf(ctx);
  const out = new Map<string, ClusterHostInfo>();
  for (const h of cluster.hosts().values()) out.set(h.id, { id: h.id, hostname: h.hostname, advertise: h.advertise, alive: true, addresses: 0 });
  const ipam = ctx.drivers.clusterIpam!;
  await eachNetwork(ctx, async (net) => {
    for (const rec of ipam.allocator.allocationRecords(net).values()) {
      if (!rec.host) continue;
      const h = out.get(rec.host) ?? { id: rec.host, hostname: '', advertise: '', alive: false, addresses: 0 };
      h.addresses++;
      out.set(rec.host, h);
    }
  });
  return [...out.values()].sort((a, b) => Number(b.alive) - Number(a.alive) || byText(a.id, b.id));
}

/**
 * Give back every address a gone host holds, and its allocation cursors: it
 * will not come back (if it does, reconcile cannot restore what was given away).
 * Refused for a live host. Returns how many addresses went back.
 */
export async function forgetClusterHost(ctx: OpContext, ref: string): Promise<number> {
  const cluster = clusterOf(ctx);
  const hosts = await clusterHosts(ctx);
  const matches = hosts.filter((h) => h.id === ref || (ref.length >= 6 && h.id.startsWith(ref)));
  if (matches.length === 0) throw new CnmError('ERR_INVALID_ARGUMENT', `no cluster host ${ref} holds anything: see cnm system hosts`, { value: ref });
  if (matches.length > 1) throw new CnmError('ERR_INVALID_ARGUMENT', `cluster host ${ref} is ambiguous (${matches.length} matches): give more of its id`, { value: ref });
  const host = matches[0]!;
  if (host.alive) throw new CnmError('ERR_INVALID_ARGUMENT', `cluster host ${host.hostname} (${host.id.slice(0, 12)}) is alive: stop it first, or let its lease run out`, { value: ref });
  const ipam = ctx.drivers.clusterIpam!;
  let freed = 0;
  await eachNetwork(ctx, async (net) => {
    const mine = [...ipam.allocator.allocationRecords(net)].filter(([, r]) => r.host === host.id).map(([ip]) => ip);
    const cursors = cluster.store.range(`ipam/${net.id}/`).map(([k]) => k).filter((k) => k.endsWith(`/cursor/${host.id}`));
    if (mine.length === 0 && cursors.length === 0) return;
    freed += await cluster.store.txn((tx) => {
      // gone meanwhile? its lease came back: leave it all
      if (tx.get(`host/${host.id}`) !== undefined) throw new CnmError('ERR_INVALID_ARGUMENT', `cluster host ${host.id.slice(0, 12)} came back: nothing forgotten`, { value: ref });
      let n = 0;
      for (const ip of mine) {
        if (ipam.allocator.recordOf(tx, net, ip)?.host !== host.id) continue;
        ipam.releaseIn(tx, net, ip);
        n++;
      }
      for (const k of cursors) tx.del(k);
      return n;
    });
  });
  return freed;
}
