// `cnm network ls` reads a listing kept beside the store while nothing was
// committed since it was made: it must never show a stale list, whoever commits
// (another process, the library, the daemon), and must do without the file.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { LISTING_FILE } from '../ts/cli/network-ls.js';
import { NetworkController } from '../ts/controller.js';
import { STORE_FILE, committedStamp } from '../ts/store/lmdb-meta.js';
import { cnm } from './helpers/cli.js';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
test.before(async () => {
  host = await isolatedHost('nls');
});
test.after.always(async () => {
  await host?.cleanup();
});

const names = (g: string[], ...extra: string[]) => {
  const r = cnm([...g, 'network', 'ls', '--format', '{{.Name}}', ...extra]);
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout.trim().split('\n').filter(Boolean);
};

test.serial('every commit changes the stamp read from the meta pages, one transaction at a time', async (t) => {
  const ctl = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir });
  try {
    await ctl.ready();
    const file = join(ctl.hostDir, STORE_FILE);
    const seen = new Set<string>();
    let last = committedStamp(file);
    t.truthy(last, 'the meta pages are read');
    for (let i = 0; i < 40; i++) {
      await ctl.store.txn((tx) => tx.put(`test/stamp${i % 3}`, { i }));
      const now = committedStamp(file);
      t.truthy(now);
      t.not(now, last, `commit ${i} changed the stamp`);
      t.false(seen.has(now!), 'never an earlier one again');
      const [ino, id] = now!.split(':');
      t.is(BigInt(id!), BigInt(last!.split(':')[1]!) + 1n, 'one transaction further');
      t.is(ino, last!.split(':')[0]);
      seen.add(now!);
      last = now;
    }
    await ctl.store.txn((tx) => {
      for (let i = 0; i < 3; i++) tx.del(`test/stamp${i}`);
    });
  } finally {
    await ctl.close();
  }
});

test.serial('ls follows every change made by other processes, never a stale listing', async (t) => {
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  const ctl = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir });
  try {
    await ctl.ready();
    const base = names(g);
    t.deepEqual(base, ['none', 'host', 'bridge']);
    t.deepEqual(names(g), base, 'the same from the listing');
    for (let i = 0; i < 6; i++) {
      await ctl.createNetwork({ name: `nls${i}`, ipam: [{ subnet: `10.62.${i}.0/24` }] });
      t.deepEqual(names(g), [...base, ...Array.from({ length: i + 1 }, (_, k) => `nls${k}`)], `after create ${i}`);
    }
    // a change that is not a network's (a sandbox) leaves the list as it was
    await ctl.createSandbox({ name: host.name('nlsb'), net: 'nls0' });
    t.is(names(g).length, base.length + 6);
    for (let i = 5; i >= 1; i--) {
      await ctl.removeNetwork(`nls${i}`);
      t.false(names(g).includes(`nls${i}`), `after rm ${i}`);
    }
    t.deepEqual(names(g, '-f', 'name=nls'), ['nls0']);
    t.deepEqual(names(g, '-f', 'dangling=true'), [], 'nls0 has an endpoint');
    await ctl.removeSandbox(host.name('nlsb'));
    t.deepEqual(names(g, '-f', 'dangling=true'), ['nls0']);
  } finally {
    await ctl.close();
  }
});

test.serial('the listing is what a hit shows, a commit makes it stale, and a damaged one is read around', async (t) => {
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  names(g);
  const file = join(host.stateDir, `netns-${host.ns}`, LISTING_FILE);
  const listing = JSON.parse(readFileSync(file, 'utf8')) as { stamp: string; networks: Array<{ name: string }> };
  // a listing whose stamp still matches is shown as it is: the file is what a hit reads
  listing.networks[0]!.name = 'from-the-listing';
  writeFileSync(file, JSON.stringify(listing));
  t.is(names(g)[0], 'from-the-listing');
  // any commit makes it stale
  const ctl = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir });
  try {
    await ctl.createNetwork({ name: 'nlsx', ipam: [{ subnet: '10.63.0.0/24' }] });
  } finally {
    await ctl.close();
  }
  t.is(names(g)[0], 'none');
  t.true(names(g).includes('nlsx'));
  writeFileSync(file, '{ not json');
  const r = cnm([...g, 'network', 'ls', '-q']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim().split('\n').length, names(g).length, 'read from the store instead');
  t.notThrows(() => JSON.parse(readFileSync(file, 'utf8')), 'and kept again');
});
