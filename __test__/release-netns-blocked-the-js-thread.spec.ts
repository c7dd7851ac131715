// Regression: releaseNetns ran on the JS thread and waited there for the
// iptables backend's lock, which an apply holds while iptables-save and
// iptables-restore run (0.5 s at 60 000 rules). It now returns a Promise at
// once and waits off the JS thread. Everything happens in a netns this file
// creates.
import { execFileSync } from 'node:child_process';

import test from 'ava';
import { skipReason } from './helpers/tools.js';

import * as native from '../index.js';

const NS = `cnmt-rel-${process.pid}`;

test.after.always(async () => {
  await native.netnsDelete(NS).catch(() => false);
});

(skipReason(['iptables-restore'], 'the iptables lock test') ? test.skip : test)('releaseNetns returns at once while an iptables apply holds the backend lock', async (t) => {
  await native.netnsCreate(NS);
  // a big filter table makes the apply's iptables-save and restore slow
  const rules = ['*filter', ':CNMT-BULK - [0:0]'];
  for (let i = 0; i < 60000; i++) rules.push(`-A CNMT-BULK -s 10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32 -j RETURN`);
  rules.push('COMMIT', '');
  execFileSync('ip', ['netns', 'exec', NS, 'iptables-restore', '--noflush'], { input: rules.join('\n') });
  await native.firewallInit('iptables', NS);

  const started = performance.now();
  let applied = 0;
  const net = { bridge: 'br0', subnets: ['10.99.0.0/24'], masquerade: true, icc: true, internal: false, tag: 'n1' };
  const applying = native.applyFirewall({ backend: 'iptables', netns: NS, addNetworks: [net] }).then(() => {
    applied = performance.now();
  });
  await new Promise((resolve) => setTimeout(resolve, 50));

  const called = performance.now();
  const releasing = native.releaseNetns(NS);
  const onJsThread = performance.now() - called;
  t.true(onJsThread < 20, `releaseNetns kept the JS thread ${onJsThread.toFixed(1)} ms`);
  t.true(releasing instanceof Promise);

  await Promise.all([applying, releasing]);
  t.true(applied - called > 100, 'the apply still held the lock long after releaseNetns was called');
  t.true(applied - started > 150, `the apply took ${(applied - started).toFixed(0)} ms, long enough to show a wait`);
  const state = await native.firewallState('iptables', NS);
  t.deepEqual(
    state.networks.map((n) => n.bridge),
    ['br0'],
  );
});
