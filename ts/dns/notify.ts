/**
 * After a change to names (a sandbox made or removed, a connect, a disconnect):
 * the host's resolver has it before the call returns. In this process when it
 * serves DNS; else the process that does is told on its control socket; else,
 * for the CLI, a background resolver is started when a sandbox needs one.
 */
import { existsSync } from 'node:fs';
import type { Store } from '../store/store.js';
import { allSandboxes, endpointsOfSandbox, keys } from '../records.js';
import type { NetworkRecord } from '../types.js';
import { askResolver, controlPath } from './control.js';
import type { HostResolver } from './host-resolver.js';
import { hasDns } from './names.js';

export async function namesChanged(store: Store, hostDir: string, local: HostResolver | undefined, start: (() => Promise<unknown>) | undefined): Promise<void> {
  if (local) return local.service.sync();
  // no socket, no resolver elsewhere: a stat, not a connect, on the hot path
  const path = controlPath(hostDir);
  if (existsSync(path) && (await askResolver(path, 'sync')) !== undefined) return;
  if (start && needsResolver(store)) await start();
}

/** Some ready sandbox is on a user-defined network. */
export function needsResolver(store: Store): boolean {
  return allSandboxes(store).some(
    (sb) =>
      sb.state === 'ready' &&
      sb.mode === 'network' &&
      endpointsOfSandbox(store, sb.id).some((ep) => {
        const net = store.get<NetworkRecord>(keys.net(ep.networkId));
        return net !== undefined && hasDns(net);
      }),
  );
}
