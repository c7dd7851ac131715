/**
 * Legacy links (Docker's --link NAME[:ALIAS]): the linking sandbox gets a hosts
 * entry for the linked one and, under `cnm run`, Docker's environment variables;
 * on a network without icc the firewall lets exactly the linked pair talk, on
 * the linked sandbox's exposed and published ports. Links are kept on the
 * linking sandbox's record, with an index `sblink/<linked>/<linking>` so that
 * the links to a sandbox go when it does.
 */
import { CnmError, invalid } from '../errors.js';
import { Firewall } from '../firewall.js';
import { log } from '../log.js';
import type { FirewallLink } from '../native-api.js';
import { endpointsOfSandbox, findSandbox, keys } from '../records.js';
import type { StoreTxn } from '../store/store.js';
import type { NetworkRecord, SandboxLink, SandboxRecord } from '../types.js';
import { checkHostname } from '../dns/settings.js';
import type { OpContext } from './context.js';
import { ipv4On, refreshFilesOf } from './sandbox-files.js';
import { byText } from '../compare.js';

const linkKey = (target: string, linker: string) => `sblink/${target}/${linker}`;
const linksTo = (target: string) => `sblink/${target}/`;

type Proto = 'tcp' | 'udp' | 'sctp';

/** "NAME[:ALIAS]"; the alias defaults to the name. */
export function parseLinkSpec(spec: unknown): { name: string; alias: string } {
  if (typeof spec !== 'string' || spec === '') throw invalid('--link needs NAME[:ALIAS]', spec);
  const [name, alias = name, extra] = spec.split(':');
  if (!name || extra !== undefined) throw invalid(`invalid --link "${spec}": expected NAME[:ALIAS]`, spec);
  checkHostname(alias, '--link alias');
  return { name: name.replace(/^\//, ''), alias };
}

/** "PORT[-END][/PROTO]" (Docker's --expose). */
export function parseExpose(specs: unknown): Array<{ port: number; proto: Proto }> {
  if (specs === undefined) return [];
  if (!Array.isArray(specs)) throw invalid('--expose must be a list', specs);
  const out: Array<{ port: number; proto: Proto }> = [];
  for (const s of specs) {
    const m = typeof s === 'string' ? /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/.exec(s) : null;
    const [from, to] = m ? [Number(m[1]), Number(m[2] ?? m[1])] : [0, 0];
    if (!m || from < 1 || to > 65535 || to < from) throw invalid(`invalid --expose "${String(s)}": expected PORT[-END][/tcp|udp|sctp]`, s);
    for (let p = from; p <= to; p++) out.push({ port: p, proto: (m[3] ?? 'tcp') as Proto });
  }
  return out;
}

/**
 * Resolve the links a sandbox asks for on network `net`: each target exists and
 * is on `net`; checked before anything changes.
 */
export function planLinks(ctx: OpContext, specs: unknown, linkerName: string, net: NetworkRecord, existing: SandboxLink[] = []): SandboxLink[] {
  if (specs === undefined) return [];
  if (!Array.isArray(specs)) throw invalid('links must be a list of NAME[:ALIAS]', specs);
  const out: SandboxLink[] = [];
  for (const spec of specs) {
    const { name, alias } = parseLinkSpec(spec);
    let target: SandboxRecord;
    try {
      target = findSandbox(ctx.store, name);
    } catch (e) {
      if (e instanceof CnmError && e.code === 'ERR_SANDBOX_NOT_FOUND') {
        throw new CnmError('ERR_SANDBOX_NOT_FOUND', `cannot link to ${name}: no such sandbox`, { value: spec, sandbox: name });
      }
      throw e;
    }
    if (target.name === linkerName) throw invalid(`cannot link ${linkerName} to itself`, spec);
    if (!endpointsOfSandbox(ctx.store, target.id).some((e) => e.networkId === net.id)) {
      throw invalid(`cannot link to ${target.name}: it is not on network ${net.name} (a link joins two sandboxes of one network)`, spec);
    }
    if ([...existing, ...out].some((l) => l.alias === alias)) throw invalid(`link alias ${alias} is used twice`, spec);
    out.push({ sandbox: target.id, alias, network: net.id });
  }
  return out;
}

/** Index the links of `linker` in the caller's transaction; a target gone meanwhile fails it. */
export function reserveLinks(tx: StoreTxn, linker: string, links: SandboxLink[]): void {
  for (const l of links) {
    if (!tx.get(keys.sb(l.sandbox))) throw new CnmError('ERR_SANDBOX_NOT_FOUND', `cannot link to sandbox ${l.sandbox.slice(0, 12)}: it was removed`, { sandbox: l.sandbox });
    tx.put(linkKey(l.sandbox, linker), l.alias);
  }
}

/** Drop the index entries of `linker`'s links, in the caller's transaction. */
export function unreserveLinks(tx: StoreTxn, linker: string, links: SandboxLink[]): void {
  for (const l of links) tx.del(linkKey(l.sandbox, linker));
}

/** The ports a link opens: what the linked sandbox exposes and publishes, once each. */
export function linkedPorts(ctx: OpContext, target: SandboxRecord): Array<{ port: number; proto: Proto }> {
  const seen = new Map<string, { port: number; proto: Proto }>();
  for (const p of target.expose ?? []) seen.set(`${p.port}/${p.proto}`, p);
  for (const ep of endpointsOfSandbox(ctx.store, target.id)) {
    for (const m of ep.ports ?? []) seen.set(`${m.containerPort}/${m.proto}`, { port: m.containerPort, proto: m.proto as Proto });
  }
  return [...seen.values()].sort((a, b) => a.port - b.port || byText(a.proto, b.proto));
}

/** The firewall entries of `linker`'s links: only on networks without icc, IPv4 as Docker's. */
export function linkEntries(ctx: OpContext, linker: SandboxRecord, links: SandboxLink[] = linker.links ?? []): FirewallLink[] {
  const out: FirewallLink[] = [];
  for (const l of links) {
    const net = ctx.store.get<NetworkRecord>(keys.net(l.network));
    const target = ctx.store.get<SandboxRecord>(keys.sb(l.sandbox));
    if (!net?.bridge || !target || Firewall.icc(net)) continue;
    const [from, to] = [ipv4On(ctx, linker.id, net.id), ipv4On(ctx, target.id, net.id)];
    if (!from || !to) continue;
    for (const p of linkedPorts(ctx, target)) out.push({ proto: p.proto, from, to, port: p.port, bridge: net.bridge, tag: linker.id });
  }
  return out;
}

/**
 * Take the links out that involve `sb` (both those it made and those made to
 * it), on every network or only on `networkId`: firewall entries, records,
 * index, and the linking sandboxes' hosts files. Called while `sb`'s endpoint
 * records still exist.
 */
export async function dropLinks(ctx: OpContext, sb: SandboxRecord, networkId?: string): Promise<void> {
  const on = (l: SandboxLink) => networkId === undefined || l.network === networkId;
  const own = (sb.links ?? []).filter(on);
  const remove = linkEntries(ctx, sb, own);
  const linkers: Array<[SandboxRecord, SandboxLink[]]> = [];
  for (const [key] of ctx.store.range<string>(linksTo(sb.id))) {
    const linker = ctx.store.get<SandboxRecord>(keys.sb(key.slice(linksTo(sb.id).length)));
    const gone = (linker?.links ?? []).filter((l) => l.sandbox === sb.id && on(l));
    if (!linker || gone.length === 0) continue;
    remove.push(...linkEntries(ctx, linker, gone));
    linkers.push([linker, gone]);
  }
  if (own.length === 0 && linkers.length === 0) return;
  await ctx.firewall.apply({ removeLinks: remove });
  await ctx.store.txn((tx) => {
    const cur = tx.get<SandboxRecord>(keys.sb(sb.id));
    if (cur && own.length) tx.put(keys.sb(sb.id), { ...cur, links: (cur.links ?? []).filter((l) => !on(l)) });
    unreserveLinks(tx, sb.id, own);
    for (const [linker, gone] of linkers) {
      const rec = tx.get<SandboxRecord>(keys.sb(linker.id));
      if (rec) tx.put(keys.sb(linker.id), { ...rec, links: (rec.links ?? []).filter((l) => !gone.includes(l) && !(l.sandbox === sb.id && on(l))) });
      unreserveLinks(tx, linker.id, gone);
    }
  });
  if (own.length) sb.links = (sb.links ?? []).filter((l) => !on(l));
  await Promise.all(linkers.map(([linker]) => refreshFilesOf(ctx, linker.id)));
}

/** Add links to an existing sandbox (network connect --link): records, index, firewall, hosts file. */
export async function addLinks(ctx: OpContext, sb: SandboxRecord, links: SandboxLink[]): Promise<void> {
  if (links.length === 0) return;
  await ctx.store.txn((tx) => {
    const cur = tx.get<SandboxRecord>(keys.sb(sb.id));
    if (!cur) throw new CnmError('ERR_SANDBOX_NOT_FOUND', `sandbox ${sb.name} not found`, { sandbox: sb.name });
    reserveLinks(tx, sb.id, links);
    tx.put(keys.sb(sb.id), { ...cur, links: [...(cur.links ?? []), ...links] });
  });
  sb.links = [...(sb.links ?? []), ...links];
  try {
    await ctx.firewall.apply({ addLinks: linkEntries(ctx, sb, links) });
  } catch (e) {
    await dropLinks(ctx, { ...sb, links }).catch((u: unknown) => log.warn('taking back links whose firewall entries failed failed', { sandbox: sb.name, err: u }));
    throw e;
  }
  await refreshFilesOf(ctx, sb.id);
}

/** Docker's /etc/hosts-free side of a link: the environment `cnm run` gives the command. */
export function linkEnv(ctx: OpContext, sb: SandboxRecord): Record<string, string> {
  const env: Record<string, string> = {};
  for (const l of sb.links ?? []) {
    const target = ctx.store.get<SandboxRecord>(keys.sb(l.sandbox));
    if (!target) continue;
    const ip = ipv4On(ctx, target.id, l.network);
    const prefix = l.alias.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
    env[`${prefix}_NAME`] = `/${sb.name}/${l.alias}`;
    const ports = linkedPorts(ctx, target);
    if (ports[0]) env[`${prefix}_PORT`] = `${ports[0].proto}://${ip}:${ports[0].port}`;
    for (const p of ports) {
      const base = `${prefix}_PORT_${p.port}_${p.proto.toUpperCase()}`;
      env[base] = `${p.proto}://${ip}:${p.port}`;
      env[`${base}_ADDR`] = ip;
      env[`${base}_PORT`] = String(p.port);
      env[`${base}_PROTO`] = p.proto;
    }
  }
  return env;
}

/** Docker's HostConfig.Links shape: "/linked:/linking/alias". */
export function inspectLinks(ctx: OpContext, sb: SandboxRecord): string[] | null {
  const out = (sb.links ?? []).flatMap((l) => {
    const target = ctx.store.get<SandboxRecord>(keys.sb(l.sandbox));
    return target ? [`/${target.name}:/${sb.name}/${l.alias}`] : [];
  });
  return out.length ? out : null;
}
