/**
 * What the demos share: their clean-up guard, and traffic between sandboxes (named netns): ping and TCP round
 * trips, each run by its program inside the sandbox (`ip netns exec`), the
 * arguments being our own names and addresses, never a shell line.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** TCP echo server: prints "ready" once listening, echoes every line. */
const SERVER = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
net.createServer((s) => s.pipe(s)).listen(Number(port), host, () => console.log('ready'));
`;

/** TCP client: N request/response round trips, prints JSON timings. */
const CLIENT = `
const net = require('node:net');
const [host, port, n] = process.argv.slice(1);
const s = net.connect(Number(port), host, async () => {
  const times = [];
  let buf = '';
  for (let i = 0; i < Number(n); i++) {
    const t0 = process.hrtime.bigint();
    s.write('hello ' + i + '\\n');
    await new Promise((res) => { const on = (d) => { buf += d; if (buf.includes('\\n')) { buf = ''; s.off('data', on); res(); } }; s.on('data', on); });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  s.end();
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ n: times.length, p50: times[times.length >> 1], max: times[times.length - 1] }));
});
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

/** Ping results: loss in percent and the min/avg/max line, after a first reply however long it takes. */
export async function pingStats(fromNs: string, ip: string): Promise<{ loss: string; rtt: string }> {
  // first one reply, however long a fresh link takes to pass traffic (the kernel's
  // link watcher runs at most once a second, and a new peer must reach the tables)
  await run('ip', ['netns', 'exec', fromNs, 'ping', '-c', '1', '-i', '0.2', '-w', '5', ip]);
  const ping = await run('ip', ['netns', 'exec', fromNs, 'ping', '-c', '5', '-i', '0.2', '-W', '1', ip]);
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping.stdout);
  const loss = /(\d+)% packet loss/.exec(ping.stdout)?.[1] ?? '?';
  return { loss, rtt: rtt ? `min/avg/max ${rtt[1]}/${rtt[2]}/${rtt[3]} ms` : '?' };
}

/**
 * An echo server in `serverNs` on ip:port, then `n` request/response round trips
 * from `clientNs`. The server is pushed on `children` (killed by the caller's clean-up).
 */
export async function tcpRoundTrips(clientNs: string, serverNs: string, ip: string, port: string, n: number, children: ChildProcess[]): Promise<{ n: number; p50: number; max: number }> {
  const server = spawn('ip', ['netns', 'exec', serverNs, process.execPath, '-e', SERVER, ip, port], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(server);
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', (c) => reject(new Error(`TCP server exited with ${c}`)));
  });
  try {
    const client = await run('ip', ['netns', 'exec', clientNs, process.execPath, '-e', CLIENT, ip, port, String(n)]);
    return JSON.parse(client.stdout) as { n: number; p50: number; max: number };
  } finally {
    server.kill('SIGKILL');
  }
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
