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
  return startTime(owner.pid) === owner.start;
}
