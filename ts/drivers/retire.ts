/**
 * Links taken out of service at once instead of deleted (see ../reaper.ts):
 * what the veth drivers (bridge, overlay, routed) do on leave and network
 * removal, and in the undo of a failed join. Each asks the reaper to delete
 * them a moment later; the commit of the operation notes them for a crash.
 */
import { CnmError } from '../errors.js';
import { native } from '../native.js';
import type { RetireSpec } from '../native-api.js';
import { graveName } from '../reaper.js';
import type { EndpointRecord, SandboxRecord } from '../types.js';
import type { DriverContext } from './driver.js';
import { interfaceAddresses } from './bridge-options.js';

/** A sandbox already deleted has taken its end of the pair with it. */
function sandboxGone(e: unknown): boolean {
  if (e instanceof CnmError && e.code === 'ERR_NETNS_NOT_FOUND') return false;
  throw e;
}

/** Runs `work` (retires), then asks the reaper to delete what it retired, whether it all went through or not. */
async function retiring(ctx: Ctx, work: () => Promise<unknown>): Promise<void> {
  try {
    await work();
  } finally {
    ctx.reaper.schedule();
  }
}

/**
 * A veth pair out of service: the host end only joins the grave group (it stays
 * a port of its bridge, without carrier, until the reap, because taking a port
 * out of a bridge, or setting it down, costs as much as the bridge has ports);
 * the sandbox end goes down (nothing passes either way: a veth whose peer is down
 * drops what it is sent) and gets `sandboxEnd` besides.
 */
function retirePair(ctx: Ctx, ep: EndpointRecord, sb: Pick<SandboxRecord, 'netns'>, sandboxEnd: RetireSpec): Promise<void> {
  return retiring(ctx, () =>
    Promise.all([
      ep.hostIfname ? native.retireLink(ctx.hostNetns, ep.hostIfname, { down: false }) : undefined,
      sb.netns && ep.ifname ? native.retireLink(sb.netns, ep.ifname, { ...sandboxEnd, grave: false }).catch(sandboxGone) : undefined,
    ]),
  );
}

/** An endpoint's pair on leave: its sandbox end also loses its addresses and is renamed, so that its name and addresses are free for the next attach at once. */
export function retireVeth(ctx: Ctx, ep: EndpointRecord, sb: Pick<SandboxRecord, 'netns'>): Promise<void> {
  return retirePair(ctx, ep, sb, { graveName: graveName(), addresses: interfaceAddresses(ep) });
}

/**
 * Before sandbox rm deletes the netns: its end loses its addresses (a deleted
 * netns lingers in the kernel a while, and would answer for them); the netns
 * delete takes the rest, or the reap the pair when something holds the netns.
 * Not set down: the host end would lose its carrier, and a bridge port that
 * does walks every port of its bridge under the kernel's lock (0.7 ms at 1 000
 * ports against 0.24 ms for the addresses).
 */
export function quiesceVeth(ctx: Ctx, ep: EndpointRecord, sb: Pick<SandboxRecord, 'netns'>): Promise<void> {
  return retirePair(ctx, ep, sb, { down: false, addresses: interfaceAddresses(ep) });
}

/**
 * A device of the host (a bridge with no port left) out of service: down, its
 * `addresses` removed (undefined: whatever it has, which costs a dump), renamed.
 */
export function retireDevice(ctx: Ctx, name: string, addresses?: string[]): Promise<void> {
  // deleted on its own: a bridge holds the kernel's lock ~20 ms while it goes
  return retiring(ctx, () => native.retireLink(ctx.hostNetns, name, { graveName: graveName(), addresses, allAddresses: addresses === undefined, graveAlone: true }));
}

type Ctx = Pick<DriverContext, 'hostNetns' | 'reaper'>;
