/**
 * Fault injection for tests: `CNM_FAULT=<point>[:crash][,<point>[:crash]…]` makes
 * the named step boundary fail as if the step after it had failed (so the
 * operation's own undo runs, or, past its point of no return, its remaining
 * steps), or with `:crash` kills the process on the spot (so the next start's
 * reconcile has to clean up). Points are listed in FAULT_POINTS; netcore has its
 * own (netcore.*), read from the same variable.
 *
 * Like netcore's, these hooks act only in a test build (the addon compiled with
 * the `fault-injection` feature): in a release build CNM_FAULT does nothing.
 */
import { CnmError } from './errors.js';
import { native } from './native.js';

/** Every step boundary of every mutating operation, in order. */
export const FAULT_POINTS = [
  'network.create.reserve',
  'network.create.kernel',
  'network.create.commit',
  'network.rm.mark',
  'network.rm.kernel',
  'network.rm.commit',
  'sandbox.create.reserve',
  'sandbox.create.netns',
  'sandbox.create.join',
  'sandbox.create.commit',
  'connect.reserve',
  'connect.kernel',
  'connect.mark',
  'connect.commit',
  'disconnect.revoke',
  'disconnect.leave',
  'disconnect.commit',
  'sandbox.rm.mark',
  'sandbox.rm.netns',
  'sandbox.rm.leave',
  'sandbox.rm.commit',
] as const;

/**
 * Points that only a process's later operations reach (a connect whose join runs
 * ahead of its record needs the process lease, written by an earlier one), so
 * not through a one-command `cnm` process.
 */
export const LATER_FAULT_POINTS = ['connect.ahead'] as const;

export type FaultPoint = (typeof FAULT_POINTS)[number] | (typeof LATER_FAULT_POINTS)[number];

/** The step boundaries inside netcore (crates/netcore/src/fault.rs). */
export const NETCORE_FAULT_POINTS = ['netcore.netns.created', 'netcore.bridge.created', 'netcore.veth.created'] as const;

let parsed: Map<string, 'error' | 'crash'> | undefined;

function faults(): Map<string, 'error' | 'crash'> {
  if (parsed === undefined) {
    parsed = new Map();
    const spec = process.env.CNM_FAULT ?? '';
    if (spec !== '' && faultInjectionBuilt()) {
      for (const item of spec.split(',')) {
        const [point, mode] = item.trim().split(':');
        if (point) parsed.set(point, mode === 'crash' ? 'crash' : 'error');
      }
    }
  }
  return parsed;
}

/** Whether the addon is a test build, in which fault points act. */
export function faultInjectionBuilt(): boolean {
  return native.faultInjectionEnabled();
}

/** A step boundary: fails or kills the process when CNM_FAULT names it. */
export function fault(point: FaultPoint): void {
  const mode = faults().get(point);
  if (mode === undefined) return;
  if (mode === 'crash') process.kill(process.pid, 'SIGKILL');
  throw new CnmError('ERR_FAULT_INJECTED', `fault injected at ${point} (CNM_FAULT)`, { value: point });
}
