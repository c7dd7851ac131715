// DNS driven by the `cnm` command alone: the first sandbox on a user-defined
// network starts a background resolver (as netavark starts aardvark-dns), names
// resolve as soon as each command returns, a killed resolver comes back with
// the next command and answers the same, a daemon takes over, and the resolver
// leaves after the last such sandbox.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dockerAt, dockerBin } from './helpers/docker-cli.js';
import test from 'ava';
import { startDaemon } from '../ts/daemon/server.js';
import { cliErrorCode, cnm } from './helpers/cli.js';
import { dig, resolverPids } from './helpers/dns.js';
import { type IsolatedHost, eventually, isolatedHost } from './helpers/host.js';
import { native } from '../ts/native.js';

let host: IsolatedHost;

test.before(async () => {
  host = await isolatedHost('dnscli');
  // no upstream server at all: names not of a network are NXDOMAIN, and nothing is ever sent out
  mkdirSync(`/etc/netns/${host.ns}`, { recursive: true });
  writeFileSync(`/etc/netns/${host.ns}/resolv.conf`, '# no nameserver\n');
});
test.after.always(async () => {
  for (const pid of resolverPids(host.stateDir)) process.kill(pid, 'SIGKILL');
  if (host) rmSync(`/etc/netns/${host.ns}`, { recursive: true, force: true });
  await host?.cleanup();
});

const run = (...args: string[]) => cnm(['--host-netns', host.ns, '--state-dir', host.stateDir, ...args], { CNM_LOG: 'debug' });

const runAsync = (...args: string[]) =>
  new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, ['bin/cnm.js', '--host-netns', host.ns, '--state-dir', host.stateDir, ...args], (err, _out, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });

/** How many answers dig gets, without blocking this process. */
const digAsync = (ns: string, name: string) =>
  new Promise<number>((resolve) => {
    execFile('ip', ['netns', 'exec', ns, 'dig', '+short', '+time=2', '+tries=1', '@127.0.0.11', name], (_e, out) => resolve(String(out).split('\n').filter(Boolean).length));
  });

test.serial('the first sandbox starts the resolver; names resolve when each command returns', async (t) => {
  t.is(run('network', 'create', '--subnet', '10.71.0.0/24', 'apps').code, 0);
  t.deepEqual(resolverPids(host.stateDir), [], 'no sandbox, no resolver');
  const a = host.name('a');
  const b = host.name('b');
  t.is(run('sandbox', 'create', '--net', 'apps', a).code, 0);
  t.is(resolverPids(host.stateDir).length, 1, 'started by the first sandbox on a user network');
  const r = run('sandbox', 'create', '--net', 'apps', '--alias', 'api', '--add-host', 'db:10.99.0.5', b);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(dig(a, ['api']).answers, ['10.71.0.3'], 'resolves right after the command');
  t.deepEqual(dig(a, [b]).answers, ['10.71.0.3']);
  t.is(resolverPids(host.stateDir).length, 1, 'still one resolver');
  // cnm run takes the same flags; the command sees the files
  const out = execFileSync(process.execPath, ['bin/cnm.js', '--host-netns', host.ns, '--state-dir', host.stateDir, 'run', '--rm', '--net', 'apps', '--hostname', 'worker', '--', 'getent', 'hosts', b, 'worker'], { encoding: 'utf8' });
  t.regex(out, /^10\.71\.0\.3\s/m);
  t.regex(out, /^10\.71\.0\.4\s+worker/m);
  // --link: Docker's variables in the command's environment
  const env = execFileSync(process.execPath, ['bin/cnm.js', '--host-netns', host.ns, '--state-dir', host.stateDir, 'run', '--rm', '--net', 'apps', '--link', `${b}:peer`, '--', 'env'], { encoding: 'utf8' });
  t.regex(env, new RegExp(`^PEER_NAME=/cnm-[0-9a-f]+/peer$`, 'm'));
  // bad input: coded error, nothing made
  const bad = run('sandbox', 'create', '--net', 'apps', '--add-host', 'nohost', host.name('bad'));
  t.not(bad.code, 0);
  t.is(cliErrorCode(bad), 'ERR_INVALID_ARGUMENT');
  t.false(await native.netnsExists(host.name('bad')));
  const dns = run('sandbox', 'create', '--net', 'apps', '--dns', '1.2.3', host.name('bad'));
  t.is(cliErrorCode(dns), 'ERR_INVALID_ARGUMENT');
});

