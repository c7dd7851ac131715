// Crash soak: a child process runs random operations and is killed with SIGKILL
// at random moments, 50 times; each next start reconciles. Store and kernel must
// agree throughout, and nothing may be left after cleanup.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { native } from '../ts/native.js';
import { checkConsistency } from './helpers/consistency.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

const worker = fileURLToPath(new URL('./helpers/soak-worker.ts', import.meta.url));
const KILLS = 50;
let host: IsolatedHost;

test.before(async () => {
  host = await isolatedHost('soak');
  const ctl = await host.open();
  await ctl.createNetwork({ name: 'soak-a', ipam: [{ subnet: '10.180.0.0/24' }] });
  await ctl.createNetwork({ name: 'soak-b', ipam: [{ subnet: '10.180.1.0/24' }] });
  await ctl.close();
});
test.after.always(async () => {
  await host?.cleanup();
});

let done = 0;

function killAfter(seed: number, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', worker, host.stateDir, host.ns, host.name('k'), String(seed)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.stdout.once('data', () => setTimeout(() => child.kill('SIGKILL'), ms));
    child.stdout.on('data', (d: Buffer) => (done += d.toString().split('.').length - 1));
    child.on('exit', (code, sig) => (sig === 'SIGKILL' ? resolve() : reject(new Error(`worker ended by itself (${code}): ${err}`))));
  });
}

test('50 SIGKILLs at random moments leave store and kernel in agreement', async (t) => {
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed;
  };
  for (let i = 0; i < KILLS; i++) {
    await killAfter(next(), 20 + (next() % 400));
    // every few kills, and at the end, a full check after a reconcile (which repairs what the kills left)
    if (i % 10 === 9) {
      const { problems } = await checkConsistency(host, { reconcile: true });
      t.deepEqual(problems, [], `after kill ${i + 1}`);
    }
  }
  const { problems } = await checkConsistency(host, { reconcile: true });
  t.deepEqual(problems, []);
  t.true(done >= 100, `the workers completed ${done} operations between kills`);
  t.log(`${done} operations completed across ${KILLS} kills`);
  // remove everything; nothing of ours may be left in the kernel
  const ctl = await host.open();
  for (const s of ctl.listSandboxes()) await ctl.removeSandbox(s.name);
  for (const n of ['soak-a', 'soak-b', 'soak-c']) await ctl.removeNetwork(n).catch(() => undefined);
  await ctl.close();
  const left = (await native.netnsList()).filter((n) => n.startsWith(host.name('k')));
  t.deepEqual(left, []);
  const veths = (await native.listLinks(host.ns)).filter((l) => l.kind === 'veth');
  t.deepEqual(veths.map((l) => l.name), []);
  const fw = await native.firewallState('nftables', host.ns);
  t.deepEqual(fw.ports, []);
  t.deepEqual(fw.networks.map((n) => n.bridge), ['cnm0']);
});
