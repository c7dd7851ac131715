/** Real TCP/UDP between namespaces: node servers in one netns, clients in another. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';

/** TCP server: echoes, or with mode "peer" answers with the client's address. */
const SERVER = `
const net = require('node:net');
const [host, port, mode] = process.argv.slice(1);
net.createServer((s) => {
  if (mode === 'peer') { s.end(s.remoteAddress); s.on('error', () => {}); return; }
  s.pipe(s);
  s.on('error', () => {});
}).listen(Number(port), host, () => console.log('ready'));
`;

const CLIENT = `
const net = require('node:net');
const [host, port, msg, ms] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) }, () => s.write(msg));
s.setTimeout(Number(ms));
let got = '';
s.on('data', (d) => { got += d; if (got.length >= msg.length) { console.log(got); s.end(); } });
s.on('end', () => { if (got.length < msg.length) { console.log(got); } });
s.on('timeout', () => { console.error('timeout'); process.exit(2); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

const UDP_SERVER = `
const dgram = require('node:dgram');
const [host, port] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(Number(port), host, () => console.log('ready'));
`;

const UDP_CLIENT = `
const dgram = require('node:dgram');
const [host, port, msg, ms] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const t = setTimeout(() => { console.error('timeout'); process.exit(2); }, Number(ms));
s.on('message', (m) => { console.log(String(m)); clearTimeout(t); s.close(); });
s.send(msg, Number(port), host);
`;

function start(ns: string, script: string, args: string[]): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (c) => reject(new Error(`server in ${ns} exited with ${c}`)));
  });
}

export function startEchoServer(ns: string, host: string, port: number): Promise<ChildProcess> {
  return start(ns, SERVER, [host, String(port), 'echo']);
}

/** A TCP server that answers each connection with the address it came from. */
export function startPeerServer(ns: string, host: string, port: number): Promise<ChildProcess> {
  return start(ns, SERVER, [host, String(port), 'peer']);
}

export function startUdpEchoServer(ns: string, host: string, port: number): Promise<ChildProcess> {
  return start(ns, UDP_SERVER, [host, String(port)]);
}

function client(ns: string, script: string, host: string, port: number, msg: string, ms: number): string | null {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, process.execPath, '-e', script, host, String(port), msg, String(ms)], {
      encoding: 'utf8',
      timeout: ms + 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

/** Send msg from netns `ns` to host:port over TCP; what came back, or null on failure. */
export function tcpTry(ns: string, host: string, port: number, msg: string, ms = 2000): string | null {
  return client(ns, CLIENT, host, port, msg, ms);
}

/** Like tcpTry but throws when nothing came back. */
export function tcpExchange(ns: string, host: string, port: number, msg: string): string {
  const r = tcpTry(ns, host, port, msg, 3000);
  if (r === null) throw new Error(`no TCP answer from ${host}:${port} in ${ns}`);
  return r;
}

export function udpTry(ns: string, host: string, port: number, msg: string, ms = 2000): string | null {
  return client(ns, UDP_CLIENT, host, port, msg, ms);
}
