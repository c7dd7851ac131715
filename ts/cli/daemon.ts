/** `cnm daemon [--socket PATH] [--log-file PATH]`: serve the Docker Engine network API until stopped. */
import { closeSync, openSync, writeSync } from 'node:fs';
import { API_VERSION, DEFAULT_SOCKET, startDaemon } from '../daemon/server.js';
import { invalid } from '../errors.js';
import { log, setLogSink } from '../log.js';
import { parse, str, usage } from './args.js';
import type { CliContext } from './context.js';

/**
 * Log lines appended to a file; `reopen` opens the path again (SIGHUP), so a
 * log rotated by renaming it goes on in a new file at the same path.
 */
function fileSink(path: string): { reopen: () => void; close: () => void } {
  const open = () => {
    try {
      return openSync(path, 'a', 0o640);
    } catch (e) {
      throw invalid(`--log-file ${path}: ${(e as Error).message}`, path);
    }
  };
  let fd = open();
  let failing = false;
  setLogSink((line) => {
    try {
      writeSync(fd, `${line}\n`);
      failing = false;
    } catch (e) {
      // a full disk must not fail the operation that logs: the line goes to stderr
      if (!failing) process.stderr.write(`cnm: writing the log file failed (${(e as Error).message}); lines go to stderr until it works again\n`);
      failing = true;
      process.stderr.write(`${line}\n`);
    }
  });
  return {
    reopen: () => {
      const next = open();
      const prev = fd;
      fd = next;
      closeSync(prev);
      log.info('log file reopened', { path });
    },
    close: () => closeSync(fd),
  };
}

export async function daemonCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, { socket: { type: 'string', short: 'H' }, 'log-file': { type: 'string' } });
  if (positionals.length) throw usage('cnm daemon takes no arguments');
  let socket = str(v.socket) ?? DEFAULT_SOCKET;
  if (socket.startsWith('unix://')) socket = socket.slice('unix://'.length);
  const logFile = str(v['log-file']);
  const sink = logFile === undefined ? undefined : fileSink(logFile);
  // SIGHUP must not end the daemon (Node's default): it reopens the log file, if there is one
  const onHup = () => {
    if (sink) {
      try {
        sink.reopen();
      } catch (err) {
        log.error('reopening the log file failed: lines go on to the old one', { err });
      }
    } else log.info('SIGHUP: the log goes to stderr, nothing to reopen');
  };
  process.on('SIGHUP', onHup);
  try {
    const d = await startDaemon({ socket, controller: ctx.options(v) });
    ctx.err(`cnm daemon listening on unix://${d.socket} (Docker API ${API_VERSION})`);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    log.info(`${signal}: finishing the requests in flight, then stopping`);
    await d.close();
    return 0;
  } finally {
    process.off('SIGHUP', onHup);
    sink?.close();
  }
}
