/**
 * Links taken out of service at once instead of deleted (see ../reaper.ts):
 * what the veth drivers (bridge, overlay, routed) do on leave and network
 * removal, and in the undo of a failed join. Each asks the reaper to delete
 * them a moment later; the commit of the operation notes them for a crash.
 */
import { CnmError } from '../errors.js';
import { native } from '../native.js';
import { graveName } from '../reaper.js';
import type { EndpointRecord, SandboxRecord } from '../types.js';
import type { DriverContext } from './driver.js';
import { interfaceAddresses } from './bridge-options.js';

/** A sandbox already deleted has taken its end of the pair with it. */
function sandboxGone(e: unknown): boolean {
  if (e instanceof CnmError && e.code === 'ERR_NETNS_NOT_FOUND') return false;
  throw e;
}

/**
 * An endpoint's veth pair out of service: the host end down and out of its
 * bridge (no frame passes), the sandbox end down with its addresses removed and
 * renamed, so that its name and addresses are free for the next attach at once.
 */
export async function retireVeth(ctx: Ctx, ep: EndpointRecord, sb: Pick<SandboxRecord, 'netns'>): Promise<void> {
  try {
    await Promise.all([
      ep.hostIfname ? native.retireLink(ctx.hostNetns, ep.hostIfname, null, []) : undefined,
      sb.netns && ep.ifname ? native.retireLink(sb.netns, ep.ifname, graveName(), interfaceAddresses(ep)).catch(sandboxGone) : undefined,
    ]);
  } finally {
    ctx.reaper.schedule();
  }
}

/** Only the host end (sandbox rm, before its netns is deleted): no frame passes from the dying netns. */
export async function quiesceVeth(ctx: Ctx, ep: EndpointRecord): Promise<void> {
  try {
    if (ep.hostIfname) await native.retireLink(ctx.hostNetns, ep.hostIfname, null, []);
  } finally {
    ctx.reaper.schedule();
  }
}

/** A device of the host (a bridge, a VXLAN device) out of service: down, no address, renamed. */
export async function retireDevice(ctx: Ctx, name: string): Promise<void> {
  try {
    await native.retireLink(ctx.hostNetns, name, graveName(), null);
  } finally {
    ctx.reaper.schedule();
  }
}

type Ctx = Pick<DriverContext, 'hostNetns' | 'reaper'>;
