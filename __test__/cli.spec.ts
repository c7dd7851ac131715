// The `cnm` command end to end, in a child process like a user runs it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { type IsolatedHost, inNs, isolatedHost, pings } from './helpers/host.js';
import { cnm } from './helpers/cli.js';

let host: IsolatedHost;
let g: string[];
/** `--format json`: one object per line, as docker prints it */
const jsonLines = (out: string): unknown[] => out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
test.before(async () => {
  host = await isolatedHost('cli');
  g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
});
test.after.always(async () => {
  await host?.cleanup();
});

test.serial('network create/ls/inspect/connect/disconnect/rm through the CLI', (t) => {
  let r = cnm([...g, 'network', 'create', '--subnet', '10.71.0.0/24', '--gateway', '10.71.0.254', '--ip-range', '10.71.0.32/27', '--label', 'a=b', '-o', 'com.docker.network.driver.mtu=1450', 'clinet']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout.trim(), /^[0-9a-f]{64}$/);
  r = cnm([...g, 'network', 'ls']);
  t.regex(r.stdout, /NETWORK ID\s+NAME\s+DRIVER\s+SCOPE/);
  t.regex(r.stdout, /clinet\s+bridge\s+local/);
  r = cnm([...g, 'network', 'ls', '-q']);
  t.is(r.stdout.trim().split('\n').length, 4);
  const ins = JSON.parse(cnm([...g, 'network', 'inspect', 'clinet']).stdout)[0];
  t.deepEqual(ins.IPAM.Config, [{ Subnet: '10.71.0.0/24', Gateway: '10.71.0.254', IPRange: '10.71.0.32/27' }]);
  t.deepEqual(ins.Labels, { a: 'b' });
  t.is(ins.Options['com.docker.network.driver.mtu'], '1450');
  const s1 = host.name('s1');
  const s2 = host.name('s2');
  t.is(cnm([...g, 'sandbox', 'create', '--net', 'clinet', s1]).code, 0);
  t.is(cnm([...g, 'sandbox', 'create', '--net', 'none', s2]).code, 0);
  r = cnm([...g, 'sandbox', 'create', s2]);
  t.not(r.code, 0);
  t.regex(r.stderr, /^Error: /);
  // connect a bridge-mode sandbox to a second network with a static IP and an alias
  const s3 = host.name('s3');
  t.is(cnm([...g, 'sandbox', 'create', s3]).code, 0, 'default network is bridge');
  r = cnm([...g, 'network', 'connect', '--ip', '10.71.0.7', '--alias', 'db', 'clinet', s3]);
  t.is(r.code, 0, r.stderr);
  const sb = JSON.parse(cnm([...g, 'sandbox', 'inspect', s3]).stdout)[0];
  t.is(sb.Networks.clinet.IPAddress, '10.71.0.7');
  t.deepEqual(sb.Networks.clinet.Aliases, ['db']);
  t.is(sb.Networks.clinet.InterfaceName, 'eth1');
  t.true(pings(s1, '10.71.0.7'));
  const containers = JSON.parse(cnm([...g, 'network', 'inspect', 'clinet']).stdout)[0].Containers;
  t.is(Object.keys(containers).length, 2);
  r = cnm([...g, 'network', 'rm', 'clinet']);
  t.not(r.code, 0);
  t.regex(r.stderr, /Error: .*active endpoints/);
  t.is(cnm([...g, 'network', 'disconnect', 'clinet', s3]).code, 0);
  r = cnm([...g, 'network', 'disconnect', 'clinet', s3]);
  t.not(r.code, 0);
  t.regex(r.stderr, /not connected/);
  const ls = jsonLines(cnm([...g, 'sandbox', 'ls', '--format', 'json']).stdout) as Array<{ Name: string }>;
  t.deepEqual(ls.map((s) => s.Name).sort(), [s1, s2, s3].sort());
  t.is(cnm([...g, 'sandbox', 'rm', s1, s2, s3]).code, 0);
  t.is(cnm([...g, 'network', 'rm', 'clinet']).code, 0);
  t.is(jsonLines(cnm([...g, 'network', 'ls', '--format', 'json']).stdout).length, 3);
});

test.serial('an internal network gives no default route', (t) => {
  t.is(cnm([...g, 'network', 'create', '--internal', '--subnet', '10.72.0.0/24', 'inner']).code, 0);
  const s = host.name('in');
  t.is(cnm([...g, 'sandbox', 'create', '--net', 'inner', s]).code, 0);
  t.notRegex(inNs(s, 'ip', 'route', 'show'), /default/);
  t.true(JSON.parse(cnm([...g, 'network', 'inspect', 'inner']).stdout)[0].Internal);
  t.is(cnm([...g, 'sandbox', 'rm', s]).code, 0);
  t.is(cnm([...g, 'network', 'rm', 'inner']).code, 0);
});

