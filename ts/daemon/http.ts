/** Small HTTP helpers for the daemon: JSON bodies in and out, Docker-style errors. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { invalid, toCnmError } from '../errors.js';
import { log } from '../log.js';

/** Read and parse a JSON request body (empty body = {}); 1 MiB at most. */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 1 << 20) throw invalid('request body too large');
    chunks.push(c as Buffer);
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
  sendJson(res, err.status, { message: err.message });
}
