/**
 * The cluster agent of a host used through the `cnm` command alone (no daemon,
 * no embedding program): a background process, started by the first command
 * that needs it, as netavark starts aardvark-dns. It holds the host's lease
 * (the commands bind their records to it), keeps the peer tables of the
 * global networks with endpoints here in sync with the store as they change,
 * and exits once the host has had no endpoint on a global network for a while.
 *   node agent.js '<ControllerOptions as JSON>'
 */
import { DEFAULT_STATE_DIR, NetworkController } from '../controller.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { ControllerOptions } from '../options.js';
import { allNetworks, endpointsOfNetwork } from '../records.js';
import { agentFile, claimAgent, liveAgent, unrecordAgent } from './agent-file.js';

/** Checks of the host's endpoints: every CHECK_MS; gone after IDLE_CHECKS checks with none. */
const CHECK_MS = 2000;
const IDLE_CHECKS = 5;

const opts = JSON.parse(process.argv[2]!) as ControllerOptions;
const file = agentFile(opts, DEFAULT_STATE_DIR);
if (liveAgent(file)) process.exit(0);

const ctl = await NetworkController.open({ ...opts, clusterLeaseId: undefined });
await ctl.ready();
const cluster = ctl.ctx.cluster;
if (!cluster) {
  log.error('the cluster agent could not join the cluster store: exiting');
  await ctl.close();
  process.exit(1);
}
// this host's records, whoever wrote them, are bound to this agent's lease from now on
await ctl.syncClusterNetworks();
await ctl.republishCluster();
if (!claimAgent(file, cluster.store.leaseOf())) {
  // another agent started at the same moment and stays
  await cluster.store.close({ revoke: true });
  await ctl.close();
  process.exit(0);
}
cluster.store.onRenewed(() => {
  unrecordAgent(file);
  claimAgent(file, cluster.store.leaseOf());
});
log.info('cluster agent running', { host: opts.hostNetns ?? 'root', lease: cluster.store.leaseOf() });

// the commands' connects and removals, from the shared local store
let running: Promise<void> | undefined;
let again = false;
const sync = (): void => {
  if (running) {
    again = true;
    return;
  }
  running = ctl
    .syncClusterNetworks()
    .catch((err: unknown) => log.warn('the cluster agent could not follow this host\'s networks', { err }))
    .finally(() => {
      running = undefined;
      if (again) {
        again = false;
        sync();
      }
    });
};
ctl.ctx.store.watch('ep/', ctl.ctx.store.revision(), sync);

const globalEndpoints = () => allNetworks(ctl.ctx.store).some((n) => n.scope === 'global' && endpointsOfNetwork(ctl.ctx.store, n.id).length > 0);
let idle = 0;
let leaving = false;
const stop = async (why: string) => {
  log.info(`cluster agent exiting: ${why}`);
  unrecordAgent(file);
  await cluster.store.close({ revoke: true }).catch((err: unknown) => log.warn('revoking the agent lease failed', { err }));
  await ctl.close().catch((err: unknown) => log.warn('closing the agent controller failed', { err }));
  process.exit(0);
};
const check = async () => {
  if (opts.hostNetns && !(await native.netnsExists(opts.hostNetns))) return stop('its host netns is gone');
  idle = globalEndpoints() ? 0 : idle + 1;
  if (idle < IDLE_CHECKS) return;
  // no new command may take the lease now; one that took it just before has written by then
  leaving = true;
  unrecordAgent(file);
  await new Promise((r) => setTimeout(r, CHECK_MS));
  if (!globalEndpoints()) return stop('no endpoint on a global network here any more');
  claimAgent(file, cluster.store.leaseOf());
  idle = 0;
  leaving = false;
};
setInterval(() => {
  if (!leaving) void check().catch((err: unknown) => log.warn('the cluster agent check failed', { err }));
}, CHECK_MS);
process.once('SIGTERM', () => void stop('SIGTERM'));
