/**
 * `cnm demo`: a whole walk-through inside an isolated host netns of its own —
 * a network, two sandboxes, ping and a TCP exchange between them, a summary —
 * and everything removed afterwards, also on failure or Ctrl-C.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { removeSandboxFiles } from '../dns/files.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkController } from '../controller.js';
import { CnmError, invalid } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import { parse, usage } from './args.js';
import type { CliContext } from './context.js';
import { clusterDemo } from './demo-cluster.js';
import { pingStats, resolveIn, tcpRoundTrips, withCleanup } from './demo-traffic.js';
import { table } from './format.js';

/** `cnm demo [--hosts N]`: one host, or N hosts of a cluster on an etcd of its own. */
export async function demoCommand(ctx: CliContext, args: string[] = []): Promise<number> {
  const { values, positionals } = parse(args, { hosts: { type: 'string' } });
  if (positionals.length > 0) throw usage(`cnm demo takes no arguments: ${positionals.join(' ')}`, positionals[0]);
  const hosts = values.hosts === undefined ? 1 : Number(values.hosts);
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > 9) throw invalid(`--hosts must be 1 to 9, not ${String(values.hosts)}`, String(values.hosts));
  if (process.getuid?.() !== 0) throw new CnmError('ERR_PERMISSION', 'cnm demo needs root: it creates network namespaces');
  if (hosts > 1) return clusterDemo(ctx, hosts);
  const tag = `cnm-demo-${process.pid}`;
  const hostNs = tag;
  const stateDir = mkdtempSync(join(tmpdir(), 'cnm-demo-'));
  const names = { a: `${tag}-a`, b: `${tag}-b` };
  let ctl: NetworkController | undefined;

  const cleanup = async () => {
    // the sandboxes and bridge live in namespaces we made: deleting them takes everything
    await native.netnsDeleteMany([names.a, names.b, hostNs]).catch((e: unknown) => log.warn('demo clean-up: deleting its namespaces failed', { err: e }));
    // and the sandboxes' /etc/netns files, when it stopped before removing them
    await Promise.all([names.a, names.b].map((n) => removeSandboxFiles(n))).catch((e: unknown) => log.warn('demo clean-up: removing sandbox files failed', { err: e }));
    await ctl?.close().catch((e: unknown) => log.warn('demo clean-up: closing the controller failed', { err: e }));
    rmSync(stateDir, { recursive: true, force: true });
  };
  return withCleanup(ctx.err, cleanup, async () => {
    ctx.out(`creating isolated host netns ${hostNs} (the machine's own network is not touched)`);
    await native.netnsCreate(hostNs);
    ctl = await NetworkController.open({ stateDir, hostNetns: hostNs });
    // the embedded DNS, served from this process: the sandboxes find each other by name
    await ctl.serveDns();
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

    const { loss, rtt } = await pingStats(names.a, b.IPAddress);
    const tDns = performance.now();
    const { server, address: found } = await resolveIn(names.a, names.b);
    const dnsMs = performance.now() - tDns;
    const port = '7777';
    const tcp = await tcpRoundTrips(names.a, names.b, b.IPAddress, port, 100);

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
          [`ping ${names.a} -> ${b.IPAddress}`, `${loss}% loss`, rtt],
          [`TCP ${names.a} -> ${b.IPAddress}:${port}`, `${tcp.n} round trips`, `p50 ${tcp.p50.toFixed(3)} ms, max ${tcp.max.toFixed(3)} ms`],
          [`name ${names.b} from ${names.a} (DNS, ${server})`, found || 'not found', `${dnsMs.toFixed(1)} ms`],
        ],
      ),
    );
    if (loss !== '0') throw new CnmError('ERR_KERNEL', `ping lost ${loss}% of packets`);
    if (found !== b.IPAddress) throw new CnmError('ERR_INTERNAL', `${names.b} resolved to "${found}" in ${names.a}, not ${b.IPAddress}`);
    ctx.out('');
    await ctl.removeSandbox(names.a);
    await ctl.removeSandbox(names.b);
    await ctl.removeNetwork('demo-net');
    ctx.out('removed sandboxes and network; demo OK');
    return 0;
  });
}
