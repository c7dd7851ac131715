/**
 * The CLI's background resolver (no daemon, no embedding program serving DNS):
 * started by the first command that leaves a sandbox on a user-defined network,
 * as netavark starts aardvark-dns. It reads the store (read-only), serves every
 * such sandbox, follows the commands' changes (they tell it on its control
 * socket, and it polls), and exits once no sandbox needs it for a while, when
 * its host netns is gone, or when a daemon takes over.
 *   node resolver-main.js '{"stateDir":…,"hostNetns":…}'
 */
import { NetworkController } from '../controller.js';
import { log } from '../log.js';
import { native } from '../native.js';
import { HostResolver } from './host-resolver.js';

const CHECK_MS = 2000;
const IDLE_CHECKS = 5;

const opts = JSON.parse(process.argv[2]!) as { stateDir?: string; hostNetns?: string | null };
const ctl = await NetworkController.open({ stateDir: opts.stateDir, hostNetns: opts.hostNetns ?? null });
let resolver: HostResolver;
try {
  resolver = await HostResolver.claim(ctl.store, ctl.hostNetns, ctl.hostDir, { background: true, onHandover: () => void stop('a daemon took over') });
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
  await ctl.close().catch((err: unknown) => log.warn('closing the resolver controller failed', { err }));
  process.exit(0);
}

let idle = 0;
setInterval(() => {
  void (async () => {
    if (opts.hostNetns && !(await native.netnsExists(opts.hostNetns))) return stop('its host netns is gone');
    await resolver.service.sync();
    idle = resolver.service.stats().sandboxes > 0 ? 0 : idle + 1;
    if (idle >= IDLE_CHECKS) await stop('no sandbox on a user-defined network any more');
  })().catch((err: unknown) => log.warn('the background resolver check failed', { err }));
}, CHECK_MS);
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('SIGINT', () => void stop('SIGINT'));
