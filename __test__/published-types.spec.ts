// The published declarations (dist/*.d.ts) hold no @internal member, and a
// user's strict TypeScript compiles against them.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = fileURLToPath(new URL('..', import.meta.url));

function declarations(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? declarations(join(dir, d.name)) : d.name.endsWith('.d.ts') ? [join(dir, d.name)] : [],
  );
}

test('no @internal member is published', (t) => {
  const files = declarations(join(root, 'dist'));
  t.true(files.some((f) => f.endsWith('controller.d.ts')), 'dist is built');
  const leaks = files.filter((f) => readFileSync(f, 'utf8').includes('@internal'));
  t.deepEqual(leaks, []);
  const ctl = readFileSync(join(root, 'dist', 'controller.d.ts'), 'utf8');
  for (const member of ['readonly store', 'readonly drivers', 'readonly firewall', 'endpointsOf(']) t.false(ctl.includes(member), member);
});

test("a user's strict TypeScript compiles against the published types", (t) => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = ['--noEmit', '--strict', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--target', 'ES2022', '--types', 'node', join(root, '__test__', 'fixtures', 'consumer.ts')];
  let out = '';
  try {
    out = execFileSync(process.execPath, [tsc, ...args], { encoding: 'utf8', cwd: root });
  } catch (e) {
    out = String((e as { stdout?: string }).stdout ?? e);
  }
  t.is(out.trim(), '');
});
