/**
 * A start barrier for tests that race several processes: each worker sets itself
 * up, says `ready` on stdout and waits for `go` on stdin; the test says `go` to
 * all of them only once every one is ready, so the race is on the operation under
 * test and not on who started first.
 *
 * Test side: {@link runTogether}. Worker side: {@link waitForGo}; the worker's
 * last stdout line is its JSON result. {@link startWorker} runs one such child
 * process for tests that follow its output line by line.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const READY = 'ready';
const GO = 'go';

/** Worker side: announce readiness, wait for the go; returns when it came (ms since the epoch). */
export async function waitForGo(): Promise<number> {
  process.stdout.write(`${READY}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === GO) return Date.now();
  }
  throw new Error('the test closed stdin without saying go');
}

/** A `node --import tsx` child process whose stdout is read line by line. */
export interface Worker<T> {
  /** resolves when the child prints this line; rejects when it ends without having printed it */
  printed(line: string): Promise<void>;
  /** the JSON of its last stdout line, once it exited with 0 */
  result: Promise<T>;
  /** close its stdin, after writing `line` when given */
  endInput(line?: string): void;
}

export function startWorker<T>(script: string, args: string[], opts: { cwd?: string; label?: string } = {}): Worker<T> {
  const label = opts.label ?? script;
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiting: Array<{ line: string; resolve: () => void }> = [];
  const hasPrinted = (line: string) => out.split('\n').slice(0, -1).includes(line);
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiting) if (hasPrinted(w.line)) w.resolve();
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const result = new Promise<T>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${label} exited with ${code}: ${err}`));
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`${label} printed no JSON result: ${JSON.stringify(out)} ${err}`));
      }
    });
  });
  // a failure reaches whoever waits on it; none is left unhandled meanwhile
  result.catch(() => undefined);
  return {
    printed: (line) =>
      Promise.race([
        new Promise<void>((resolve) => (hasPrinted(line) ? resolve() : waiting.push({ line, resolve }))),
        // an exit before the line fails the wait instead of leaving it pending
        result.then(() => Promise.reject(new Error(`${label} finished without printing ${JSON.stringify(line)}`))),
      ]),
    result,
    endInput: (line) => child.stdin.end(line === undefined ? '' : `${line}\n`),
  };
}

/**
 * Start one `node --import tsx script …args` process per entry of `argvs`, let them
 * all go at once when all are ready, and resolve with each one's JSON result.
 */
export async function runTogether<T>(script: string, argvs: string[][], opts: { cwd?: string } = {}): Promise<T[]> {
  const workers = argvs.map((args, i) => startWorker<T>(script, args, { cwd: opts.cwd, label: `worker ${i}` }));
  try {
    await Promise.all(workers.map((w) => w.printed(READY)));
  } catch (e) {
    // without the go, every worker that is still waiting fails and exits
    for (const w of workers) w.endInput();
    await Promise.allSettled(workers.map((w) => w.result));
    throw e;
  }
  for (const w of workers) w.endInput(GO);
  return Promise.all(workers.map((w) => w.result));
}

/** When a worker got the go, finished its first piece of work (default: the go) and finished, in ms since the epoch. */
export interface RaceTimes {
  goAt: number;
  firstAt?: number;
  doneAt: number;
}

/** How much the workers really raced: the skew of their go, and how long all of them were at work at once. */
export function describeRace(rs: RaceTimes[]): string {
  const skew = Math.max(...rs.map((r) => r.goAt)) - Math.min(...rs.map((r) => r.goAt));
  const together = Math.min(...rs.map((r) => r.doneAt)) - Math.max(...rs.map((r) => r.firstAt ?? r.goAt));
  const longest = Math.max(...rs.map((r) => r.doneAt - r.goAt));
  return `go skew ${skew} ms, all ${rs.length} at work together for ${Math.max(0, together)} of ${longest} ms`;
}
