/** `cnm network prune` and `cnm sandbox prune`, as `docker network prune` asks and prints. */
import { createInterface } from 'node:readline';
import { list, parse, usage } from './args.js';
import { type CliContext, kvFilters, withController } from './context.js';

/** Ask on stdin, as docker does; anything but y/yes (or no answer) is no. */
async function confirm(ctx: CliContext, question: string): Promise<boolean> {
  ctx.out(`${question}\nAre you sure you want to continue? [y/N] `);
  const rl = createInterface({ input: process.stdin });
  try {
    const line = await new Promise<string>((resolve) => {
      rl.once('line', resolve);
      rl.once('close', () => resolve(''));
    });
    return /^y(es)?$/i.test(line.trim());
  } finally {
    rl.close();
  }
}

export async function pruneCommand(ctx: CliContext, args: string[], kind: 'network' | 'sandbox'): Promise<number> {
  const { values: v, positionals } = parse(args, { force: { type: 'boolean', short: 'f' }, filter: { type: 'string', multiple: true } });
  if (positionals.length) throw usage(`cnm ${kind} prune takes no arguments: ${positionals.join(' ')}`, positionals[0]);
  const filters = kvFilters(list(v.filter));
  const warning =
    kind === 'network'
      ? 'WARNING! This will remove all custom networks not used by at least one sandbox.'
      : 'WARNING! This will remove all sandboxes that no process uses (their network namespace is empty of processes).';
  if (v.force !== true && !(await confirm(ctx, warning))) return 0;
  return withController(ctx, v, async (ctl) => {
    const removed = kind === 'network' ? await ctl.pruneNetworks({ filters }) : await ctl.pruneSandboxes({ filters });
    if (removed.length) ctx.out(`Deleted ${kind === 'network' ? 'Networks' : 'Sandboxes'}:\n${removed.join('\n')}\n`);
    return 0;
  });
}
