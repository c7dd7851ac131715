/**
 * The logger: JSON lines on stderr, one object per event, at four levels. The
 * threshold comes from `CNM_LOG` (debug|info|warn|error; default warn), so a
 * best-effort step that fails (a warning) is always seen, and `CNM_LOG=debug`
 * shows every error with its code and cause. Embedders may redirect the lines.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured fields of one log line; `err` is expanded into code, message and cause chain. */
export type LogFields = Record<string, unknown> & { err?: unknown };

/** Where finished lines go; the default writes them to stderr. */
export type LogSink = (line: string) => void;

let threshold: LogLevel | undefined;
let sink: LogSink = (line) => process.stderr.write(`${line}\n`);

function level(): LogLevel {
  if (threshold === undefined) {
    const env = (process.env.CNM_LOG ?? '').toLowerCase();
    threshold = env in RANK ? (env as LogLevel) : 'warn';
  }
  return threshold;
}

/** Set the threshold (the CLI's --log-level); `undefined` goes back to CNM_LOG. */
export function setLogLevel(l: LogLevel | undefined): void {
  threshold = l;
}

/** Send log lines elsewhere (tests, embedders); returns the previous sink. */
export function setLogSink(s: LogSink): LogSink {
  const prev = sink;
  sink = s;
  return prev;
}

/** An error as JSON: code, message, details that are plain values, and its causes. */
export function describeError(e: unknown, depth = 0): Record<string, unknown> {
  if (!(e instanceof Error)) return { message: String(e) };
  const out: Record<string, unknown> = { message: e.message };
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') out.code = code;
  if (!('code' in out) || depth > 0) out.name = e.name;
  const cause = (e as { cause?: unknown }).cause;
  if (cause !== undefined && depth < 5) out.cause = describeError(cause, depth + 1);
  // a bug shows where it happened; a coded error's message says enough
  if (typeof code !== 'string' && e.stack) out.stack = e.stack.split('\n').slice(1, 6).map((l) => l.trim());
  return out;
}

function write(l: LogLevel, msg: string, fields: LogFields = {}): void {
  if (RANK[l] < RANK[level()]) return;
  const { err, ...rest } = fields;
  const entry: Record<string, unknown> = { time: new Date().toISOString(), level: l, msg, ...rest };
  if (err !== undefined) entry.err = describeError(err);
  let line: string;
  try {
    line = JSON.stringify(entry, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    line = JSON.stringify({ time: entry.time, level: l, msg, note: 'fields could not be serialized' });
  }
  sink(line);
}

/** The process-wide logger. */
export const log = {
  debug: (msg: string, fields?: LogFields) => write('debug', msg, fields),
  info: (msg: string, fields?: LogFields) => write('info', msg, fields),
  warn: (msg: string, fields?: LogFields) => write('warn', msg, fields),
  error: (msg: string, fields?: LogFields) => write('error', msg, fields),
  /** whether lines of this level are written */
  enabled: (l: LogLevel) => RANK[l] >= RANK[level()],
};

/**
 * Run a best-effort step: its failure is logged as a warning with its cause and
 * returned, never thrown, so that the caller can carry on and still report it.
 */
export async function bestEffort(what: string, fn: () => Promise<unknown> | unknown, fields: LogFields = {}): Promise<Error | undefined> {
  try {
    await fn();
    return undefined;
  } catch (e) {
    log.warn(`${what} failed`, { ...fields, err: e });
    return e instanceof Error ? e : new Error(String(e));
  }
}