test.serial('a killed resolver comes back with the next command and answers the same', async (t) => {
  const a = host.name('a');
  const [pid] = resolverPids(host.stateDir);
  process.kill(pid!, 'SIGKILL');
  t.true(await eventually(() => resolverPids(host.stateDir).length === 0));
  t.is(dig(a, ['api'], undefined, 1).status, 'TIMEOUT');
  t.is(run('sandbox', 'create', '--net', 'apps', host.name('c')).code, 0);
  t.is(resolverPids(host.stateDir).length, 1);
  t.deepEqual(dig(a, ['api']).answers, ['10.71.0.3'], 'rebuilt from the store');
  t.deepEqual(dig(a, [host.name('c')]).answers.length, 1);
});

test.serial('a daemon takes DNS over from the background resolver, and gives it back', async (t) => {
  const a = host.name('a');
  const daemon = await startDaemon({ socket: `${host.tmp('sock')}/cnm.sock`, controller: { hostNetns: host.ns, stateDir: host.stateDir } });
  try {
    t.true(await eventually(() => resolverPids(host.stateDir).length === 0), 'the background resolver gave way');
    t.true(daemon.controller.dnsStats()!.sandboxes >= 3);
    t.is(await digAsync(a, 'api'), 1, 'the daemon answers');
    // a command while the daemon serves: the daemon's resolver has it before the command returns
    // (run without blocking this process: the daemon serving the resolver lives in it)
    t.is((await runAsync('sandbox', 'create', '--net', 'apps', '--alias', 'late', host.name('d'))).code, 0);
    t.is(await digAsync(a, 'late'), 1);
    t.deepEqual(resolverPids(host.stateDir), [], 'no background resolver while the daemon serves');
    if (dockerBin) {
      // the stock docker CLI: network connect --alias --link, answered by the daemon's resolver
      const [b, d] = [host.name('b'), host.name('d')];
      t.is((await runAsync('network', 'create', 'more')).code, 0);
      const refused = await dockerAt(daemon.socket, 'network', 'connect', '--link', 'nosuch:x', 'more', d);
      t.not(refused.code, 0);
      t.regex(refused.err, /cannot link to nosuch/);
      t.is((await runAsync('network', 'connect', 'more', b)).code, 0);
      const r = await dockerAt(daemon.socket, 'network', 'connect', '--alias', 'more-api', '--link', `${b}:bee`, 'more', d);
      t.is(r.code, 0, r.err);
      t.deepEqual(daemon.controller.getSandbox(d).inspect().Links, [`/${b}:/${d}/bee`]);
      t.is(await digAsync(b, 'more-api'), 1, 'its alias on the new network');
      t.true(readFileSync(`/etc/netns/${d}/hosts`, 'utf8').includes('\tbee '), 'the link in its hosts file');
    } else t.log('docker CLI not installed: its part skipped (.ci/run installs it)');
  } finally {
    await daemon.close();
  }
  t.is(run('sandbox', 'rm', host.name('d')).code, 0);
  t.is(resolverPids(host.stateDir).length, 1, 'the next command starts one again');
  t.is(dig(a, ['late']).status, 'NXDOMAIN');
});

test.serial('the resolver leaves after the last sandbox on a user-defined network', async (t) => {
  for (const s of ['a', 'b', 'c']) t.is(run('sandbox', 'rm', host.name(s)).code, 0);
  t.true(await eventually(() => resolverPids(host.stateDir).length === 0, 20_000), 'gone within about ten seconds');
});
