/**
 * The CLI's cluster agent and the commands that use it (see agent.ts): its
 * record in the host's state dir names its process and the lease it keeps
 * alive; `cnm` commands bind their cluster records to that lease.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log } from '../log.js';
import { ensureStateDir } from '../store/state-dir.js';
import type { ControllerOptions } from '../options.js';
import { type Owner, currentOwner, isAlive } from '../owner.js';

/** Where the agent of a host records itself. */
export function agentFile(opts: ControllerOptions, defaultStateDir: string): string {
  const base = opts.stateDir ?? defaultStateDir;
  return join(base, opts.hostNetns ? `netns-${opts.hostNetns}` : 'root', 'cluster-agent.json');
}

export interface AgentRecord {
  owner: Owner;
  /** the lease the agent keeps alive */
  lease: string;
}

/** The live agent's record, or undefined. */
export function liveAgent(file: string): AgentRecord | undefined {
  let rec: AgentRecord;
  try {
    rec = JSON.parse(readFileSync(file, 'utf8')) as AgentRecord;
  } catch {
    return undefined;
  }
  return isAlive(rec.owner) && typeof rec.lease === 'string' ? rec : undefined;
}

/**
 * Record this process as the host's agent; false when another live agent holds
 * the record (two commands started one each at once: one stays).
 */
export function claimAgent(file: string, lease: string): boolean {
  const rec = JSON.stringify({ owner: currentOwner(), lease } satisfies AgentRecord);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, rec, { mode: 0o600, flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const other = liveAgent(file);
      if (other && other.owner.pid !== process.pid) return false;
      // a dead agent's record, or our own with an old lease
      rmSync(file, { force: true });
    }
  }
  return false;
}

/** Remove the record if it is this process's. */
export function unrecordAgent(file: string): void {
  const rec = (() => {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as AgentRecord;
    } catch {
      return undefined;
    }
  })();
  if (rec?.owner.pid === process.pid) rmSync(file, { force: true });
}

const script = join(dirname(fileURLToPath(import.meta.url)), import.meta.url.endsWith('.ts') ? 'agent.ts' : 'agent.js');

/**
 * The lease a `cnm` command binds its cluster records to: the running agent's,
 * or a new agent's once it holds one (it is started in the background, as
 * netavark starts aardvark-dns). Undefined when no agent could start within 10 s
 * (etcd away): the command then holds a lease of its own, as before.
 */
export async function agentLease(opts: ControllerOptions, defaultStateDir: string): Promise<string | undefined> {
  const file = agentFile(opts, defaultStateDir);
  const have = liveAgent(file);
  if (have) return have.lease;
  // its log goes next to its record, in the host's state dir (made as the controller makes it)
  ensureStateDir(dirname(dirname(file)));
  ensureStateDir(dirname(file));
  const logFd = openSync(join(dirname(file), 'cluster-agent.log'), 'a', 0o600);
  const child = spawn(process.execPath, [...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), script, JSON.stringify(opts)], {
    detached: true,
    stdio: ['ignore', 'ignore', logFd],
  });
  closeSync(logFd);
  child.unref();
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const rec = liveAgent(file);
    if (rec) return rec.lease;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  log.warn('the cluster agent did not start: this command keeps a lease of its own, and its records last only until it runs out', { file });
  return undefined;
}
