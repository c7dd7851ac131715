// Several processes on one state dir and one host: distinct addresses, one winner
// per name, and store and kernel in agreement afterwards.
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { type RaceTimes, describeRace, runTogether } from './helpers/barrier.js';
import { checkConsistency } from './helpers/consistency.js';
import { type IsolatedHost, isolatedHost, pings } from './helpers/host.js';

const worker = fileURLToPath(new URL('./helpers/ctl-worker.ts', import.meta.url));
let host: IsolatedHost;

test.before(async () => {
  host = await isolatedHost('conc');
  const ctl = await host.open();
  await ctl.createNetwork({ name: 'shared', ipam: [{ subnet: '10.170.0.0/22' }] });
  await ctl.close();
});
test.after.always(async () => {
  await host?.cleanup();
});

type Result = Record<string, unknown> & RaceTimes;

/** One controller process per argument list, all set up, then let go together. */
function runTogetherOnHost(argvs: string[][]): Promise<Result[]> {
  return runTogether<Result>(
    worker,
    argvs.map((args) => [host.stateDir, host.ns, ...args]),
  );
}

test.serial('4 processes x 100 concurrent connects on one network: 400 distinct addresses, store and kernel agree', async (t) => {
  const results = await runTogetherOnHost([0, 1, 2, 3].map((w) => ['sandboxes', 'shared', host.name(`w${w}`), '100']));
  const all = results.flatMap((r) => r.addresses as string[]);
  t.is(all.length, 400);
  t.is(new Set(all).size, 400, 'no address handed out twice');
  t.log(describeRace(results));
  const { problems, summary } = await checkConsistency(host);
  t.deepEqual(problems, []);
  t.is(Object.keys(summary.sandboxes).length, 400);
  // spot-check traffic across processes' sandboxes
  t.true(pings(host.name('w0-0'), summary.sandboxes[host.name('w3-99')]!.shared!));
  const ctl = await host.open();
  await Promise.all(ctl.listSandboxes().map((s) => ctl.removeSandbox(s.name)));
  await ctl.close();
  t.deepEqual((await checkConsistency(host)).problems, []);
});

test.serial('the same network name created by two processes at once: exactly one wins', async (t) => {
  for (let round = 0; round < 5; round++) {
    const name = `race${round}`;
    const rs = await runTogetherOnHost([
      ['create-network', name],
      ['create-network', name],
    ]);
    t.is(rs.filter((r) => r.ok).length, 1, JSON.stringify(rs));
    t.deepEqual(rs.filter((r) => !r.ok).map((r) => r.code), ['ERR_NAME_CONFLICT']);
    t.log(`${name}: ${describeRace(rs)}`);
  }
  const { problems, summary } = await checkConsistency(host);
  t.deepEqual(problems, []);
  t.deepEqual(summary.networks.filter((n) => n.startsWith('race')), ['race0', 'race1', 'race2', 'race3', 'race4']);
});
