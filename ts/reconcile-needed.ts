/**
 * Whether a command must reconcile before it works (the `cnm` command's
 * `reconcileOnOpen: 'when-needed'`): a full reconcile lists every link, route and
 * firewall entry (about 30 ms here), which each command would pay. It is needed
 * when the kernel state may differ from the records for a reason no process
 * reported: this host was never reconciled, the machine booted (or the host netns
 * was made again) since, or a process died in the middle of an operation (a
 * record it owns is not final, or its lease is left: ops/process-lease.ts). Drift made by hand is found by `cnm system
 * reconcile`, a daemon's start, or the next reconcile that is needed.
 */
import { bootId } from './boot-id.js';
import { log } from './log.js';
import { native } from './native.js';
import type { OpContext } from './ops/context.js';
import { isAlive } from './owner.js';
import { GRAVE_PREFIX, type GraveRecord } from './reaper.js';
import { ProcessLease } from './ops/process-lease.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';

const KEY = 'host/reconciled';

interface Reconciled {
  /** the kernel's boot id */
  boot: string;
  /** the host netns's cookie */
  netns: string;
}

async function stamp(ctx: OpContext): Promise<Reconciled> {
  const boot = bootId();
  if (boot === '') log.debug('no boot id: every command reconciles');
  return { boot, netns: String(await native.netnsCookie(ctx.hostNetns)) };
}

/** Records a dead process left in the middle of an operation. */
function halfDone(ctx: OpContext): boolean {
  const unfinished = (r: { owner?: unknown }) => r.owner !== undefined && !isAlive(r.owner as Parameters<typeof isAlive>[0]);
  return (
    ctx.store.range<NetworkRecord>('net/').some(([, r]) => unfinished(r)) ||
    ctx.store.range<SandboxRecord>('sb/').some(([, r]) => unfinished(r)) ||
    ctx.store.range<EndpointRecord>('ep/').some(([, r]) => unfinished(r)) ||
    // retired links a dead process did not reap
    ctx.store.range<GraveRecord>(GRAVE_PREFIX).some(([, r]) => unfinished(r)) ||
    // kernel work a dead process may have done ahead of its records
    ProcessLease.dead(ctx.store).length > 0
  );
}

export async function needsReconcile(ctx: OpContext): Promise<boolean> {
  const last = ctx.store.get<Reconciled>(KEY);
  if (!last || last.boot === '') return true;
  const now = await stamp(ctx);
  return now.boot !== last.boot || now.netns !== last.netns || halfDone(ctx);
}

export async function markReconciled(ctx: OpContext): Promise<void> {
  const s = await stamp(ctx);
  await ctx.store.txn((tx) => tx.put(KEY, s));
}
