/**
 * The CLI's background resolver (no daemon, no embedding program serving DNS):
 * started by the first command that leaves a sandbox on a user-defined network,
 * as netavark starts aardvark-dns. It reads the store (read-only), serves every
 * such sandbox, follows the commands' changes (they tell it on its control
 * socket, and it polls), and exits once no sandbox needs it for a while, when
 * its host netns is gone, or when a daemon takes over. With a cluster store, it
 * reads the other hosts' endpoints of the global networks in use here from it
 * (without a lease of its own: it only reads and watches).
 *   node resolver-main.js '<ControllerOptions as JSON>'
 */
import { NetworkController } from '../controller.js';
import { log } from '../log.js';
import { native } from '../native.js';
import { Cluster, partitionsOf } from '../cluster/cluster.js';
import type { ControllerOptions } from '../options.js';
import type { EtcdStore } from '../store/etcd-store.js';
import { HostResolver } from './host-resolver.js';
import type { RemotePeers } from './service.js';

const CHECK_MS = 2000;
const IDLE_CHECKS = 5;

const opts = JSON.parse(process.argv[2]!) as ControllerOptions;
const ctl = await NetworkController.open({ stateDir: opts.stateDir, hostNetns: opts.hostNetns ?? null });
let peers: RemotePeers | undefined;
let cluster: EtcdStore | undefined;
/** The cluster store, once it answers (tried again at each check until then). */
async function joinCluster(): Promise<void> {
  if (opts.clusterStore === undefined || cluster) return;
  const hostId = Cluster.hostIdOf(ctl.store);
  if (hostId === undefined) return; // this host never joined: no global endpoint here
  const store = await Cluster.openStore(opts);
  cluster = store;
  peers = { hostId, store, followPeers: (netId) => store.followAll(partitionsOf(netId)) };
}
await joinCluster().catch((err: unknown) => log.warn('the background resolver could not reach the cluster store yet', { err }));
let resolver: HostResolver;
try {
  resolver = await HostResolver.claim(ctl.store, ctl.hostNetns, ctl.hostDir, { background: true, onHandover: () => void stop('a daemon took over') }, () => peers);
} catch (err) {
  // another resolver serves this host: nothing to do
  log.info('background resolver not started', { err });
  await ctl.close();
  process.exit(0);
}
log.info('background resolver running', { host: opts.hostNetns ?? 'root' });

async function stop(why: string): Promise<never> {
  log.info(`background resolver exiting: ${why}`);
  await resolver.close();
  await cluster?.close().catch((err: unknown) => log.warn('closing the cluster store failed', { err }));
  await ctl.close().catch((err: unknown) => log.warn('closing the resolver controller failed', { err }));
  process.exit(0);
}

let idle = 0;
setInterval(() => {
  void (async () => {
    if (opts.hostNetns && !(await native.netnsExists(opts.hostNetns))) return stop('its host netns is gone');
    await joinCluster().catch((err: unknown) => log.warn('the background resolver could not reach the cluster store', { err }));
    await resolver.service.sync();
    idle = resolver.service.stats().sandboxes > 0 ? 0 : idle + 1;
    if (idle >= IDLE_CHECKS) await stop('no sandbox on a user-defined network any more');
  })().catch((err: unknown) => log.warn('the background resolver check failed', { err }));
}, CHECK_MS);
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('SIGINT', () => void stop('SIGINT'));
