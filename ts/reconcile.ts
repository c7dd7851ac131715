/**
 * Reconcile: bring store and kernel into agreement after a crash or a reboot.
 * Half-made work of dead processes is rolled back (removals they had started are
 * finished), sandboxes whose netns vanished are released, each driver repairs
 * the kernel state of its networks, and each IPAM gives back what belongs to
 * endpoints that are gone. Work owned by live processes is left alone. It uses
 * the operations' own steps (ops/), and names no driver.
 */
import { toCnmError, type CnmError } from './errors.js';
import type { RepairInput } from './drivers/driver.js';
import { log } from './log.js';
import { native } from './native.js';
import type { OpContext } from './ops/context.js';
import { finishEndpoint, forgetEndpoint } from './ops/endpoints.js';
import { dropLocalCopy } from './ops/global-networks.js';
import { rollbackNetwork } from './ops/networks.js';
import { releaseSandbox, rollbackEndpoint } from './ops/sandboxes.js';
import { linkEntries } from './ops/links.js';
import { isAlive } from './owner.js';
import { ProcessLease } from './ops/process-lease.js';
import { GRAVE_PREFIX, type GraveRecord, Reaper, isGrave } from './reaper.js';
import { allNetworks, allSandboxes, endpointsOfNetwork, endpointsOfSandbox, keys } from './records.js';
import type { NetworkRecord, SandboxRecord } from './types.js';

export interface ReconcileReport {
  /** what was done (or, in a dry run, would be done) */
  actions: string[];
  /** what was found and left as it is (an address someone added by hand) */
  notices: string[];
  /** steps that failed, each as "what: why"; reconcile carries on past them */
  errors: string[];
  /** the same failures with their errors (code, message, cause) */
  failures: Array<{ step: string; error: CnmError }>;
}

