// HTTP/1.1 requests written byte by byte on a unix socket, for requests node:http's
// client refuses to send (bad escapes, raw unicode, odd methods) and for clients
// that misbehave (slow headers, bodies never finished).
import { type Socket, connect } from 'node:net';

export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parse one response (status line, headers, body up to the end of the connection). */
export function parseReply(raw: Buffer): RawReply | undefined {
  const text = raw.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = raw.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
  const len = headers['content-length'];
  if (len !== undefined) body = body.subarray(0, Number(len));
  return { status: Number(m[1]), headers, body: body.toString('utf8') };
}

/**
 * Send `head` (request line and headers, CRLF-terminated, without the blank line)
 * and `body`, with Connection: close; resolves to the reply once the server closes.
 */
export function rawRequest(socket: string, head: string, body: Buffer | string = '', timeoutMs = 10_000): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const c: Socket = connect(socket);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no reply within ${timeoutMs} ms to ${head.split('\r\n')[0]}`));
    }, timeoutMs);
    c.on('data', (d) => chunks.push(d));
    c.on('error', (e) => {
      clearTimeout(timer);
      // a reply may have come before the server closed on us
      const r = parseReply(Buffer.concat(chunks));
      if (r) resolve(r);
      else reject(e);
    });
    c.on('close', () => {
      clearTimeout(timer);
      const r = parseReply(Buffer.concat(chunks));
      if (r) resolve(r);
      else reject(new Error(`connection closed without a reply to ${head.split('\r\n')[0]}`));
    });
    const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    c.write(Buffer.concat([Buffer.from(`${head}Host: cnm\r\nConnection: close\r\nContent-Length: ${b.length}\r\n\r\n`, 'utf8'), b]));
  });
}