test.serial('cnm run runs a command inside a fresh sandbox and --rm removes it', (t) => {
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.73.0.0/24', 'runnet']).code, 0);
  const name = host.name('run');
  const r = cnm([...g, 'run', '--rm', '--name', name, '--net', 'runnet', '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /inet 10\.73\.0\.2\/24/);
  t.false(existsSync(`/run/netns/${name}`));
  // the exit code of the command comes back
  const f = cnm([...g, 'run', '--rm', '--net', 'runnet', '--', 'sh', '-c', 'exit 7']);
  t.is(f.code, 7);
  t.is(jsonLines(cnm([...g, 'sandbox', 'ls', '--format', 'json']).stdout).length, 0);
  t.is(cnm([...g, 'network', 'rm', 'runnet']).code, 0);
});

test.serial('errors print "Error: <message>" with a non-zero exit code', (t) => {
  const cases = [
    ['network', 'create', '--subnet', '10.74.0.1/24', 'x'],
    ['network', 'create', '--subnet', 'nope', 'x'],
    ['network', 'create', ''],
    ['network', 'create', '--driver', 'nosuch', 'x'],
    ['network', 'create', '--gateway', '10.0.0.1', 'x'],
    ['network', 'create', '--nosuchflag', 'x'],
    ['network', 'inspect', 'nosuch'],
    ['network', 'rm', 'bridge'],
    ['network', 'connect', 'bridge', 'nosuch'],
    ['sandbox', 'create', '--net', 'nosuch', host.name('zz')],
    ['sandbox', 'rm', 'nosuch'],
    ['frobnicate'],
  ];
  for (const c of cases) {
    const r = cnm([...g, ...c]);
    t.not(r.code, 0, c.join(' '));
    t.regex(r.stderr, /^Error: \S/m, c.join(' '));
  }
  t.false(existsSync(`/run/netns/${host.name('zz')}`));
});

test.serial('--bip and --bridge together are refused, as in Docker', (t) => {
  const r = cnm(['--state-dir', host.stateDir, '--host-netns', host.ns, '--bip', '10.75.0.1/24', '--bridge', 'br0', 'network', 'ls']);
  t.not(r.code, 0);
  t.regex(r.stderr, /mutually exclusive/);
});

test.serial('-p publishes ports; cnm port lists them like docker port', (t) => {
  const s = host.name('pp');
  let r = cnm([...g, 'sandbox', 'create', '-p', '8080:80', '-p', '127.0.0.1:5353:53/udp', '-p', '[::1]:8082:82', s]);
  t.is(r.code, 0, r.stderr);
  r = cnm([...g, 'port', s]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['53/udp -> 127.0.0.1:5353', '80/tcp -> 0.0.0.0:8080', '82/tcp -> [::1]:8082']);
  // the [::1] port's proxy outlives the command that started it
  t.true(readdirSync(join(host.stateDir, `netns-${host.ns}`, 'proxies')).length === 1, 'one proxy running');
  t.is(cnm([...g, 'port', s, '80']).stdout.trim(), '0.0.0.0:8080');
  r = cnm([...g, 'port', s, '81']);
  t.not(r.code, 0);
  t.regex(r.stderr, /^Error: no public port/);
  const ins = JSON.parse(cnm([...g, 'sandbox', 'inspect', s]).stdout)[0];
  t.deepEqual(ins.Ports['80/tcp'], [{ HostIp: '0.0.0.0', HostPort: '8080' }]);
  r = cnm([...g, 'sandbox', 'create', '-p', '8080:80', host.name('pp2')]);
  t.not(r.code, 0);
  t.regex(r.stderr, /port is already allocated/);
  r = cnm([...g, 'sandbox', 'create', '-p', '80/icmp', host.name('pp3')]);
  t.regex(r.stderr, /^Error: invalid protocol/);
  t.is(cnm([...g, 'sandbox', 'rm', s]).code, 0);
  t.deepEqual(readdirSync(join(host.stateDir, `netns-${host.ns}`, 'proxies')), [], 'its proxy went with it');
  r = cnm(['--iptables=false', '--icc=false', ...g, 'network', 'ls']);
  t.not(r.code, 0);
  t.regex(r.stderr, /icc/i);
  r = cnm(['--firewall', 'pf', ...g, 'network', 'ls']);
  t.regex(r.stderr, /^Error: unknown firewall backend/);
});

test.serial('--default-address-pool replaces the pools automatic subnets come from', async (t) => {
  const h2 = await isolatedHost('clipool');
  try {
    const g2 = ['--state-dir', h2.stateDir, '--host-netns', h2.ns, '--default-address-pool', 'base=10.123.0.0/16,size=24'];
    for (const n of ['p1', 'p2']) t.is(cnm([...g2, 'network', 'create', n]).code, 0);
    const subnets = ['bridge', 'p1', 'p2'].map((n) => JSON.parse(cnm([...g2, 'network', 'inspect', n]).stdout)[0].IPAM.Config[0].Subnet);
    t.deepEqual(subnets, ['10.123.0.0/24', '10.123.1.0/24', '10.123.2.0/24']);
    const r = cnm(['--state-dir', h2.stateDir, '--host-netns', h2.ns, '--default-address-pool', 'base=10.0.0.0/8', 'network', 'ls']);
    t.not(r.code, 0);
    t.regex(r.stderr, /^Error: invalid --default-address-pool/);
  } finally {
    await h2.cleanup();
  }
});

test.serial('cnm system reconcile [--dry-run] reports and removes what belongs to nothing', (t) => {
  const bridge = JSON.parse(cnm([...g, 'network', 'inspect', 'bridge']).stdout)[0].Options['com.docker.network.bridge.name'];
  // a veth on our bridge that no endpoint accounts for, as a crash could leave
  execFileSync('ip', ['-n', host.ns, 'link', 'add', 'vethorphan0', 'type', 'veth', 'peer', 'name', 'vethorphan1']);
  execFileSync('ip', ['-n', host.ns, 'link', 'set', 'vethorphan0', 'master', bridge]);
  let r = cnm([...g, 'system', 'reconcile', '--dry-run']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /would remove orphan veth vethorphan0/);
  t.regex(execFileSync('ip', ['-n', host.ns, 'link', 'show'], { encoding: 'utf8' }), /vethorphan0/, 'a dry run changes nothing');
  r = cnm([...g, 'system', 'reconcile']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^remove orphan veth vethorphan0/m);
  t.notRegex(execFileSync('ip', ['-n', host.ns, 'link', 'show'], { encoding: 'utf8' }), /vethorphan/);
  t.regex(cnm([...g, 'system', 'reconcile']).stdout, /nothing to do/);
});

test.serial('usage errors exit 125 and name the nearest command or flag; --version prints the version', (t) => {
  const version = (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
  for (const v of [['--version'], ['-v'], ['version']]) {
    const r = cnm(v);
    t.is(r.code, 0);
    t.is(r.stdout.trim(), `cnm version ${version}`);
  }
  const cases: Array<[string[], RegExp | null]> = [
    [['netwrk', 'ls'], /Did you mean this\?\s+network/],
    [['network', 'lss'], /Did you mean this\?\s+ls/],
    [['network', 'ls', '--formt', 'json'], /Did you mean this\?\s+--format/],
    [['--stat-dir', '/tmp/x', 'network', 'ls'], /Did you mean this\?\s+--state-dir/],
    [['frobnicate'], null],
    [['network', 'create'], /needs exactly one NAME/],
    [['network', 'connect', 'onlyone'], /needs NETWORK and SANDBOX/],
  ];
  for (const [args, re] of cases) {
    const r = cnm([...g, ...args]);
    t.is(r.code, 125, args.join(' '));
    if (re) t.regex(r.stderr, re, args.join(' '));
  }
  // a failed operation is not a usage error
  t.is(cnm([...g, 'network', 'inspect', 'nosuch']).code, 1);
});

test.serial('--log-level debug writes JSON log lines on stderr, with the error code and cause', (t) => {
  const r = cnm([...g, '--log-level', 'debug', 'network', 'inspect', 'nosuchnet']);
  t.is(r.code, 1);
  const line = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; msg: string; err?: { code?: string } })
    .find((l) => l.msg === 'command failed' || l.err?.code === 'ERR_NETWORK_NOT_FOUND');
  t.truthy(line, r.stderr);
  t.is(cnm([...g, '--log-level', 'loud', 'network', 'ls']).code, 125);
});

test.serial('cnm completion bash completes commands, subcommands, flags and network names', (t) => {
  const script = cnm(['completion', 'bash']).stdout;
  // `cnm` on PATH, as an installed package puts it
  const binDir = host.tmp('bin');
  symlinkSync(join(import.meta.dirname, '..', 'bin', 'cnm.js'), join(binDir, 'cnm'));
  const complete = (...words: string[]) =>
    execFileSync('bash', ['-c', `eval "$CNM_COMPLETION"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _cnm; echo "\${COMPREPLY[@]}"`], {
      encoding: 'utf8',
      env: { ...process.env, CNM_COMPLETION: script, PATH: `${binDir}:${process.env.PATH}`, CNM_HOST_NETNS: host.ns, CNM_STATE_DIR: host.stateDir },
    }).trim();
  t.is(complete('cnm', 'netw'), 'network');
  t.is(complete('cnm', 'network', 'disc'), 'disconnect');
  t.is(complete('cnm', 'network', 'connect', '--mac'), '--mac-address');
  t.true(complete('cnm', 'network', 'inspect', 'b').split(' ').includes('bridge'), 'names from cnm itself');
  for (const shell of ['zsh', 'fish']) t.regex(cnm(['completion', shell]).stdout, /cnm/);
  t.is(cnm(['completion', 'tcsh']).code, 125);
});

test.serial('--format takes Go templates as docker does: fields, table, json, functions, range and if', (t) => {
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.87.0.0/24', '--label', 'tier=web', 'fmtnet']).code, 0);
  const out = (...a: string[]) => cnm([...g, ...a]).stdout.trimEnd();
  t.is(out('network', 'ls', '--filter', 'name=fmtnet', '--format', '{{.Name}} {{.Driver}} {{upper .Scope}}'), 'fmtnet bridge LOCAL');
  const table = out('network', 'ls', '--filter', 'name=fmtnet', '--format', 'table {{.ID}}\\t{{.Name}}').split('\n');
  t.regex(table[0]!, /^NETWORK ID +NAME$/);
  t.regex(table[1]!, /^[0-9a-f]{12} +fmtnet$/);
  t.deepEqual(JSON.parse(out('network', 'ls', '--filter', 'name=fmtnet', '--format', 'json')) as { Name: string }, { ...(JSON.parse(out('network', 'ls', '--filter', 'name=fmtnet', '--format', '{{json .}}')) as object) });
  t.is(out('network', 'inspect', '-f', '{{index .Labels "tier"}} {{len .IPAM.Config}}', 'fmtnet'), 'web 1');
  t.is(out('network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Subnet}}{{end}} {{if .Internal}}internal{{else}}open{{end}} {{json .Options}}', 'fmtnet'), '10.87.0.0/24 open {}');
  t.is(out('network', 'inspect', '--format', '{{.Nope}}', 'fmtnet'), '<no value>');
  t.is(cnm([...g, 'network', 'inspect', '--format', '{{range .X}}', 'fmtnet']).code, 125);
  t.is(cnm([...g, 'network', 'rm', 'fmtnet']).code, 0);
});

test.serial('help describes every flag of every command, and every flag it describes is one the command takes', async (t) => {
  const { HELP } = await import('../ts/cli/help.js');
  for (const [cmd, h] of Object.entries(HELP)) {
    const words = cmd.split(' ');
    const r = cnm([...words, '--help']);
    t.is(r.code, 0, cmd);
    t.true(r.stdout.startsWith(`Usage:  ${h.usage}`), `${cmd}: ${r.stdout.slice(0, 80)}`);
    for (const [, long, type, desc] of h.flags) {
      t.true(r.stdout.includes(`--${long}`) && r.stdout.includes(desc), `${cmd} --${long} is described`);
      // the parser takes the flag: a bogus one after it is the first thing it refuses
      const flag = type === '' ? [`--${long}`] : [`--${long}=x`];
      const p = cnm([...g, ...words, ...flag, '--bogus-zz']);
      t.regex(p.stderr, /--bogus-zz/, `${cmd} takes --${long}: ${p.stderr.split('\n')[0]}`);
    }
  }
  // help never acts
  t.is(cnm([...g, 'network', 'create', 'helpnet', '--help']).code, 0);
  t.false(jsonLines(cnm([...g, 'network', 'ls', '--format', 'json']).stdout).some((n) => (n as { Name: string }).Name === 'helpnet'));
});

test.serial('a command reconciles when something asks for it: after a dead process left an operation half-done, not each time', async (t) => {
  const { NetworkController } = await import('../ts/controller.js');
  // a clean host: the next command has nothing to reconcile
  t.is(cnm([...g, 'network', 'create', '--subnet', '10.88.0.0/24', 'rcn']).code, 0);
  const probe = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir });
  const { needsReconcile } = await import('../ts/reconcile-needed.js');
  t.false(await needsReconcile(probe.ctx));
  await probe.close();
  // a process dies in the middle of a network create: its record is left owned by a dead pid
  const r = cnm([...g, 'network', 'create', '--subnet', '10.88.1.0/24', 'rcn2'], { CNM_FAULT: 'network.create.kernel:crash' });
  t.not(r.code, 0);
  const after = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir });
  t.true(await needsReconcile(after.ctx), 'the half-made network asks for a reconcile');
  await after.close();
  // the next command reconciles: the half-made network is rolled back
  t.is(cnm([...g, 'network', 'rm', 'rcn']).code, 0);
  t.false(cnm([...g, 'network', 'ls', '--format', '{{.Name}}']).stdout.includes('rcn2'));
});
