/**
 * `cnm run`: create a sandbox, run a command inside its netns with stdio attached,
 * and remove the sandbox afterwards with --rm. The command runs through
 * `ip netns exec NAME CMD ARGS…` as an argument vector, never through a shell.
 */
import { spawn } from 'node:child_process';
import { parse, str, usage } from './args.js';
import { type CliContext, withController } from './context.js';
import { SANDBOX_OPTIONS, sandboxRequest } from './sandbox.js';

export async function runCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const { values: v, rest, positionals } = parse(argv, {
    name: { type: 'string' },
    rm: { type: 'boolean' },
    ...SANDBOX_OPTIONS,
  });
  const req = sandboxRequest(v);
  const cmd = rest.length ? rest : positionals;
  if (cmd.length === 0) throw usage('cnm run needs a command: cnm run [--name N] [--rm] --net NET -- CMD ARGS…');
  const name = str(v.name) ?? `cnm-${Math.random().toString(16).slice(2, 10)}`;
  return withController(ctx, v, async (ctl) => {
    const sb = await ctl.createSandbox({ name, ...req });
    let code: number;
    try {
      code = await new Promise<number>((resolve, reject) => {
        // Docker's link variables (ALIAS_PORT_80_TCP_ADDR…) join the command's environment
        const child = spawn('ip', ['netns', 'exec', sb.netns, ...cmd], { stdio: 'inherit', env: { ...process.env, ...sb.linkEnvironment() } });
        const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
        const onInt = forward('SIGINT');
        const onTerm = forward('SIGTERM');
        process.on('SIGINT', onInt);
        process.on('SIGTERM', onTerm);
        child.on('error', reject);
        child.on('exit', (c, sig) => {
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          resolve(c ?? 128 + (sig === 'SIGKILL' ? 9 : sig === 'SIGTERM' ? 15 : 2));
        });
      });
    } finally {
      if (v.rm) await ctl.removeSandbox(sb.id);
    }
    return code;
  });
}
