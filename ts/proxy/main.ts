/**
 * The userland proxy: one process per port published on [::1], which the kernel
 * cannot DNAT (no route_localnet for IPv6: a packet from ::1 never leaves the
 * host), as Docker's docker-proxy does. It runs in the host netns, listens on
 * the host address and port and forwards each TCP connection, or each UDP
 * client's datagrams, to the container's address and port.
 *
 *   node main.js --cnm-proxy HOME NETNS ID PROTO LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT
 *
 * It writes one line on stdout, `ready` or `error CODE MESSAGE`, and nothing
 * more. Started detached, it outlives the process that started it (the CLI
 * exits at once). Before it listens it leaves its pid in HOME/proxies/, where
 * cnm looks for proxies (checking each pid's arguments in /proc), so one that
 * is running is always found. It exits on SIGTERM, and by itself once HOME
 * (the state dir of its host) or the named NETNS is gone, so a host torn down
 * without cnm leaves no proxy behind.
 *
 * Kept free of the rest of cnm so that it starts fast.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';

/** How long a UDP client's flow lives without traffic (Docker's proxy uses 90 s). */
const UDP_IDLE_MS = 90_000;
/** How often HOME and NETNS are checked. */
const ALIVE_MS = 1_000;

let pidFile = '';

function exit(code: number): never {
  if (pidFile) rmSync(pidFile, { force: true });
  process.exit(code);
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
  // one line and no more: the reader goes away, a later write would fail
  process.stdout.end();
}

function fail(code: string, message: string): never {
  say(`error ${code} ${message.replace(/\s+/g, ' ')}`);
  exit(1);
}

function tcp(listenIp: string, listenPort: number, targetIp: string, targetPort: number): void {
  const server = createServer({ allowHalfOpen: true }, (client: Socket) => {
    const upstream = connect({ host: targetIp, port: targetPort, allowHalfOpen: true });
    // a reset or an error on either side ends both: the client sees the failure
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? 'ERROR', e.message));
  server.listen({ host: listenIp, port: listenPort, ipv6Only: true }, () => say('ready'));
}

const family = (ip: string) => (ip.includes(':') ? 'udp6' : 'udp4');

function udp(listenIp: string, listenPort: number, targetIp: string, targetPort: number): void {
  const server = createSocket({ type: family(listenIp), ipv6Only: true });
  const flows = new Map<string, { sock: UdpSocket; timer: NodeJS.Timeout }>();
  const flow = (from: RemoteInfo) => {
    const key = `${from.address}|${from.port}`;
    let f = flows.get(key);
    if (!f) {
      const sock = createSocket(family(targetIp));
      const end = () => {
        flows.delete(key);
        sock.close();
      };
      // replies go back to the client from the listening socket, as if the container answered
      sock.on('message', (msg) => {
        server.send(msg, from.port, from.address);
        f!.timer.refresh();
      });
      sock.on('error', end);
      sock.connect(targetPort, targetIp);
      f = { sock, timer: setTimeout(end, UDP_IDLE_MS) };
      flows.set(key, f);
    }
    f.timer.refresh();
    return f.sock;
  };
  server.on('message', (msg, from) => {
    const sock = flow(from);
    const send = () => sock.send(msg);
    // the flow's socket connects asynchronously; its first datagram waits for it
    try {
      sock.remoteAddress();
      send();
    } catch {
      sock.once('connect', send);
    }
  });
  server.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? 'ERROR', e.message));
  server.bind({ address: listenIp, port: listenPort }, () => say('ready'));
}

function main(argv: string[]): void {
  const [marker, home, netns, , proto, listenIp, listenPort, targetIp, targetPort] = argv;
  if (marker !== '--cnm-proxy' || argv.length !== 9) fail('ERR_INVALID_ARGUMENT', 'usage: --cnm-proxy HOME NETNS ID PROTO LISTEN_IP LISTEN_PORT TARGET_IP TARGET_PORT');
  const alive = () => existsSync(home!) && (netns === '-' || existsSync(`/run/netns/${netns}`));
  setInterval(() => {
    if (!alive()) exit(0);
  }, ALIVE_MS).unref();
  process.on('SIGTERM', () => exit(0));
  const dir = join(home!, 'proxies');
  mkdirSync(dir, { recursive: true });
  pidFile = join(dir, String(process.pid));
  writeFileSync(pidFile, '');
  if (proto === 'tcp') tcp(listenIp!, Number(listenPort), targetIp!, Number(targetPort));
  else if (proto === 'udp') udp(listenIp!, Number(listenPort), targetIp!, Number(targetPort));
  else fail('ERR_INVALID_ARGUMENT', `the proxy forwards tcp and udp, not ${proto}`);
}

main(process.argv.slice(2));
