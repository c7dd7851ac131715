/** The controller a CLI command opens: with its background helpers (resolver, cluster agent). */
import { join } from 'node:path';
import { agentLease } from '../cluster/agent-file.js';
import { startResolverProcess } from '../dns/process.js';
import { type ControllerOptions, DEFAULT_STATE_DIR, NetworkController } from '../controller.js';

export async function openFromOptions(opts: ControllerOptions): Promise<NetworkController> {
  // a command exits, a host's lease must not: a background agent holds it (and keeps the
  // peer tables). Asked for once etcd has answered this command, so an etcd that is away
  // costs no more time than before.
  if (opts.clusterStore !== undefined && opts.clusterLeaseId === undefined) opts.clusterLease = () => agentLease(opts, DEFAULT_STATE_DIR);
  // names must resolve after the command exits: a background resolver serves them when no daemon does
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  const hostNetns = opts.hostNetns ?? null;
  // (its options are the command's, functions aside: JSON carries none)
  opts.dnsProcess = () => startResolverProcess({ ...opts, stateDir, hostNetns }, join(stateDir, hostNetns === null ? 'root' : `netns-${hostNetns}`));
  // a command reconciles when something asks for it, not each time (see reconcile-needed.ts)
  opts.reconcileOnOpen ??= 'when-needed';
  return NetworkController.open(opts);
}
