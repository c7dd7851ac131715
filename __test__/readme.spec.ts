// The README's library example must run as written.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the README library example runs', (t) => {
  const readme = readFileSync(`${root}/README.md`, 'utf8');
  const m = /## Library\s+```js\n([\s\S]*?)```/.exec(readme);
  t.truthy(m, 'README has a js example under "## Library"');
  // a file inside the package resolves `import … from 'cnm'` to this package itself
  const file = `${root}/__test__/.readme-example.mjs`;
  writeFileSync(file, m![1]!);
  try {
    const out = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 30000 });
    t.regex(out, /^10\.1\.0\.2 -> 10\.1\.0\.3$/m);
  } finally {
    rmSync(file, { force: true });
    rmSync('/tmp/cnm-readme', { recursive: true, force: true });
  }
});
