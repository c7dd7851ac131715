// Runs the ava suite with TAP output and ends with the plain summary line
// "N passed, N failed, N skipped" that CI reads. Exit code is ava's.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ava = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url));
const child = spawn(process.execPath, [ava, '--tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
const counts = { pass: 0, fail: 0, skip: 0, todo: 0 };
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail += d.toString();
  const lines = tail.split('\n');
  tail = lines.pop() ?? '';
  for (const l of lines) {
    const m = /^# (pass|fail|skip|todo)\s+(\d+)/.exec(l);
    if (m) counts[m[1]] = Number(m[2]);
  }
});
child.on('exit', (code, sig) => {
  console.log(`\n${counts.pass} passed, ${counts.fail} failed, ${counts.skip + counts.todo} skipped`);
  process.exit(code ?? (sig ? 1 : 0));
});
