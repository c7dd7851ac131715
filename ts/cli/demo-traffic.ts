/**
 * What the demos share: their clean-up guard, and traffic between sandboxes
 * (named netns): ping, TCP round trips and DNS lookups, all from this process
 * through netcore (sockets made inside the sandboxes), no program run.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { NETNS_ETC } from '../dns/files.js';
import { native } from '../native.js';

const ms3 = (x: number) => x.toFixed(3);

/** Ping results: loss in percent and the min/avg/max line, after a first reply however long it takes. */
export async function pingStats(fromNs: string, ip: string): Promise<{ loss: string; rtt: string }> {
  // first one reply, however long a fresh link takes to pass traffic (the kernel's
  // link watcher runs at most once a second, and a new peer must reach the tables)
  const until = Date.now() + 5000;
  while ((await native.netnsPing(fromNs, ip, 1, 0, 200)).received === 0) {
    if (Date.now() > until) break;
  }
  const r = await native.netnsPing(fromNs, ip, 5, 200, 1000);
  const loss = String(Math.round((100 * (r.transmitted - r.received)) / Math.max(r.transmitted, 1)));
  const ms = r.rttsMs;
  const avg = ms.reduce((a, b) => a + b, 0) / Math.max(ms.length, 1);
  return { loss, rtt: ms.length ? `min/avg/max ${ms3(Math.min(...ms))}/${ms3(avg)}/${ms3(Math.max(...ms))} ms` : '?' };
}

/**
 * An echo server in `serverNs` on ip:port, then `n` request/response round
 * trips from `clientNs`: both sockets are made inside their sandboxes and
 * served by this process.
 */
export async function tcpRoundTrips(clientNs: string, serverNs: string, ip: string, port: string, n: number): Promise<{ n: number; p50: number; max: number }> {
  const serverFd = await native.netnsSocket(serverNs, { kind: 'tcp', address: ip, port: Number(port), backlog: 16 });
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd: serverFd }, resolve);
  });
  const client = new net.Socket({ fd: await native.netnsSocket(clientNs, { kind: 'tcp', ipv6: net.isIPv6(ip) }), readable: true, writable: true });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('error', reject);
      client.connect(Number(port), ip, resolve);
    });
    const times: number[] = [];
    let buf = '';
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      client.write(`hello ${i}\n`);
      await new Promise<void>((resolve, reject) => {
        const on = (d: Buffer) => {
          buf += String(d);
          if (!buf.includes('\n')) return;
          buf = '';
          client.off('data', on);
          client.off('close', closed);
          resolve();
        };
        const closed = () => reject(new Error('the TCP connection closed'));
        client.on('data', on);
        client.once('close', closed);
      });
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    return { n: times.length, p50: times[times.length >> 1]!, max: times[times.length - 1]! };
  } finally {
    client.destroy();
    server.close();
  }
}

/**
 * The first IPv4 address `name` has for sandbox `ns`: a DNS query sent from
 * inside it to the first nameserver of its resolv.conf (the embedded DNS,
 * 127.0.0.11), or "".
 */
export async function resolveIn(ns: string, name: string): Promise<{ server: string; address: string }> {
  const conf = await readFile(`${NETNS_ETC}/${ns}/resolv.conf`, 'utf8');
  const server = /^nameserver\s+(\S+)/m.exec(conf)?.[1] ?? '127.0.0.11';
  const found = await native.netnsDnsLookup(ns, server, name, false, 3000);
  return { server, address: found[0] ?? '' };
}

/**
 * Run a demo with its clean-up guaranteed: after it ends, fails, or is
 * interrupted (SIGINT, SIGTERM: cleaned up, then exit 130), exactly once.
 */
export async function withCleanup<T>(err: (s: string) => void, cleanup: () => Promise<void>, fn: () => Promise<T>): Promise<T> {
  let cleaned: Promise<void> | undefined;
  const once = () => (cleaned ??= cleanup());
  const onSignal = () => {
    err('\ninterrupted: cleaning up');
    void once().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn();
  } finally {
    await once();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
