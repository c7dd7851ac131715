// A connect whose join runs ahead of its record (ts/ops/process-lease.ts): with
// the process lease held, the bridge driver's join starts inside the transaction
// that records the endpoint, so that the kernel work overlaps the commit's disk
// flush. The lease is written by the process's first connect and dropped by
// close(); a join whose transaction fails is taken out again; a process that
// dies with a link ahead of its record leaves its lease, and the next command
// reconciles and removes the link. Real kernel, real traffic, real SIGKILLs.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { native } from '../ts/native.js';
import { LEASE_PREFIX } from '../ts/ops/process-lease.js';
import { cnm } from './helpers/cli.js';
import { checkConsistency } from './helpers/consistency.js';
import { type IsolatedHost, isolatedHost, pings } from './helpers/host.js';

const worker = fileURLToPath(new URL('./helpers/ahead-worker.ts', import.meta.url));
let host: IsolatedHost;

test.before(async () => {
  host = await isolatedHost('ahd');
});
test.after.always(async () => {
  await host?.cleanup();
});

const ip = (e: { ipv4: string }) => e.ipv4.split('/')[0]!;
const leases = (ctl: NetworkController) => ctl.store.range(LEASE_PREFIX).map(([k]) => k);
const ctxOf = (ctl: NetworkController) => (ctl as unknown as { ctx: { lease: { held: boolean } } }).ctx;

/** Run the worker; resolves with its output lines and how it ended. */
function runWorker(prefix: string, mode: 'connect' | 'orphan', env: Record<string, string> = {}): Promise<{ lines: string[]; signal: NodeJS.Signals | null; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', worker, host.stateDir, host.ns, prefix, mode], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CNM_LOG: 'error', ...env },
    });
    let out = '';
    let stderr = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code, signal) => resolve({ lines: out.split('\n').filter(Boolean), signal, code, stderr }));
  });
}

/** Remove what a worker made (networks, sandboxes), through a fresh controller. */
async function clearWorker(prefix: string): Promise<void> {
  const ctl = await host.open();
  try {
    for (const s of ['s1', 's2']) await ctl.removeSandbox(`${prefix}-${s}`).catch(() => undefined);
    for (const n of ['a', 'b']) await ctl.removeNetwork(`${prefix}-${n}`).catch(() => undefined);
  } finally {
    await ctl.close();
  }
}

test.serial('the first connect writes the lease; later ones join ahead of their record, and traffic flows; close drops it', async (t) => {
  const ctl = await host.open();
  try {
    await ctl.createNetwork({ name: 'ja', ipam: [{ subnet: '10.173.0.0/24' }] });
    await ctl.createNetwork({ name: 'jb', ipam: [{ subnet: '10.174.0.0/24' }] });
    const [s1, s2, s3] = ['j1', 'j2', 'j3'].map((n) => host.name(n));
    for (const s of [s1, s2, s3]) await ctl.createSandbox({ name: s!, net: 'ja' });
    t.false(ctxOf(ctl).lease.held, 'no lease before a connect asks for it');
    t.deepEqual(leases(ctl), []);
    await ctl.connect('jb', s1!);
    t.true(ctxOf(ctl).lease.held, 'the first connect wrote it');
    t.is(leases(ctl).length, 1);
    // these run their join inside the transaction that records them
    const e2 = await ctl.connect('jb', s2!);
    const e3 = await ctl.connect('jb', s3!);
    t.true(pings(s2!, ip(e3)), 'traffic between two endpoints joined ahead');
    t.true(pings(s3!, ip(e2)), 'both ways');
    const e1 = ctl.getSandbox(s1!).inspect().Networks.jb!.IPAddress;
    t.true(pings(s3!, e1), 'and to the one joined with its record first');
    t.deepEqual((await checkConsistency(host)).problems.filter((p) => !p.includes('endpoint')), []);
  } finally {
    await ctl.close();
  }
  const after = await host.open();
  try {
    t.deepEqual(leases(after), [], 'close dropped the lease');
    const check = await after.checkState();
    t.true(check.clean, `system check is clean: ${JSON.stringify(check)}`);
    for (const s of ['j1', 'j2', 'j3']) await after.removeSandbox(host.name(s));
    await after.removeNetwork('ja');
    await after.removeNetwork('jb');
  } finally {
    await after.close();
  }
});

test.serial('a join ahead whose transaction fails is taken out: no link, no record, no address held', async (t) => {
  const prefix = host.name('e');
  const r = await runWorker(prefix, 'connect', { CNM_FAULT: 'connect.ahead' });
  t.deepEqual(r.lines, ['leased', 'ERR_FAULT_INJECTED'], r.stderr);
  const after = await checkConsistency(host);
  t.deepEqual(after.problems, [], 'store and kernel agree, with no reconcile');
  t.deepEqual(Object.keys(after.summary.sandboxes[`${prefix}-s2`] ?? {}), [`${prefix}-a`], 's2 is not on -b');
  await clearWorker(prefix);
});

test.serial('a process killed with its join ahead of the record: reconcile removes what it left', async (t) => {
  const prefix = host.name('k');
  const r = await runWorker(prefix, 'connect', { CNM_FAULT: 'connect.ahead:crash' });
  t.is(r.signal, 'SIGKILL', r.stderr);
  t.deepEqual(r.lines, ['leased']);
  const after = await checkConsistency(host, { reconcile: true });
  t.deepEqual(after.problems, [], 'store and kernel agree after reconcile');
  t.deepEqual(Object.keys(after.summary.sandboxes[`${prefix}-s2`] ?? {}), [`${prefix}-a`], 'the connect did not happen');
  await clearWorker(prefix);
});

test.serial("a dead process's lease makes the next command reconcile, which deletes a link no record names", async (t) => {
  const prefix = host.name('o');
  const r = await runWorker(prefix, 'orphan');
  t.is(r.signal, 'SIGKILL', r.stderr);
  t.deepEqual(r.lines, ['leased', 'orphan']);
  const has = async () => (await native.listLinks(host.ns)).some((l) => l.name === 'vahead0');
  t.true(await has(), 'the worker left its link');
  // a plain command that changes something: it reconciles only when something says it must
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  const mk = cnm([...g, 'network', 'create', '--subnet', '10.175.0.0/24', 'jo']);
  t.is(mk.code, 0, mk.stderr);
  t.is(cnm([...g, 'network', 'rm', 'jo']).code, 0);
  t.false(await has(), 'the command reconciled and removed it');
  const ctl = await host.open();
  try {
    t.deepEqual(leases(ctl), [], "the dead process's lease went with it");
    t.true((await ctl.checkState()).clean);
  } finally {
    await ctl.close();
  }
  t.deepEqual((await checkConsistency(host)).problems, []);
  await clearWorker(prefix);
});
