/**
 * Who is in the middle of an operation. Records that are not committed yet carry
 * their owner, so reconcile in another process leaves live work alone and only
 * rolls back what a dead process left half-done.
 */
import { readFileSync } from 'node:fs';

export interface Owner {
  pid: number;
  /** process start time in clock ticks since boot; guards against pid reuse */
  start: string;
}

function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name may hold spaces and parentheses: fields start after the last ')'
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

let self: Owner | undefined;

export function currentOwner(): Owner {
  self ??= { pid: process.pid, start: startTime(process.pid) ?? '0' };
  return self;
}

export function isAlive(owner: Owner | undefined): boolean {
  if (!owner) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    // EPERM still means the process exists
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const now = startTime(owner.pid);
  // when the start time cannot be read on either side, the pid alone decides:
  // rolling back the work of a live process would be far worse than waiting
  if (now === null || owner.start === '0') return true;
  return now === owner.start;
}