export async function reconcile(ctx: OpContext, opts: { dryRun?: boolean } = {}): Promise<ReconcileReport> {
  const report: ReconcileReport = { actions: [], notices: [], errors: [], failures: [] };
  const dryRun = opts.dryRun === true;
  const store = ctx.store;

  const step = async (what: string | string[], fn: () => Promise<unknown>): Promise<boolean> => {
    const all = Array.isArray(what) ? what : [what];
    report.actions.push(...all);
    if (dryRun) return false;
    try {
      await fn();
      for (const a of all) log.info(`reconcile: ${a}`);
      return true;
    } catch (e) {
      fail(all.join('; '), e);
      return false;
    }
  };
  const fail = (what: string, e: unknown) => {
    const error = toCnmError(e, what);
    report.errors.push(`${what}: ${(e as Error)?.message ?? String(e)}`);
    report.failures.push({ step: what, error });
    log.warn(`reconcile: ${what} failed`, { err: error });
  };

  const namespaces = new Set(await native.netnsList());

  // endpoints a dead process left pending: finished when the driver finds their
  // kernel side complete (the connect may have been reported done), else rolled back;
  // those of a sandbox that is itself half-made go with it below
  for (const net of allNetworks(store)) {
    for (const ep of endpointsOfNetwork(store, net.id)) {
      if (ep.state !== 'pending' || isAlive(ep.owner)) continue;
      const sb = store.get<SandboxRecord>(keys.sb(ep.sandboxId));
      if (sb && sb.state !== 'ready') continue;
      let complete = false;
      try {
        complete = sb !== undefined && (await (await ctx.drivers.resolve(net.driver)).endpointComplete(net, ep, sb));
      } catch (e) {
        log.warn(`reconcile: could not tell whether endpoint ${ep.id.slice(0, 12)} is complete; it is rolled back`, { err: e });
      }
      if (complete) await step(`finish endpoint ${ep.id.slice(0, 12)} on ${net.name} (its kernel side is complete)`, () => finishEndpoint(ctx, ep));
      else await step(`roll back half-made endpoint ${ep.id.slice(0, 12)} on ${net.name}`, () => rollbackEndpoint(ctx, net, ep));
    }
  }

  // sandboxes half-made by a dead process, or whose netns is gone
  for (const sb of allSandboxes(store)) {
    const halfDone = sb.state !== 'ready' && !isAlive(sb.owner);
    // the list is a snapshot: a sandbox another process finished since is not gone
    const gone = sb.state === 'ready' && !namespaces.has(sb.netns) && !(await native.netnsExists(sb.netns));
    if (!halfDone && !gone) continue;
    const why = gone ? 'release sandbox whose netns is gone' : `roll back half-made sandbox (owner pid ${sb.owner?.pid ?? '?'} is gone)`;
    await step(`${why} ${sb.name}`, async () => {
      if (halfDone && namespaces.has(sb.netns)) await native.netnsDelete(sb.netns);
      // a cached socket would keep a netns deleted behind our back alive
      if (gone) await native.releaseNetns(sb.netns);
      await releaseSandbox(ctx, sb);
    });
  }

  // networks half-made or half-removed by a dead process
  for (const net of allNetworks(store)) {
    if (net.state !== 'ready' && !isAlive(net.owner)) {
      await step(`roll back half-${net.state === 'creating' ? 'made' : 'removed'} network ${net.name}`, () => rollbackNetwork(ctx, net));
    }
  }

  // each driver repairs the kernel state of its networks
  const byDriver = new Map<string, NetworkRecord[]>();
  for (const net of allNetworks(store).filter((n) => n.state === 'ready')) byDriver.set(net.driver, [...(byDriver.get(net.driver) ?? []), net]);
  for (const [name, networks] of byDriver) {
    try {
      const driver = await ctx.drivers.resolve(name);
      const ids = new Set(networks.map((n) => n.id));
      const input: RepairInput = {
        networks,
        endpoints: () => networks.flatMap((n) => endpointsOfNetwork(store, n.id)).filter((e) => ids.has(e.networkId)),
        // an empty write transaction waits for the writer lock, which a transaction in flight holds
        ...(dryRun ? {} : { settled: () => store.txn(() => undefined) }),
        sandboxes: () =>
          allSandboxes(store)
            .filter((sb) => sb.mode === 'network')
            .map((sb) => ({ sandbox: sb, ifnames: () => endpointsOfSandbox(store, sb.id).map((e) => e.ifname) })),
        links: () => allSandboxes(store).flatMap((sb) => linkEntries(ctx, sb).filter((l) => networks.some((n) => n.bridge === l.bridge))),
        dryRun,
        step,
        notice: (what) => {
          report.notices.push(what);
          if (!dryRun) log.warn(`reconcile: ${what}`);
        },
      };
      const { changed, lost } = await driver.repair(input);
      for (const net of changed) await store.txn((tx) => tx.put(keys.net(net.id), net)).catch((e: unknown) => fail(`record network ${net.name} as made again`, e));
      for (const ep of lost) {
        const net = networks.find((n) => n.id === ep.networkId);
        await step(`drop endpoint ${ep.id.slice(0, 12)} on ${net?.name ?? ep.networkId} whose link is gone`, () => forgetEndpoint(ctx, net, ep));
      }
    } catch (e) {
      fail(`repair the networks of driver ${name}`, e);
    }
  }

  // addresses held for endpoints that no longer exist
  for (const net of allNetworks(store).filter((n) => n.state === 'ready')) {
    try {
      if (!(await ctx.drivers.resolve(net.driver)).usesIpam) continue;
      const ipam = await ctx.drivers.ipamOf(net);
      const freed = await ipam.reconcile(net, (r, epId) => r.get(keys.ep(net.id, epId)) !== undefined, dryRun);
      for (const ip of freed) report.actions.push(`free leaked address ${ip} on ${net.name}`);
    } catch (e) {
      fail(`free leaked addresses on ${net.name}`, e);
    }
    // a global network's copy outlives its addresses here (a crash left it): it goes once they are back
    if (net.scope === 'global' && ctx.cluster && endpointsOfNetwork(store, net.id).length === 0) {
      report.actions.push(`drop this host's unused copy of global network ${net.name}`);
      if (!dryRun) await dropLocalCopy(ctx, net.id).catch((e: unknown) => fail(`drop this host's copy of global network ${net.name}`, e));
    }
  }
  await reapOrphanGraves(ctx, step, fail, dryRun);
  // the repairs above removed what a dead process's kernel work left ahead of its records
  const leases = ProcessLease.dead(store);
  if (leases.length) await step(`drop ${leases.length} lease(s) of dead processes`, () => store.txn((tx) => leases.forEach((k) => tx.del(k))));
  return report;
}

/**
 * Retired links nobody else will reap (their process died before its reap, or
 * this reconcile's own rollbacks retired them; see reaper.ts): deleted, and the
 * dead processes' grave keys with them. Those of another live process are its
 * own to reap, a moment from now.
 */
async function reapOrphanGraves(ctx: OpContext, step: (what: string, fn: () => Promise<unknown>) => Promise<boolean>, fail: (what: string, e: unknown) => void, dryRun: boolean): Promise<void> {
  try {
    const keysOf = ctx.store.range<GraveRecord>(GRAVE_PREFIX);
    const dead = keysOf.filter(([, r]) => !isAlive(r.owner)).map(([k]) => k);
    // this process's own retired links (the rollbacks above make some) go now too;
    // a dry run (a check) leaves them to this process's reaper, a moment from now
    const live = keysOf.filter(([k, r]) => isAlive(r.owner) && (dryRun || k !== Reaper.key())).length;
    const graves = (await native.listLinks(ctx.hostNetns)).filter((l) => isGrave(l.group));
    if (dead.length === 0 && (graves.length === 0 || live > 0)) return;
    await step(`delete ${graves.length} retired link(s) no live process will reap (${graves.map((l) => l.name).join(', ') || 'none left'})`, async () => {
      await native.reapLinks(ctx.hostNetns);
      await ctx.store.txn((tx) => {
        for (const k of dead) tx.del(k);
      });
    });
  } catch (e) {
    fail('delete retired links', e);
  }
}
