// Runs the ava suite with TAP output and ends with the plain summary line
// "N passed, N failed, N skipped" that CI reads. Exit code is ava's. The counts
// come from ava's own summary; when ava ends without one (its reporter died, a
// worker crashed), they are counted from the test lines seen, and the run is
// reported as ended abnormally: never "0 passed, 0 failed" for a run that broke.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ava = fileURLToPath(new URL('../node_modules/ava/entrypoints/cli.mjs', import.meta.url));
const child = spawn(process.execPath, [ava, '--tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });
let tail = '';
const summary = { pass: 0, fail: 0, skip: 0, todo: 0 };
const seen = { pass: 0, fail: 0, skip: 0 };
let summarized = false;
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  tail += d.toString();
  const lines = tail.split('\n');
  tail = lines.pop() ?? '';
  for (const l of lines) {
    const m = /^# (pass|fail|skip|todo)\s+(\d+)/.exec(l);
    if (m) {
      summary[m[1]] = Number(m[2]);
      summarized = true;
    } else if (/^ok \d+ .*# SKIP/.test(l)) seen.skip++;
    else if (/^ok \d+/.test(l)) seen.pass++;
    else if (/^not ok \d+/.test(l)) seen.fail++;
  }
});
child.on('exit', (code, sig) => {
  const status = code ?? (sig ? 1 : 0);
  if (summarized) {
    console.log(`\n${summary.pass} passed, ${summary.fail} failed, ${summary.skip + summary.todo} skipped`);
  } else {
    // no summary: count what was seen, and never report a broken run as clean
    const fail = status !== 0 ? Math.max(seen.fail, 1) : seen.fail;
    console.log(`\nthe test run ended abnormally (ava exit code ${code ?? sig}): see the output above`);
    console.log(`${seen.pass} passed, ${fail} failed, ${seen.skip} skipped`);
  }
  process.exit(status);
});
