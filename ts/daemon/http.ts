/** Small HTTP helpers for the daemon: JSON bodies in and out, Docker-style errors. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CnmError, invalid, toCnmError } from '../errors.js';
import { log } from '../log.js';

/** The largest request body the daemon reads. */
export const MAX_BODY = 1 << 20;

function tooLarge(size: number | string): CnmError {
  return new CnmError('ERR_TOO_LARGE', `request body too large (${size} bytes; at most ${MAX_BODY})`, { value: size });
}

/**
 * Read and parse a JSON request body (empty body = {}); 1 MiB at most. A body
 * announced larger is refused before a byte of it is read, one that grows past
 * the limit as soon as it does: 413, and the connection is closed (see sendError).
 */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const announced = req.headers['content-length'];
  if (announced !== undefined && Number(announced) > MAX_BODY) throw tooLarge(announced);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) throw tooLarge(`over ${size}`);
      chunks.push(c as Buffer);
    }
  } catch (e) {
    if (e instanceof CnmError) throw e;
    // the client went away (or was cut at the time limit) before its body was complete
    throw invalid(`the request body did not arrive whole: ${(e as Error).message}`);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalid('request body is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid('request body must be a JSON object');
  return v as Record<string, unknown>;
}

/** A path segment, percent-decoded; a bad escape is the client's error (400), as Go's server answers it. */
export function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw invalid(`invalid URL escape in "${s}"`, s);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}

/**
 * Docker's error shape: {"message": …} with the status its code maps to. Every
 * error is logged with its cause: a server-side failure (500) as an error, an
 * unavailable service (503) as a warning, a refused request at info.
 */
export function sendError(res: ServerResponse, e: unknown, req?: IncomingMessage, id?: string): void {
  const err = toCnmError(e);
  const where = { id, method: req?.method, path: req?.url, status: err.status, err };
  if (err.status === 503) log.warn('request failed: service unavailable', where);
  else if (err.status >= 500) log.error('request failed', where);
  else log.info('request refused', where);
  if (res.headersSent) {
    res.end();
    return;
  }
  // the rest of a body too large is never read: the connection goes with the answer
  if (err.code === 'ERR_TOO_LARGE') {
    res.setHeader('Connection', 'close');
    const socket = req?.socket;
    res.once('finish', () => socket?.destroy());
  }
  sendJson(res, err.status, { message: err.message });
}
