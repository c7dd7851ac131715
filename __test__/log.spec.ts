// The logger: JSON lines, levels from CNM_LOG, errors with code and cause chain,
// and best-effort steps whose failure is logged and returned, never swallowed.
import { spawnSync } from 'node:child_process';
import test from 'ava';
import { CnmError } from '../ts/errors.js';
import { bestEffort, log, setLogLevel, setLogSink } from '../ts/log.js';

function capture(fn: () => unknown): Array<Record<string, unknown>> {
  const lines: string[] = [];
  const prev = setLogSink((l) => lines.push(l));
  try {
    fn();
  } finally {
    setLogSink(prev);
  }
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

test.serial('levels: below the threshold nothing is written; each line is one JSON object', (t) => {
  setLogLevel('warn');
  const got = capture(() => {
    log.debug('d');
    log.info('i');
    log.warn('w', { network: 'n1' });
    log.error('e');
  });
  t.deepEqual(
    got.map((l) => [l.level, l.msg]),
    [
      ['warn', 'w'],
      ['error', 'e'],
    ],
  );
  t.is(got[0]!.network, 'n1');
  t.regex(String(got[0]!.time), /^\d{4}-\d\d-\d\dT/);
  setLogLevel('debug');
  t.is(capture(() => log.debug('d')).length, 1);
  setLogLevel(undefined);
});

test.serial('an error is logged with its code, message and cause chain; a bug with its stack', (t) => {
  setLogLevel('warn');
  const root = new TypeError('x is undefined');
  const wrapped = new CnmError('ERR_INTERNAL', 'create network n: x is undefined', {}, { cause: root });
  const [line] = capture(() => log.warn('step failed', { err: wrapped }));
  const err = line!.err as { code: string; message: string; cause: { name: string; message: string; stack: string[] } };
  t.is(err.code, 'ERR_INTERNAL');
  t.is(err.cause.name, 'TypeError');
  t.is(err.cause.message, 'x is undefined');
  t.true(Array.isArray(err.cause.stack) && err.cause.stack.length > 0);
  setLogLevel(undefined);
});

test.serial('bestEffort: a failure is logged as a warning and returned, success returns nothing', async (t) => {
  setLogLevel('warn');
  const lines: string[] = [];
  const prev = setLogSink((l) => lines.push(l));
  try {
    t.is(await bestEffort('nothing', async () => undefined), undefined);
    const e = await bestEffort('delete link x', async () => {
      throw new CnmError('ERR_KERNEL', 'delete link x: Device or resource busy');
    });
    t.is((e as CnmError).code, 'ERR_KERNEL');
  } finally {
    setLogSink(prev);
    setLogLevel(undefined);
  }
  t.is(lines.length, 1);
  const l = JSON.parse(lines[0]!) as { level: string; msg: string; err: { code: string } };
  t.is(l.level, 'warn');
  t.is(l.msg, 'delete link x failed');
  t.is(l.err.code, 'ERR_KERNEL');
});

test('CNM_LOG sets the threshold of a process', (t) => {
  const script = "import('./ts/log.ts').then(({ log }) => { log.info('hello'); log.debug('quiet'); })";
  const run = (level: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', env: { ...process.env, CNM_LOG: level } }).stderr.trim();
  t.is(run('warn'), '');
  const info = run('info');
  t.is(info.split('\n').length, 1);
  t.is((JSON.parse(info) as { msg: string }).msg, 'hello');
  t.is(run('debug').split('\n').length, 2);
});
