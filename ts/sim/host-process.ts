// One host of a simulated cluster (the demo, tests), in a process of its own as
// on a real machine: `node host-process.js '<ControllerOptions as JSON>'` (see
// host-client.ts). Opens a controller (host set up at once), prints "ready",
// then serves one JSON command per stdin line: {"id", "op", "args"} -> {"id",
// "ok", "value"} or {"id", "ok": false, "code", "message"}. Ops call the
// controller; results are the inspect JSON of what they return.
import { createInterface } from 'node:readline';
import { writeSync } from 'node:fs';
import { NetworkController } from '../controller.js';
import { AddressAllocator } from '../ipam/allocator.js';
import type { ControllerOptions } from '../options.js';

const opts = JSON.parse(process.argv[2]!) as ControllerOptions;
const ctl = await NetworkController.open(opts);
await ctl.ready();
const out = (o: unknown) => writeSync(1, `${JSON.stringify(o)}\n`);
out({ ready: true });

type Op = (...a: never[]) => unknown;
const ops: Record<string, Op> = {
  createNetwork: async (req: never) => (await ctl.createNetwork(req)).inspect(),
  listNetworks: () => ctl.listNetworks().map((n) => ({ name: n.name, scope: n.record.scope, driver: n.driver })),
  inspectNetwork: (ref: string) => ctl.getNetwork(ref).inspect(),
  removeNetwork: (ref: string) => ctl.removeNetwork(ref),
  createSandbox: async (req: never) => (await ctl.createSandbox(req)).inspect(),
  /** many at once: their addresses, in order */
  createSandboxes: async (names: string[], net: string) =>
    (await Promise.all(names.map((name) => ctl.createSandbox({ name, net })))).map((s) => s.inspect().Networks[net]!.IPAddress),
  removeSandboxes: async (names: string[]) => {
    await Promise.all(names.map((n) => ctl.removeSandbox(n)));
  },
  inspectSandbox: (ref: string) => ctl.getSandbox(ref).inspect(),
  removeSandbox: (ref: string) => ctl.removeSandbox(ref),
  connect: async (net: string, sb: string, o: never) => {
    await ctl.connect(net, sb, o);
    return ctl.getSandbox(sb).inspect();
  },
  disconnect: (net: string, sb: string) => ctl.disconnect(net, sb),
  reconcile: () => ctl.reconcile(),
  serveDns: () => ctl.serveDns(),
  /** for the bench: one connect timed here; `at` is when it returned, in ms since the epoch (comparable across processes) */
  timedConnect: async (net: string, sb: string) => {
    const t = performance.now();
    const ep = await ctl.connect(net, sb);
    const end = performance.now();
    return { ms: end - t, at: performance.timeOrigin + end, ip: ep.record.ipv4.split('/')[0] };
  },
  /** for the bench: sandboxes made one after another on `net`, each timed here */
  timedCreates: async (names: string[], net: string) => {
    const times: number[] = [];
    for (const name of names) {
      const t = performance.now();
      await ctl.createSandbox({ name, net });
      times.push(performance.now() - t);
    }
    return times;
  },
  /** for the bench: `n` allocations from a global network's IPAM, one etcd transaction each, timed here */
  ipamTimes: async (net: string, n: number) => {
    const cluster = ctl.ctx.cluster!;
    const rec = ctl.getNetwork(net).record;
    const letGo = await cluster.follow(rec.id);
    const alloc = new AddressAllocator(cluster.store, cluster.hostId);
    const times: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await cluster.store.txn((tx) => alloc.allocate(tx, rec, 4, `bench-${i}`));
        times.push(performance.now() - t);
      }
    } finally {
      letGo();
    }
    return times;
  },
  clusterHosts: () => ctl.clusterHosts(),
  forgetClusterHost: (ref: string) => ctl.forgetClusterHost(ref),
  /** what this host's cluster store mirrors and has received, and the networks it follows */
  clusterStats: () => ({ ...ctl.ctx.cluster!.store.stats(), kept: ctl.ctx.cluster!.keptNetworks() }),
};

for await (const line of createInterface({ input: process.stdin })) {
  const { id, op, args } = JSON.parse(line) as { id: number; op: string; args: never[] };
  try {
    if (op === 'close') {
      await ctl.close();
      out({ id, ok: true });
      process.exit(0);
    }
    const fn = ops[op];
    if (!fn) throw new Error(`unknown op ${op}`);
    out({ id, ok: true, value: (await fn(...args)) ?? null });
  } catch (e) {
    const err = e as { code?: string; message?: string };
    out({ id, ok: false, code: err.code ?? 'ERROR', message: err.message ?? String(e) });
  }
}
