/** `cnm system reconcile [--dry-run]`: run reconcile by hand and print what it did. */
import { invalid } from '../errors.js';
import { parse } from './args.js';
import { type CliContext, withController } from './context.js';

export async function systemCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  if (sub !== 'reconcile') throw invalid(`unknown command "system ${sub ?? ''}": try "cnm system reconcile [--dry-run]"`, sub);
  const { values: v } = parse(args, { 'dry-run': { type: 'boolean' } });
  // the open must not reconcile by itself, or there would be nothing left to report
  return withController(
    ctx,
    v,
    async (ctl) => {
      const r = await ctl.reconcile({ dryRun: v['dry-run'] === true });
      for (const a of r.actions) ctx.out(`${v['dry-run'] ? 'would ' : ''}${a}`);
      for (const e of r.errors) ctx.err(`Error: ${e}`);
      if (r.actions.length === 0) ctx.out('nothing to do');
      return r.errors.length ? 1 : 0;
    },
    { reconcileOnOpen: false },
  );
}
