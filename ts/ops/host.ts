/**
 * The host netns: who owns it, and its set-up. One state dir owns one host
 * netns; a second one would take the first one's veths and bridges for orphans
 * and remove them, so it is refused (ERR_HOST_IN_USE naming the owner). The claim
 * is a file under /run/cnm/hosts named after the netns cookie, an id the kernel
 * never hands out twice during a boot, and /run is emptied at each boot as the
 * namespaces are. A claim whose state dir was removed is taken over.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { OpContext } from './context.js';

/** Where host claims live. */
export const CLAIM_DIR = '/run/cnm/hosts';

interface Claim {
  /** the --state-dir the owner was given */
  stateDir: string;
  /** the owner's per-host directory under it */
  hostDir: string;
  netns: string | null;
}


const label = (netns: string | null) => (netns === null ? "the process's own netns" : `netns ${netns}`);

/**
 * Claim the host netns for the state dir `hostDir` (which exists by now); throws
 * ERR_HOST_IN_USE when another existing state dir has it.
 */
export async function claimHost(netns: string | null, stateDir: string, hostDir: string, claimDir = CLAIM_DIR): Promise<void> {
  const mine: Claim = { stateDir: resolve(stateDir), hostDir: resolve(hostDir), netns };
  mkdirSync(claimDir, { recursive: true, mode: 0o700 });
  const file = join(claimDir, `${await native.netnsCookie(netns)}.json`);
  for (let attempt = 0; attempt < 3; attempt++) {
    let cur: Claim | undefined;
    try {
      cur = JSON.parse(readFileSync(file, 'utf8')) as Claim;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        try {
          writeFileSync(file, JSON.stringify(mine), { flag: 'wx', mode: 0o600 });
          // a new claim: the claims of namespaces that are gone go now (they are never reused)
          await dropStaleClaims(claimDir, file);
          return;
        } catch (w) {
          if ((w as NodeJS.ErrnoException).code === 'EEXIST') continue; // another process claimed it first: look at its claim
          throw w;
        }
      }
      log.warn('a host claim file could not be read; it is replaced', { file, err: e });
    }
    if (cur?.hostDir === mine.hostDir) return;
    if (cur && typeof cur.hostDir === 'string' && existsSync(cur.hostDir)) {
      throw new CnmError(
        'ERR_HOST_IN_USE',
        `${label(netns)} is managed by state dir ${cur.stateDir}: use --state-dir ${cur.stateDir} with it, or remove ${cur.hostDir} (after removing its networks and sandboxes) to manage it from ${mine.stateDir}`,
        { value: cur.stateDir, netns: netns ?? undefined },
      );
    }
    if (cur) log.info('taking over a host netns whose state dir is gone', { netns, previous: cur.stateDir });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(mine), { mode: 0o600 });
    renameSync(tmp, file);
    return;
  }
  throw new CnmError('ERR_HOST_IN_USE', `${label(netns)}: its claim file ${file} keeps changing; another cnm is starting on it`, { value: file });
}

/**
 * Remove the claims of named namespaces that no longer exist, or whose name now
 * stands for another netns (another cookie). Best effort: a claim that cannot be
 * read or removed stays, logged.
 */
async function dropStaleClaims(claimDir: string, keep: string): Promise<void> {
  const names = new Set(await native.netnsList());
  for (const f of readdirSync(claimDir)) {
    const path = join(claimDir, f);
    if (path === keep || !f.endsWith('.json')) continue;
    try {
      const c = JSON.parse(readFileSync(path, 'utf8')) as Claim;
      if (c.netns === null) continue;
      const stale = !names.has(c.netns) || `${await native.netnsCookie(c.netns)}.json` !== f;
      if (stale) unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('a stale host claim could not be removed', { file: path, err: e });
    }
  }
}

/**
 * Firewall base rules, IP forwarding and the ephemeral port range of the host
 * netns. True when the firewall's base ruleset had to be made or put back (a
 * flush or a delete by hand takes the entries with it: reconcile restores them).
 */
export async function prepareHost(ctx: OpContext, portRangeGiven: boolean): Promise<boolean> {
  const remade = await ctx.firewall.init();
  if (ctx.settings.ipForward && (await native.sysctlGet(ctx.hostNetns, 'net.ipv4.ip_forward')).trim() !== '1') {
    await native.sysctlSet(ctx.hostNetns, 'net.ipv4.ip_forward', '1');
  }
  if (!portRangeGiven) {
    const [lo, hi] = (await native.sysctlGet(ctx.hostNetns, 'net.ipv4.ip_local_port_range')).trim().split(/\s+/).map(Number);
    if (lo && hi && lo <= hi) ctx.settings.portRange = [lo, hi];
  }
  return remade;
}
