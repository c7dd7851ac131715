/**
 * `cnm demo`: a whole walk-through inside an isolated host netns of its own —
 * a network, two sandboxes, ping and a TCP exchange between them, a summary —
 * and everything removed afterwards, also on failure or Ctrl-C.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NetworkController } from '../controller.js';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { CliContext } from './context.js';
import { table } from './format.js';

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

export async function demoCommand(ctx: CliContext): Promise<number> {
  if (process.getuid?.() !== 0) throw new CnmError('ERR_PERMISSION', 'cnm demo needs root: it creates network namespaces');
  const tag = `cnm-demo-${process.pid}`;
  const hostNs = tag;
  const stateDir = mkdtempSync(join(tmpdir(), 'cnm-demo-'));
  const names = { a: `${tag}-a`, b: `${tag}-b` };
  const children: ChildProcess[] = [];
  let ctl: NetworkController | undefined;
  let cleaned = false;

  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of children) c.kill('SIGKILL');
    // the sandboxes and bridge live in namespaces we made: deleting them takes everything
    await native.netnsDeleteMany([names.a, names.b, hostNs]).catch((e: unknown) => log.warn('demo clean-up: deleting its namespaces failed', { err: e }));
    await ctl?.close().catch((e: unknown) => log.warn('demo clean-up: closing the controller failed', { err: e }));
    rmSync(stateDir, { recursive: true, force: true });
  };
  const onSignal = () => {
    ctx.err('\ninterrupted: cleaning up');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    ctx.out(`creating isolated host netns ${hostNs} (the machine's own network is not touched)`);
    await native.netnsCreate(hostNs);
    ctl = await NetworkController.open({ stateDir, hostNetns: hostNs });
    const t0 = performance.now();
    const net = await ctl.createNetwork({ name: 'demo-net' });
    const tNet = performance.now() - t0;
    ctx.out(`network demo-net: subnet ${net.subnets[0]} on bridge ${net.bridge} (${tNet.toFixed(1)} ms)`);
    const tSb: Record<string, number> = {};
    for (const [k, n] of Object.entries(names)) {
      const t = performance.now();
      await ctl.createSandbox({ name: n, net: 'demo-net' });
      tSb[k] = performance.now() - t;
    }
    const a = ctl.getSandbox(names.a).inspect().Networks['demo-net']!;
    const b = ctl.getSandbox(names.b).inspect().Networks['demo-net']!;

    // first one reply, however long a fresh link takes to pass traffic (the kernel's
    // link watcher runs at most once a second), then the measured round
    await run('ip', ['netns', 'exec', names.a, 'ping', '-c', '1', '-i', '0.2', '-w', '3', b.IPAddress]);
    const ping = await run('ip', ['netns', 'exec', names.a, 'ping', '-c', '5', '-i', '0.2', '-W', '1', b.IPAddress]);
    const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(ping.stdout);
    const loss = /(\d+)% packet loss/.exec(ping.stdout)?.[1] ?? '?';

    const port = '7777';
    const server = spawn('ip', ['netns', 'exec', names.b, process.execPath, '-e', SERVER, b.IPAddress, port], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (c) => reject(new Error(`TCP server exited with ${c}`)));
    });
    const client = await run('ip', ['netns', 'exec', names.a, process.execPath, '-e', CLIENT, b.IPAddress, port, '100']);
    const tcp = JSON.parse(client.stdout) as { n: number; p50: number; max: number };

    ctx.out('');
    ctx.out(
      table(
        ['SANDBOX', 'INTERFACE', 'ADDRESS', 'MAC', 'GATEWAY', 'CREATE (ms)'],
        [
          [names.a, a.InterfaceName, `${a.IPAddress}/${a.IPPrefixLen}`, a.MacAddress, a.Gateway, tSb.a!.toFixed(1)],
          [names.b, b.InterfaceName, `${b.IPAddress}/${b.IPPrefixLen}`, b.MacAddress, b.Gateway, tSb.b!.toFixed(1)],
        ],
      ),
    );
    ctx.out('');
    ctx.out(
      table(
        ['CHECK', 'RESULT', 'LATENCY'],
        [
          [`ping ${names.a} -> ${b.IPAddress}`, `${loss}% loss`, rtt ? `min/avg/max ${rtt[1]}/${rtt[2]}/${rtt[3]} ms` : '?'],
          [`TCP ${names.a} -> ${b.IPAddress}:${port}`, `${tcp.n} round trips`, `p50 ${tcp.p50.toFixed(3)} ms, max ${tcp.max.toFixed(3)} ms`],
        ],
      ),
    );
    if (loss !== '0') throw new CnmError('ERR_KERNEL', `ping lost ${loss}% of packets`);
    ctx.out('');
    await ctl.removeSandbox(names.a);
    await ctl.removeSandbox(names.b);
    await ctl.removeNetwork('demo-net');
    ctx.out('removed sandboxes and network; demo OK');
    return 0;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
