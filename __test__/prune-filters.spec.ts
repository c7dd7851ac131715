// What users of the library and the command reach for next: list filters (as
// docker network ls --filter), --no-trunc, prune of unused networks and of
// sandboxes no process uses, `await using` for a controller, and sandboxes on a
// network namespace a container runtime made (/proc/PID/ns/net).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import test from 'ava';
import { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { cnm } from './helpers/cli.js';
import { type IsolatedHost, isolatedHost, pings } from './helpers/host.js';

let host: IsolatedHost;
let ctl: NetworkController;
let g: string[];

test.before(async () => {
  host = await isolatedHost('prf');
  ctl = await host.open();
  g = ['--host-netns', host.ns, '--state-dir', host.stateDir];
});
test.after.always(async () => {
  await host?.cleanup();
});

test.serial('listNetworks and network ls take Docker\'s filters; --no-trunc shows whole ids', async (t) => {
  await ctl.createNetwork({ name: 'fa-one', labels: { tier: 'web' }, ipam: [{ subnet: '10.86.0.0/24' }] });
  await ctl.createNetwork({ name: 'fb-two', internal: true, ipam: [{ subnet: '10.86.1.0/24' }] });
  const names = (f: Record<string, string[] | string>) => ctl.listNetworks({ filters: f }).map((n) => n.name);
  t.deepEqual(names({ name: 'fa' }), ['fa-one']);
  t.deepEqual(names({ label: 'tier=web' }), ['fa-one']);
  t.deepEqual(names({ type: 'builtin' }).sort(), ['bridge', 'host', 'none']);
  t.deepEqual(names({ type: 'custom', name: ['one', 'two'] }).sort(), ['fa-one', 'fb-two']);
  t.deepEqual(names({ driver: 'null' }), ['none']);
  t.throws(() => ctl.listNetworks({ filters: { bogus: ['x'] } }), { instanceOf: CnmError, code: 'ERR_INVALID_ARGUMENT' } as never);
  let r = cnm([...g, 'network', 'ls', '-q', '--no-trunc', '-f', 'name=fa-']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), ctl.getNetwork('fa-one').id);
  r = cnm([...g, 'network', 'ls', '--filter', 'label=tier']);
  t.regex(r.stdout, /fa-one/);
  t.notRegex(r.stdout, /fb-two/);
  t.is(cnm([...g, 'network', 'ls', '-f', 'nokey']).code, 125);
});

test.serial('network prune removes networks no sandbox uses, with filters, and asks first', async (t) => {
  const sb = await ctl.createSandbox({ name: host.name('u'), net: 'fa-one' });
  await ctl.createNetwork({ name: 'fc-old', labels: { keep: 'no' }, ipam: [{ subnet: '10.86.2.0/24' }] });
  // without -f and with no answer: nothing happens
  let r = cnm([...g, 'network', 'prune']);
  t.is(r.code, 0);
  t.regex(r.stdout, /Are you sure you want to continue\? \[y\/N\]/);
  t.truthy(ctl.listNetworks().find((n) => n.name === 'fc-old'));
  r = cnm([...g, 'network', 'prune', '-f', '--filter', 'label=keep=no']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['Deleted Networks:', 'fc-old']);
  t.deepEqual(await ctl.pruneNetworks(), ['fb-two'], 'the library: fa-one is in use, predefined ones stay');
  t.deepEqual(
    ctl
      .listNetworks()
      .map((n) => n.name)
      .sort(),
    ['bridge', 'fa-one', 'host', 'none'],
  );
  await ctl.removeSandbox(sb.name);
  await ctl.removeNetwork('fa-one');
});

test.serial('sandbox prune removes the sandboxes no process uses', async (t) => {
  const idle = await ctl.createSandbox({ name: host.name('idle') });
  const busy = await ctl.createSandbox({ name: host.name('busy') });
  const proc = spawn('ip', ['netns', 'exec', busy.netns, 'sleep', '60'], { stdio: 'ignore' });
  try {
    // until the process is in the namespace
    for (let i = 0; i < 50 && !execFileSync('ip', ['netns', 'pids', busy.netns], { encoding: 'utf8' }).trim(); i++) await new Promise((r) => setTimeout(r, 20));
    const r = cnm([...g, 'sandbox', 'prune', '-f']);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(r.stdout.trim().split('\n'), ['Deleted Sandboxes:', idle.name]);
    t.false(existsSync(`/run/netns/${idle.netns}`));
    t.is(ctl.getSandbox(busy.name).name, busy.name);
  } finally {
    proc.kill('SIGKILL');
  }
  await ctl.removeSandbox(busy.name);
});

test.serial('a sandbox on a network namespace a runtime made: it works there, and removal leaves the namespace to its owner', async (t) => {
  await ctl.createNetwork({ name: 'rt', ipam: [{ subnet: '10.86.3.0/24' }] });
  // a "container runtime": a process in a network namespace of its own, no /run/netns name
  const runtime: ChildProcess = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 200));
    const path = `/proc/${runtime.pid}/ns/net`;
    const ext = await ctl.createSandbox({ name: host.name('ext'), net: 'rt', netnsPath: path });
    const peer = await ctl.createSandbox({ name: host.name('peer'), net: 'rt' });
    const inRuntime = (...a: string[]) => execFileSync('nsenter', [`--net=${path}`, ...a], { encoding: 'utf8' });
    t.regex(inRuntime('ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'), /10\.86\.3\.2\//, 'the runtime\'s namespace got the interface');
    t.true(pings(peer.netns, ext.inspect().Networks.rt!.IPAddress));
    await ctl.removeSandbox(ext.name);
    t.false(existsSync(`/run/netns/${ext.netns}`));
    t.notRegex(inRuntime('ip', '-o', 'link'), /eth0/, 'cnm\'s link left it');
    t.is(runtime.exitCode, null, 'the runtime\'s process (and namespace) lives on');
    // bad paths change nothing
    for (const [bad, code] of [
      ['/proc/self/ns/mnt', 'ERR_INVALID_ARGUMENT'],
      ['/proc/99999999/ns/net', 'ERR_NETNS_NOT_FOUND'],
      ['relative/path', 'ERR_INVALID_ARGUMENT'],
    ] as const) {
      const e = await t.throwsAsync(ctl.createSandbox({ name: host.name('bad'), net: 'rt', netnsPath: bad }), { instanceOf: CnmError });
      t.is(e!.code, code, bad);
      t.false(existsSync(`/run/netns/${host.name('bad')}`));
      t.throws(() => ctl.getSandbox(host.name('bad')));
    }
    await ctl.removeSandbox(peer.name);
  } finally {
    runtime.kill('SIGKILL');
  }
  await ctl.removeNetwork('rt');
});

test.serial('await using closes the controller', async (t) => {
  let inner: NetworkController | undefined;
  {
    await using c = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir });
    inner = c;
    t.true(c.listNetworks().length > 0);
  }
  t.throws(() => inner!.listNetworks(), { code: 'ERR_CLOSED' } as never);
});
