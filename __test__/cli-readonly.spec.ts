// Help never acts, and commands that only read change nothing: not the state
// dir, not the host netns (links, firewall tables, sysctls), not the kernel
// objects that reconcile would remove.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { native } from '../ts/native.js';
import { CLAIM_DIR } from '../ts/ops/host.js';
import { cnm } from './helpers/cli.js';
import { type IsolatedHost, inNs, ipj, isolatedHost, sysbin } from './helpers/host.js';

let host: IsolatedHost;
test.before(async () => {
  host = await isolatedHost('ro');
});
test.after.always(async () => {
  await host?.cleanup();
});

/** Everything a command could change on a host that was never set up. */
async function snapshot(ns: string, stateDir: string) {
  return {
    stateDir: existsSync(stateDir),
    links: ipj<Array<{ ifname: string }>>(ns, 'link', 'show').map((l) => l.ifname),
    tables: inNs(ns, sysbin('nft'), 'list', 'tables'),
    ipForward: inNs(ns, 'cat', '/proc/sys/net/ipv4/ip_forward').trim(),
    // this host's claim (other test files claim their own hosts meanwhile)
    claim: existsSync(join(CLAIM_DIR, `${await native.netnsCookie(ns)}.json`)),
  };
}

test.serial('-h/--help after any command prints help and does nothing else', async (t) => {
  const fresh = join(host.tmp('help'), 'state');
  const g = ['--state-dir', fresh, '--host-netns', host.ns];
  const before = await snapshot(host.ns, fresh);
  const socket = join(host.tmp('sock'), 'cnm.sock');
  const cases: string[][] = [
    ['network', 'create', 'foo', '--help'],
    ['network', 'create', '--subnet', '10.1.0.0/24', '-h', 'foo'],
    ['network', 'rm', 'bridge', '--help'],
    ['network', 'connect', 'bridge', 'x', '-h'],
    ['sandbox', 'create', host.name('h1'), '--help'],
    ['sandbox', 'ls', '--help'],
    ['sandbox', 'rm', 'x', '-h'],
    ['run', '--name', host.name('h2'), '--help', '--', 'true'],
    ['port', 'x', '--help'],
    ['system', 'reconcile', '--help'],
    ['daemon', '--socket', socket, '--help'],
    ['demo', '--help'],
  ];
  for (const c of cases) {
    const r = cnm([...g, ...c]);
    t.is(r.code, 0, `${c.join(' ')}: ${r.stderr}`);
    t.regex(r.stdout, /^Usage: +cnm/m, c.join(' '));
    t.is(r.stderr, '', c.join(' '));
  }
  t.deepEqual(await snapshot(host.ns, fresh), before, 'nothing changed');
  t.false(existsSync(socket), 'no daemon was started');
  t.false(existsSync(`/run/netns/${host.name('h1')}`));
  t.false(existsSync(`/run/netns/${host.name('h2')}`));
});

test.serial('--help after `--` belongs to the command cnm run runs', (t) => {
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  const r = cnm([...g, 'run', '--rm', '--net', 'none', '--', 'printf', '%s', '--help']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), '--help');
});

test.serial('ls, inspect, port, reconcile --dry-run and system check on a host never set up change nothing', async (t) => {
  const fresh = join(host.tmp('ro'), 'state');
  const g = ['--state-dir', fresh, '--host-netns', host.ns];
  const before = await snapshot(host.ns, fresh);
  const runs: Array<[string[], number]> = [
    [['network', 'ls'], 0],
    [['network', 'ls', '-q', '--format', 'json'], 0],
    [['sandbox', 'ls'], 0],
    [['network', 'inspect', 'bridge'], 1],
    [['sandbox', 'inspect', 'x'], 1],
    [['port', 'x'], 1],
    [['system', 'reconcile', '--dry-run'], 0],
    [['system', 'check'], 0],
  ];
  for (const [args, code] of runs) {
    const r = cnm([...g, ...args]);
    t.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
  }
  t.deepEqual(await snapshot(host.ns, fresh), before, 'no state dir, no links, no tables, ip_forward unchanged');
});

test.serial('on a host already set up, ls and inspect run no reconcile: what it would remove stays', async (t) => {
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  const bridge = 'brro0';
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.61.0.0/24', '-o', `com.docker.network.bridge.name=${bridge}`, 'ronet']).code, 0);
  // a veth on our bridge that no endpoint accounts for: reconcile would remove it
  execFileSync('ip', ['-n', host.ns, 'link', 'add', 'orph0', 'type', 'veth', 'peer', 'name', 'orph1']);
  execFileSync('ip', ['-n', host.ns, 'link', 'set', 'orph0', 'master', bridge]);
  for (const args of [['network', 'ls'], ['network', 'inspect', 'ronet'], ['sandbox', 'ls'], ['system', 'reconcile', '--dry-run'], ['system', 'check']]) {
    const r = cnm([...g, ...args]);
    t.is(r.code, args[1] === 'check' ? 1 : 0, `${args.join(' ')}: ${r.stderr}`);
    t.is(ipj(host.ns, 'link', 'show', 'dev', 'orph0').length, 1, `${args.join(' ')} left the orphan veth alone`);
  }
  t.regex(cnm([...g, 'system', 'reconcile', '--dry-run']).stdout, /would remove orphan veth orph0/);
  t.regex(cnm([...g, 'system', 'check']).stdout, /kernel: reconcile would remove orphan veth orph0/);
  // a command that changes something reconciles first (or reconcile itself)
  t.is(cnm([...g, 'system', 'reconcile']).code, 0);
  t.is(ipj(host.ns, 'link', 'show').filter((l) => (l as { ifname: string }).ifname === 'orph0').length, 0, 'reconcile removed it');
  const clean = cnm([...g, 'system', 'check']);
  t.is(clean.code, 0, clean.stdout);
  t.regex(clean.stdout, /every checksum sound[\s\S]*no problem found/);
  t.is(cnm([...g, 'network', 'rm', 'ronet']).code, 0);
});
