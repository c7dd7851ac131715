// Several processes on one state dir and one host: distinct addresses, one winner
// per name, and store and kernel in agreement afterwards.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
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

function run(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', worker, host.stateDir, host.ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`worker exited ${code}: ${err}`))));
  });
}

test.serial('4 processes x 100 concurrent connects on one network: 400 distinct addresses, store and kernel agree', async (t) => {
  const results = await Promise.all([0, 1, 2, 3].map((w) => run(['sandboxes', 'shared', host.name(`w${w}`), '100'])));
  const all = results.flatMap((r) => r.addresses as string[]);
  t.is(all.length, 400);
  t.is(new Set(all).size, 400, 'no address handed out twice');
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
    const startAt = Date.now() + 1500;
    const name = `race${round}`;
    const rs = await Promise.all([run(['create-network', name, String(startAt)]), run(['create-network', name, String(startAt)])]);
    t.is(rs.filter((r) => r.ok).length, 1, JSON.stringify(rs));
    t.deepEqual(rs.filter((r) => !r.ok).map((r) => r.code), ['ERR_NAME_CONFLICT']);
  }
  const { problems, summary } = await checkConsistency(host);
  t.deepEqual(problems, []);
  t.deepEqual(summary.networks.filter((n) => n.startsWith('race')), ['race0', 'race1', 'race2', 'race3', 'race4']);
});
