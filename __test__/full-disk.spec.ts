// The state dir on a full file system: every operation that would write fails
// with ERR_NO_SPACE and changes nothing (no link, netns, firewall entry or
// record), reads keep working, the process does not crash, and once space is
// back everything works and nothing is left to reconcile. The file system is a
// small tmpfs mounted for this file only (unmounted at the end).
import { execFileSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { RESERVE_BYTES } from '../ts/store/free-space.js';
import { cliErrorCode, cnm } from './helpers/cli.js';
import { type IsolatedHost, ipj, isolatedHost, pings } from './helpers/host.js';
import { storeRecords } from './helpers/records.js';

let host: IsolatedHost;
let mnt: string;
let mounted = false;
let ctl: NetworkController;

test.before(async () => {
  host = await isolatedHost('full');
  mnt = host.tmp('fullfs');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', mnt]);
  mounted = true;
});
test.after.always(async () => {
  await ctl?.close().catch(() => undefined);
  if (mounted) execFileSync('umount', ['-l', mnt]);
  await host?.cleanup();
});

const free = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Fill the file system until `leave` bytes are free; returns the filler's path. */
function fill(dir: string, leave: number): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'a');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    while (free(dir) > leave + chunk.length) writeSync(fd, chunk);
    const rest = free(dir) - leave;
    if (rest > 0) writeSync(fd, chunk.subarray(0, rest));
  } finally {
    closeSync(fd);
  }
  return path;
}

async function kernelState(): Promise<unknown> {
  const netns = (await native.netnsList()).filter((n) => n.startsWith(host.name('')));
  return {
    links: ipj<Array<{ ifname: string }>>(host.ns, 'link', 'show').map((l) => l.ifname).sort(),
    addrs: ipj<Array<{ ifname: string; addr_info: Array<{ local: string }> }>>(host.ns, 'addr', 'show').map((l) => [l.ifname, l.addr_info.map((a) => a.local)]),
    netns: netns.sort(),
    firewall: await native.firewallState('nftables', host.ns),
  };
}

test.serial('a full state dir: every write is ERR_NO_SPACE and changes nothing; reads work; with space back all works', async (t) => {
  const stateDir = join(mnt, 'state');
  mkdirSync(stateDir);
  const { NetworkController } = await import('../ts/controller.js');
  ctl = await NetworkController.open({ hostNetns: host.ns, stateDir });
  await ctl.ready();
  await ctl.createNetwork({ name: 'fnet', ipam: [{ subnet: '10.66.0.0/24' }] });
  const s1 = await ctl.createSandbox({ name: host.name('s1'), net: 'fnet', ip: '10.66.0.10' });
  const s2 = await ctl.createSandbox({ name: host.name('s2'), net: 'fnet', ports: [{ containerPort: 80, hostPort: 30901 }] });
  await ctl.createNetwork({ name: 'fempty', ipam: [{ subnet: '10.68.0.0/24' }] });

  const filler = fill(mnt, RESERVE_BYTES / 2);
  t.true(free(mnt) < RESERVE_BYTES, 'the file system is full for cnm');
  const kernelBefore = await kernelState();
  const recordsBefore = storeRecords(ctl);

  const refused: Array<[string, () => Promise<unknown>]> = [
    ['network create', () => ctl.createNetwork({ name: 'fnet2', ipam: [{ subnet: '10.67.0.0/24' }] })],
    ['sandbox create', () => ctl.createSandbox({ name: host.name('s3'), net: 'fnet' })],
    ['sandbox create with a port', () => ctl.createSandbox({ name: host.name('s4'), net: 'fnet', ports: [{ containerPort: 80, hostPort: 30902 }] })],
    ['connect', () => ctl.connect('bridge', s1.name)],
    ['disconnect', () => ctl.disconnect('fnet', s2.name)],
    ['sandbox rm', () => ctl.removeSandbox(s1.name)],
    ['network rm', () => ctl.removeNetwork('fempty')],
  ];
  for (const [what, op] of refused) {
    const e = await t.throwsAsync(op(), undefined, what);
    t.is((e as CnmError).code, 'ERR_NO_SPACE', `${what}: ${String(e)}`);
    t.regex(e!.message, /free some space/, what);
    t.deepEqual(await kernelState(), kernelBefore, `${what} changed nothing in the kernel`);
    t.deepEqual(storeRecords(ctl), recordsBefore, `${what} changed no record`);
  }
  // reads work, and so does the traffic of what was made
  t.deepEqual(
    ctl.listNetworks().map((n) => n.name).sort(),
    ['bridge', 'fempty', 'fnet', 'host', 'none'],
  );
  t.true(pings(s1.netns, '10.66.0.1'));
  // the CLI: the same code, exit 1
  const g = ['--state-dir', stateDir, '--host-netns', host.ns];
  const r = cnm([...g, 'network', 'create', 'fromcli'], { CNM_LOG: 'debug' });
  t.is(r.code, 1, r.stderr);
  t.is(cliErrorCode(r), 'ERR_NO_SPACE');
  t.is(cnm([...g, 'network', 'ls', '-q']).code, 0, 'ls still answers');
  t.deepEqual(await kernelState(), kernelBefore);

  rmSync(filler);
  await ctl.connect('bridge', s1.name);
  await ctl.disconnect('fnet', s2.name);
  await ctl.removeSandbox(s1.name);
  await ctl.removeSandbox(s2.name);
  await ctl.removeNetwork('fnet');
  await ctl.removeNetwork('fempty');
  const check = await ctl.checkState();
  t.true(check.clean, JSON.stringify(check));
});
