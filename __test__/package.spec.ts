// The package as users get it: `npm pack` of this tree (built by the test
// command), installed into an empty directory by npm with no Rust toolchain on
// PATH; then the installed `cnm` command, `import` and `require`, and a network
// with two sandboxes that ping each other in an isolated host netns, all through
// the installed copy.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import test from 'ava';
import { type IsolatedHost, isolatedHost } from './helpers/host.js';

const root = join(import.meta.dirname, '..');
let host: IsolatedHost;
let dir: string;
let packed: string;

/** PATH without any directory that holds cargo or rustc: the install must not need them. */
const PATH = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((d) => !/\.cargo|rustup/.test(d))
  .join(delimiter);
const env = { ...process.env, PATH, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
const run = (cmd: string, args: string[], cwd: string, timeout = 120_000) => execFileSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });

test.before(async () => {
  host = await isolatedHost('pkg');
  dir = mkdtempSync(join(tmpdir(), 'cnm-pkg-'));
  // the tree is built by the test command already: pack it as it is
  const out = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root);
  packed = join(dir, (JSON.parse(out) as Array<{ filename: string }>)[0]!.filename);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'cnm-install-check', private: true }));
  run('npm', ['install', '--prefer-offline', '--no-save', packed], dir, 300_000);
});
test.after.always(async () => {
  await host?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball ships the code, the addon and the licence, and no source maps into sources it lacks', (t) => {
  const files = execFileSync('tar', ['tzf', packed], { encoding: 'utf8' }).split('\n');
  for (const f of ['package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/cli/main.js', 'package/dist/cli-bundle/main.js', 'package/bin/cnm.js', 'package/index.js', 'package/LICENSE', 'package/package.json']) {
    t.true(files.includes(f), f);
  }
  t.true(
    files.some((f) => /^package\/cnm\.linux-[a-z0-9]+-(gnu|musl)\.node$/.test(f)),
    'the native addon',
  );
  t.false(
    files.some((f) => f.endsWith('.map') || f.startsWith('package/ts/') || f.startsWith('package/crates/')),
    files.filter((f) => f.endsWith('.map')).slice(0, 3).join(),
  );
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { repository?: unknown; license?: string };
  t.truthy(pkg.repository);
  t.is(pkg.license, 'Apache-2.0');
});

test('installed without Rust: the command, import and require work', (t) => {
  t.throws(() => run('sh', ['-c', 'command -v cargo'], dir), undefined, 'no cargo on this PATH');
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  t.is(run('npx', ['--no-install', 'cnm', '--version'], dir).trim(), `cnm version ${version}`);
  t.is(run('node', ['--input-type=module', '-e', "const m = await import('cnm'); console.log(typeof m.NetworkController)"], dir).trim(), 'function');
  t.is(run('node', ['-e', "console.log(typeof require('cnm').NetworkController)"], dir).trim(), 'function');
});

test('the installed package makes a network whose sandboxes ping each other, in an isolated netns', (t) => {
  const script = join(dir, 'smoke.mjs');
  writeFileSync(
    script,
    `import { execFileSync } from 'node:child_process';
import { NetworkController } from 'cnm';
const [hostNetns, stateDir, a, b] = process.argv.slice(2);
const ctl = await NetworkController.open({ hostNetns, stateDir });
await ctl.createNetwork({ name: 'pk', ipam: [{ subnet: '10.79.0.0/24' }] });
await ctl.createSandbox({ name: a, net: 'pk' });
const sb = await ctl.createSandbox({ name: b, net: 'pk' });
const ip = sb.inspect().Networks.pk.IPAddress;
execFileSync('ip', ['netns', 'exec', a, 'ping', '-c', '1', '-W', '2', ip]);
await ctl.removeSandbox(a);
await ctl.removeSandbox(b);
await ctl.removeNetwork('pk');
await ctl.close();
console.log('pinged ' + ip);
`,
  );
  const out = run('node', [script, host.ns, host.tmp('pkgstate'), host.name('a'), host.name('b')], dir);
  t.is(out.trim(), 'pinged 10.79.0.3');
});
