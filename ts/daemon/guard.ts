/**
 * What keeps one client of the daemon from stopping the others: time limits on
 * receiving a request, a connection limit under the process's file limit, a
 * Docker-shaped JSON answer to what the HTTP parser refuses, and a drain on
 * shutdown (no new request starts; those in flight finish).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import { sendError } from './http.js';

/** Time limits of the daemon's HTTP server, in milliseconds. */
export interface DaemonLimits {
  /** the request line and headers must have arrived within this (a byte a second does not keep a slot) */
  headersTimeoutMs?: number;
  /** the whole request, body included */
  requestTimeoutMs?: number;
  /** an idle kept-alive connection is closed after this */
  keepAliveTimeoutMs?: number;
  /** how long shutdown waits for requests in flight */
  drainMs?: number;
  /** connections served at once; default: under the file limit, at most 4 096 */
  maxConnections?: number;
}

const DEFAULTS = { headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, drainMs: 30_000 };

/** The soft limit on open files ("Max open files" of /proc/self/limits); undefined when unknown. */
function fileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch (err) {
    log.info('the file limit is unknown: the connection limit stays at its default', { err });
    return undefined;
  }
}

/** Options for createServer that carry the time limits. */
export function serverOptions(l: DaemonLimits = {}): ServerOptions {
  const headersTimeout = l.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs;
  return {
    headersTimeout,
    // Node wants the whole-request limit at least the headers one
    requestTimeout: Math.max(l.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, headersTimeout),
    keepAliveTimeout: l.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeoutMs,
    // the limits are checked this often: a slow client is cut within a second of its limit
    connectionsCheckingInterval: Math.min(1000, headersTimeout),
  };
}

/** How long the daemon must have answered everything before it trims its heap. */
const QUIET_MS = 2000;

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large' };

/** The in-flight count, the drain, and the hooks that keep a server within its limits. */
export class Guard {
  private inFlight = 0;
  private draining = false;
  private idle: (() => void) | undefined;
  private readonly streams = new Set<() => void>();
  /**
   * Armed when the last request in flight is answered: after a burst (many
   * clients answered at once) the C heap keeps what it freed, so the daemon's
   * RSS would stay at the burst's high-water mark; once quiet, it is given back.
   */
  private readonly quiet = setTimeout(() => this.trim(), QUIET_MS).unref();
  private trimmed = true;

  constructor(
    private readonly server: Server,
    private readonly limits: DaemonLimits = {},
  ) {
    const files = fileLimit();
    server.maxConnections = limits.maxConnections ?? Math.min(4096, Math.max(64, (files ?? 1024) - 256));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.refuse(err, socket));
    // Node's headers limit counts from a request's first byte: a connection that
    // sends nothing at all would keep its slot for ever. It has the same time
    // to begin its first request (then Node's own limits take over).
    const first = limits.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs;
    const begun = new WeakSet<Socket>();
    server.on('request', (req: IncomingMessage) => {
      if (!begun.has(req.socket)) {
        begun.add(req.socket);
        req.socket.setTimeout(0);
      }
    });
    server.on('connection', (socket: Socket) => {
      socket.setTimeout(first);
      socket.once('timeout', () => {
        if (!begun.has(socket)) socket.destroy();
      });
    });
  }

  /**
   * Count a request until its answer is done; false (answered 503) once the
   * daemon is shutting down, so the caller starts nothing.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.draining) {
      res.setHeader('Connection', 'close');
      sendError(res, new CnmError('ERR_SHUTTING_DOWN', 'the daemon is shutting down: the request was not started'), req);
      return false;
    }
    this.inFlight++;
    this.trimmed = false;
    res.once('close', () => {
      this.inFlight--;
      if (this.inFlight === 0) {
        this.quiet.refresh();
        this.idle?.();
      }
    });
    return true;
  }

  private trim(): void {
    if (this.inFlight > 0 || this.trimmed || this.draining) return;
    this.trimmed = true;
    const before = process.memoryUsage.rss();
    if (native.trimMemory()) log.debug('quiet: the C heap gave its free memory back', { rssMiB: Math.round(before / 1048576), nowMiB: Math.round(process.memoryUsage.rss() / 1048576) });
  }

  /** A long answer (an events stream) that shutdown ends; returns the call that forgets it. */
  stream(end: () => void): () => void {
    this.streams.add(end);
    return () => this.streams.delete(end);
  }

  /**
   * Stop taking connections and requests, end the streams, wait for the
   * requests in flight (at most drainMs), then close every connection.
   */
  async drain(): Promise<void> {
    this.draining = true;
    clearTimeout(this.quiet);
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeIdleConnections();
    for (const end of this.streams) end();
    if (this.inFlight > 0) {
      const ms = this.limits.drainMs ?? DEFAULTS.drainMs;
      let timer: NodeJS.Timeout | undefined;
      const done = await Promise.race([
        new Promise<boolean>((r) => {
          this.idle = () => r(true);
        }),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), ms);
        }),
      ]);
      clearTimeout(timer);
      if (!done) log.warn(`shutdown: ${this.inFlight} request(s) still in flight after ${ms} ms are cut off`);
    }
    this.server.closeAllConnections();
    await closed;
  }

  /** What the HTTP parser refused (bad request line, headers too large, too slow): a JSON answer, then the connection goes. */
  private refuse(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const why = status === 408 ? 'the request did not arrive in time' : status === 431 ? 'request headers too large' : `bad request: ${err.message.replace(/^Parse Error: /, '')}`;
    log.info('request refused by the HTTP parser', { status, err: new CnmError('ERR_INVALID_ARGUMENT', why, { value: err.code }, { cause: err }) });
    const body = JSON.stringify({ message: why });
    socket.end(`HTTP/1.1 ${status} ${REASONS[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
}
