/** Real TCP between namespaces: a node echo server in one netns, a client in another. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';

const SERVER = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
net.createServer((s) => s.pipe(s)).listen(Number(port), host, () => console.log('ready'));
`;

const CLIENT = `
const net = require('node:net');
const [host, port, msg] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), timeout: 3000 }, () => s.write(msg));
let got = '';
s.on('data', (d) => { got += d; if (got.length >= msg.length) { console.log(got); s.end(); } });
s.on('timeout', () => { console.error('timeout'); process.exit(2); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

export async function startEchoServer(ns: string, host: string, port: number): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, host, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`echo server exited with ${c}`)));
  });
  return child;
}

/** Send msg from netns `ns` to host:port and return what came back. */
export function tcpExchange(ns: string, host: string, port: number, msg: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, host, String(port), msg], {
    encoding: 'utf8',
    timeout: 10000,
  }).trim();
}
