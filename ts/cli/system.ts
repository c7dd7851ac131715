/**
 * `cnm system reconcile [--dry-run]`: run reconcile by hand and print what it did.
 * `cnm system check`: check the store and the kernel against it, changing nothing.
 * `cnm system hosts`: the cluster's hosts; `cnm system forget-host ID`: give back
 * the addresses of a host gone for good.
 */
import { parse, didYouMean, usage } from './args.js';
import { type CliContext, withController } from './context.js';
import { table } from './format.js';

export async function systemCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  if (sub === 'hosts' || sub === 'forget-host') return clusterCommand(ctx, sub, args);
  if (sub === 'check') return checkCommand(ctx, args);
  if (sub !== 'reconcile') {
    throw usage(
      `unknown command "system ${sub ?? ''}": try "cnm system reconcile [--dry-run]", "cnm system check", "cnm system hosts" or "cnm system forget-host ID"${didYouMean(sub ?? '', ['reconcile', 'check', 'hosts', 'forget-host'])}`,
      sub,
    );
  }
  const { values: v } = parse(args, { 'dry-run': { type: 'boolean' } });
  // the open must not reconcile by itself, or there would be nothing left to report
  return withController(
    ctx,
    v,
    async (ctl) => {
      const r = await ctl.reconcile({ dryRun: v['dry-run'] === true });
      for (const a of r.actions) ctx.out(`${v['dry-run'] ? 'would ' : ''}${a}`);
      for (const n of r.notices) ctx.out(`notice: ${n}`);
      for (const e of r.errors) ctx.err(`Error: ${e}`);
      if (r.actions.length === 0) ctx.out('nothing to do');
      return r.errors.length ? 1 : 0;
    },
    { reconcileOnOpen: false },
  );
}

/**
 * Every record's checksum, the records against each other, the kernel against
 * the records: one line per finding, exit 1 when there is any. Opens nothing
 * for writing and runs no reconcile (the controller's open changes nothing).
 */
async function checkCommand(ctx: CliContext, args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, {});
  if (positionals.length) throw usage('cnm system check takes no arguments', positionals[0]);
  return withController(ctx, v, async (ctl) => {
    const r = await ctl.checkState();
    if (r.store) {
      const bad = r.store.damaged.length;
      ctx.out(`store ${r.store.file}: ${r.store.records} records read, ${bad === 0 ? 'every checksum sound' : `${bad} damaged`}`);
      for (const d of r.store.damaged) ctx.out(`damaged: record ${JSON.stringify(d.key)}: ${d.why}`);
    } else {
      ctx.out('store: none yet (this host was never set up)');
    }
    for (const p of r.records) ctx.out(`record: ${p}`);
    for (const k of r.kernel) ctx.out(`kernel: reconcile would ${k}`);
    for (const n of r.notices) ctx.out(`notice: ${n}`);
    for (const e of r.errors) ctx.err(`Error: ${e}`);
    ctx.out(r.clean ? 'no problem found' : 'problems found: "cnm system reconcile" repairs the kernel; a damaged store must be restored or moved away');
    return r.clean ? 0 : 1;
  });
}

async function clusterCommand(ctx: CliContext, sub: 'hosts' | 'forget-host', args: string[]): Promise<number> {
  const { values: v, positionals } = parse(args, {});
  if (sub === 'hosts') {
    if (positionals.length) throw usage('cnm system hosts takes no arguments', positionals[0]);
    return withController(ctx, v, async (ctl) => {
      const hosts = await ctl.clusterHosts();
      ctx.out(table(['HOST ID', 'HOSTNAME', 'ADVERTISE', 'STATE', 'ADDRESSES'], hosts.map((h) => [h.id.slice(0, 12), h.hostname, h.advertise, h.alive ? 'alive' : 'gone', String(h.addresses)])));
      return 0;
    });
  }
  if (positionals.length !== 1) throw usage('usage: cnm system forget-host ID (see cnm system hosts)');
  return withController(ctx, v, async (ctl) => {
    const n = await ctl.forgetClusterHost(positionals[0]!);
    ctx.out(`gave back ${n} address${n === 1 ? '' : 'es'} of host ${positionals[0]}`);
    return 0;
  });
}
