// The controller's life: opening changes nothing, one state dir owns a host
// netns, a closed controller answers ERR_CLOSED, and reconcile's failures are
// reported (returned, logged, and shown by `cnm system reconcile`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { NetworkController } from '../ts/controller.js';
import { CnmError, toCnmError } from '../ts/errors.js';
import { setLogSink } from '../ts/log.js';
import { currentOwner } from '../ts/owner.js';
import { keys } from '../ts/records.js';
import type { NetworkRecord } from '../ts/types.js';
import { cliErrorCode, cnm } from './helpers/cli.js';
import { type IsolatedHost, ipj, isolatedHost, pings } from './helpers/host.js';

let host: IsolatedHost;
test.before(async () => {
  host = await isolatedHost('life');
});
test.after.always(async () => {
  await host?.cleanup();
});

test.serial('a second state dir on one host netns is refused, naming the owner; the first keeps working', async (t) => {
  const ctl = await host.open();
  await ctl.createNetwork({ name: 'mine', ipam: [{ subnet: '10.62.0.0/24' }] });
  const a = await ctl.createSandbox({ name: host.name('a'), net: 'mine' });
  const b = await ctl.createSandbox({ name: host.name('b'), net: 'mine' });
  const veths = () => ipj<Array<{ ifname: string }>>(host.ns, 'link', 'show', 'type', 'veth').map((l) => l.ifname).sort();
  const before = veths();
  const other = join(host.tmp('other'), 'state');
  // through the library
  const second = await NetworkController.open({ hostNetns: host.ns, stateDir: other });
  t.deepEqual(second.listNetworks(), [], 'opening alone reads nothing of another state dir');
  const e = await t.throwsAsync(second.createNetwork({ name: 'theirs' }));
  t.is((e as CnmError).code, 'ERR_HOST_IN_USE');
  t.true(e!.message.includes(host.stateDir), e!.message);
  await second.close();
  // and through the CLI, whose reconcile would have taken the first one's veths for orphans
  const r = cnm(['--state-dir', other, '--host-netns', host.ns, 'system', 'reconcile'], { CNM_LOG: 'debug' });
  t.is(r.code, 1);
  t.is(cliErrorCode(r), 'ERR_HOST_IN_USE');
  t.regex(r.stderr, new RegExp(`managed by state dir ${host.stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  t.false(existsSync(other), 'the refused state dir was not left behind');
  t.deepEqual(veths(), before, "the owner's veths are untouched");
  t.true(pings(a.netns, b.inspect().Networks.mine!.IPAddress));
  await ctl.removeSandbox(a.name);
  await ctl.removeSandbox(b.name);
  await ctl.removeNetwork('mine');
});

test.serial('after close() every call answers ERR_CLOSED', async (t) => {
  const ctl = await host.open();
  const net = ctl.getNetwork('bridge');
  await ctl.close();
  const calls: Array<[string, () => unknown]> = [
    ['listNetworks', () => ctl.listNetworks()],
    ['getNetwork', () => ctl.getNetwork('bridge')],
    ['listSandboxes', () => ctl.listSandboxes()],
    ['inspect of a network got before', () => net.inspect()],
    ['createNetwork', () => ctl.createNetwork({ name: 'late' })],
    ['removeNetwork', () => ctl.removeNetwork('bridge')],
    ['createSandbox', () => ctl.createSandbox({ name: host.name('late') })],
    ['connect', () => ctl.connect('bridge', 'x')],
    ['reconcile', () => ctl.reconcile()],
    ['reconcile --dry-run', () => ctl.reconcile({ dryRun: true })],
    ['ready', () => ctl.ready()],
  ];
  for (const [what, call] of calls) {
    let err: unknown;
    try {
      await call();
    } catch (e) {
      err = e;
    }
    t.true(err instanceof CnmError, `${what}: ${String(err)}`);
    t.is((err as CnmError).code, 'ERR_CLOSED', what);
  }
  await ctl.close();
});

/**
 * A network a dead process left half-made, on a plugin driver that is gone:
 * rolling it back drops our records but cannot tell the plugin, a failure to report.
 */
async function plantHalfMade(store: NetworkController['store']): Promise<void> {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const rec: NetworkRecord = {
    id: 'f'.repeat(64),
    name: 'halfmade',
    driver: 'goneplugin',
    scope: 'local',
    created: new Date().toISOString(),
    internal: false,
    attachable: false,
    enableIPv6: false,
    options: {},
    labels: {},
    ipam: { driver: 'default', options: {}, config: [{ subnet: '10.63.0.0/24', gateway: '10.63.0.1' }], userSubnet: true },
    state: 'creating',
    owner: { pid: dead, start: currentOwner().start },
  };
  await store.txn((tx) => {
    tx.put(keys.net(rec.id), rec);
    tx.put(keys.netName(rec.name), rec.id);
  });
}

test.serial('reconcile reports a step that fails: returned, logged, and shown by cnm system reconcile', async (t) => {
  const ctl = await host.open({ pluginDir: host.tmp('noplugins') });
  await plantHalfMade(ctl.store);
  const lines: string[] = [];
  const prev = setLogSink((l) => lines.push(l));
  let report;
  try {
    report = await ctl.reconcile();
  } finally {
    setLogSink(prev);
  }
  t.true(report.actions.some((a) => a.includes('roll back half-made network halfmade')), report.actions.join('; '));
  t.is(report.errors.length, 1, report.errors.join('; '));
  t.regex(report.errors[0]!, /halfmade/);
  t.is(report.failures[0]!.error.code, 'ERR_UNKNOWN_DRIVER');
  const logged = lines.map((l) => JSON.parse(l) as { level: string; msg: string; err?: { code?: string } });
  t.true(
    logged.some((l) => l.level === 'warn' && l.msg.includes('halfmade') && l.err?.code === 'ERR_UNKNOWN_DRIVER'),
    lines.join('\n'),
  );
  t.false(ctl.listNetworks().some((n) => n.name === 'halfmade'), 'our records went anyway');
  // the CLI prints it and fails
  await plantHalfMade(ctl.store);
  await ctl.close();
  const r = cnm(['--state-dir', host.stateDir, '--host-netns', host.ns, '--plugin-dir', host.tmp('noplugins'), 'system', 'reconcile']);
  t.is(r.code, 1, r.stderr);
  t.regex(r.stdout, /roll back half-made network halfmade/);
  t.regex(r.stderr, /Error: .*halfmade.*goneplugin/);
  // the set-up's own reconcile keeps its report
  const planted = await host.open({ pluginDir: host.tmp('noplugins') });
  await plantHalfMade(planted.store);
  await planted.close();
  const again = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir, pluginDir: host.tmp('noplugins') });
  t.is(again.lastReconcile, undefined, 'opening alone reconciles nothing');
  await again.ready();
  t.is(again.lastReconcile?.errors.length, 1, JSON.stringify(again.lastReconcile));
  await again.close();
});

test('an unexpected error is ERR_INTERNAL with its cause; a system error is ERR_IO', (t) => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
  const e = toCnmError(bug, 'create network n');
  t.is(e.code, 'ERR_INTERNAL');
  t.is(e.cause, bug);
  t.is(e.status, 500);
  const io = Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT', errno: -2 });
  const e2 = toCnmError(io);
  t.is(e2.code, 'ERR_IO');
  t.is(e2.details.errno, 2);
  t.is(e2.cause, io);
  const coded = new CnmError('ERR_NETWORK_NOT_FOUND', 'network x not found');
  t.is(toCnmError(coded), coded, 'a CnmError stays as it is');
});
