// The state dir and store refuse to run on anything suspicious, and never reset
// a damaged store silently.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
test.before(async () => {
  host = await isolatedHost('safe');
});
test.after.always(async () => {
  await host?.cleanup();
});

const open = (stateDir: string) => NetworkController.open({ hostNetns: host.ns, stateDir });

test.serial('a new state dir is created 0700', async (t) => {
  const dir = join(host.tmp('safe'), 'state');
  const ctl = await open(dir);
  t.false(existsSync(dir), 'opening alone creates nothing');
  await ctl.ready();
  await ctl.close();
  t.is(statSync(dir).mode & 0o777, 0o700);
  t.is(statSync(join(dir, `netns-${host.ns}`)).mode & 0o777, 0o700);
  rmSync(dir, { recursive: true, force: true });
});

test.serial('a world-writable or symlinked state dir is refused', async (t) => {
  const base = host.tmp('safe');
  const ww = join(base, 'ww');
  mkdirSync(ww);
  chmodSync(ww, 0o777);
  const e = await t.throwsAsync(open(ww));
  t.is((e as CnmError).code, 'ERR_PERMISSION');
  t.regex(e!.message, /world-writable/);
  const real = join(base, 'real');
  mkdirSync(real, { mode: 0o700 });
  const link = join(base, 'link');
  symlinkSync(real, link);
  const e2 = await t.throwsAsync(open(link));
  t.is((e2 as CnmError).code, 'ERR_PERMISSION');
  t.regex(e2!.message, /symlink/);
  rmSync(base, { recursive: true, force: true });
});

test.serial('a truncated or damaged store file stops cnm with an error naming the file; nothing is overwritten', async (t) => {
  for (const damage of ['truncate', 'garbage'] as const) {
    const dir = host.tmp('safe');
    const ctl = await open(dir);
    await ctl.createNetwork({ name: 'keep', ipam: [{ subnet: '10.160.0.0/24' }] });
    await ctl.removeNetwork('keep');
    await ctl.close();
    const file = join(dir, `netns-${host.ns}`, 'cnm.mdb');
    t.true(existsSync(file));
    if (damage === 'truncate') truncateSync(file, 100);
    else writeFileSync(file, Buffer.alloc(64 * 1024, 0x5a));
    const bytes = readFileSync(file);
    const e = await t.throwsAsync(open(dir), undefined, damage);
    t.true(e instanceof CnmError, damage);
    t.is((e as CnmError).code, 'ERR_STORE', damage);
    t.true(e!.message.includes(file), `${damage}: ${e!.message}`);
    t.deepEqual(readFileSync(file), bytes, `${damage}: the file is left as it was`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('names that would escape /run/netns or the state dir are rejected', async (t) => {
  const ctl = await open(host.stateDir);
  for (const name of ['../x', 'a/b', '..', '.', 'x\0y', ' x', '-x']) {
    await t.throwsAsync(ctl.createSandbox({ name }), { code: 'ERR_INVALID_ARGUMENT' } as never, JSON.stringify(name));
    // a network name is a record's field only (Docker takes any name): none of these escapes anything
    if (name.includes('\0')) {
      await t.throwsAsync(ctl.createNetwork({ name }), { code: 'ERR_INVALID_ARGUMENT' } as never, JSON.stringify(name));
    } else {
      await ctl.createNetwork({ name, internal: true });
      await ctl.removeNetwork(name);
    }
  }
  await t.throwsAsync(NetworkController.open({ hostNetns: '../etc', stateDir: host.stateDir }), { code: 'ERR_INVALID_ARGUMENT' } as never);
  t.false(existsSync('/run/x'));
  await ctl.close();
});
