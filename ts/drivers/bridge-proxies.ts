/**
 * The bridge driver's userland proxies: one per port an endpoint publishes on
 * [::1] (see proxy/), started with its other published ports, stopped with them,
 * and brought in line with the store by reconcile.
 */
import { log } from '../log.js';
import { proxied } from '../ports.js';
import { type ProxySpec, type Proxies, sameProxy } from '../proxy/proxies.js';
import type { EndpointRecord } from '../types.js';
import type { RepairInput } from './driver.js';

/** The proxies an endpoint's mappings need: to its IPv6 address, or its IPv4 one when it has none. */
export function proxySpecs(ep: EndpointRecord): ProxySpec[] {
  const target = (ep.ipv6 || ep.ipv4).split('/')[0]!;
  return (ep.ports ?? []).filter(proxied).map((m) => ({
    id: `${ep.id}/${m.proto}/${m.hostPort}`,
    // the port allocator refuses sctp on [::1]
    proto: m.proto === 'udp' ? 'udp' : 'tcp',
    listenIp: m.hostIp,
    listenPort: m.hostPort,
    targetIp: target,
    targetPort: m.containerPort,
  }));
}

/** Start every proxy, or none: those started are stopped again when one fails. */
export async function startProxies(proxies: Proxies, specs: readonly ProxySpec[]): Promise<void> {
  const results = await Promise.allSettled(specs.map((s) => proxies.start(s)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return;
  const ids = new Set(specs.map((s) => s.id));
  await proxies.stop((await proxies.list()).filter((p) => ids.has(p.id))).catch((e: unknown) => log.warn('stopping the userland proxies of a failed publish failed', { err: e }));
  throw failed.reason;
}

/**
 * Proxies of this host as the store says: those of endpoints that are gone (or
 * lost, or whose mapping changed) stopped, those of active endpoints that are
 * missing (a reboot, a kill) started.
 */
export async function syncProxies(proxies: Proxies, input: RepairInput, lost: readonly EndpointRecord[]): Promise<void> {
  const running = await proxies.list({ prune: !input.dryRun });
  // read after the listing: a proxy in it had its endpoint recorded before it started
  const gone = new Set(lost.map((e) => e.id));
  const netIds = new Set(input.networks.map((n) => n.id));
  const eps = input.endpoints().filter((ep) => !gone.has(ep.id) && netIds.has(ep.networkId));
  const known = eps.flatMap(proxySpecs);
  const stale = running.filter((p) => !known.some((s) => sameProxy(s, p)));
  const kept = running.filter((p) => !stale.includes(p));
  // pending endpoints are finished (or undone) by their own operation or reconcile's
  const missing = eps
    .filter((ep) => ep.state === 'active')
    .flatMap(proxySpecs)
    .filter((s) => !kept.some((p) => sameProxy(s, p)));
  if (stale.length) await input.step(stale.map((p) => `stop stale userland proxy ${p.id} (pid ${p.pid})`), () => proxies.stop(stale));
  for (const s of missing) await input.step(`start missing userland proxy [${s.listenIp}]:${s.listenPort}/${s.proto} -> ${s.targetIp}:${s.targetPort}`, () => proxies.start(s));
}
