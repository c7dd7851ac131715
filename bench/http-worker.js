// An HTTP client on a thread of its own, as a real client is a process of its own:
// the daemon's share of a request is then not mixed with the client's own work on
// one event loop. Each message { socket, method, path, body } gets { ms, status, body }
// back: the request timed on this thread, a fresh connection each time.
import { request } from 'node:http';
import { parentPort } from 'node:worker_threads';

parentPort.on('message', ({ socket, method, path, body }) => {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers = data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
  const t = performance.now();
  const req = request({ socketPath: socket, agent: false, method, path, headers }, (res) => {
    let out = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (out += c));
    res.on('end', () => parentPort.postMessage({ ms: performance.now() - t, status: res.statusCode, body: out }, []));
  });
  req.on('error', (e) => parentPort.postMessage({ ms: performance.now() - t, status: 0, body: String(e) }, []));
  req.end(data);
});
