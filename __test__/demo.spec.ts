// `cnm demo` runs end to end and leaves nothing behind (the README's demo command).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { native } from '../ts/native.js';
import { BIN, cnm } from './helpers/cli.js';
import { skipReason } from './helpers/tools.js';
import { etcdBin } from './helpers/etcd.js';

test.serial('cnm demo pings, exchanges TCP, prints a summary and cleans up', async (t) => {
  const r = cnm(['demo']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /isolated host netns cnm-demo-\d+/);
  t.regex(r.stdout, /SANDBOX\s+INTERFACE\s+ADDRESS/);
  t.regex(r.stdout, /ping .* 0% loss/);
  t.regex(r.stdout, /TCP .* 100 round trips/);
  t.regex(r.stdout, /demo OK/);
  const left = (await native.netnsList()).filter((n) => n.startsWith('cnm-demo-'));
  t.deepEqual(left, []);
  t.deepEqual(etcLeft(), [], 'no sandbox files left under /etc/netns');
});

// The README's promise: the demo needs Node, the addon and root, nothing else.
const straceSkip = skipReason(['strace'], 'the demo runs-no-program test');
(straceSkip ? test.serial.skip : test.serial)('cnm demo runs no program: no ip, ping, getent or nft (every execve traced)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cnmt-demo-'));
  const trace = join(dir, 'trace');
  try {
    const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', trace, process.execPath, BIN, 'demo'], { encoding: 'utf8', timeout: 60000 });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /name .* \(DNS, 127\.0\.0\.11\)\s+\d+\.\d+\.\d+\.\d+/);
    const programs = readFileSync(trace, 'utf8')
      .split('\n')
      .filter((l) => l.includes('execve('))
      .map((l) => /execve\("([^"]+)"/.exec(l)?.[1]);
    t.deepEqual([...new Set(programs)], [process.execPath], 'only node itself was executed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const etcLeft = () => (existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((n) => n.startsWith('cnm-demo-')) : []);

// serial: each checks that no demo namespace is left, which another demo running would make false
const withEtcd = etcdBin ? test.serial : test.serial.skip;
if (!etcdBin) console.log('cnm demo --hosts test skipped: etcd is not installed (apt-get install etcd-server; .ci/run does)');

withEtcd('cnm demo --hosts 3: three hosts in processes of their own, ping and TCP across them through VXLAN, then nothing left', async (t) => {
  const r = cnm(['demo', '--hosts', '3']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /etcd on http:\/\/127\.0\.0\.1:\d+ \(loopback/);
  t.regex(r.stdout, /a controller per host, each in a process of its own \(pids \d+, \d+, \d+\)/);
  t.regex(r.stdout, /scope global/);
  for (const [a, b] of [[1, 2], [2, 3], [3, 1]]) t.regex(r.stdout, new RegExp(`ping h${a} -> h${b} \\S+\\s+0% loss`));
  t.regex(r.stdout, /TCP h1 -> h3 .* 100 round trips/);
  t.regex(r.stdout, /Peers 192\.168\.240\.1, 192\.168\.240\.2, 192\.168\.240\.3/);
  t.regex(r.stdout, /demo OK/);
  const left = (await native.netnsList()).filter((n) => n.startsWith('cnm-demo-'));
  t.deepEqual(left, []);
  t.deepEqual(etcLeft(), [], 'no sandbox files left under /etc/netns');
  // its etcd and host processes are gone with it
  t.false(execFileSync('ps', ['-eo', 'args']).toString().split('\n').some((l) => l.includes('cnm-etcd-demo-') || l.includes('host-process.js')));
});

test('cnm demo --hosts takes 1 to 9', (t) => {
  const r = cnm(['demo', '--hosts', '0']);
  t.not(r.code, 0);
  t.regex(r.stderr, /--hosts must be 1 to 9/);
});
