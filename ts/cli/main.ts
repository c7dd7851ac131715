/** The `cnm` command: docker-like networking from the shell. */
import { CnmError } from '../errors.js';
import { GLOBAL_OPTIONS, LEADING_ONLY, type Parsed, parse, splitGlobal } from './args.js';
import { type CliContext, controllerOptions, openFromOptions } from './context.js';
import { daemonCommand } from './daemon.js';
import { demoCommand } from './demo.js';
import { NETWORK_USAGE, networkCommand } from './network.js';
import { portCommand } from './port.js';
import { runCommand } from './run.js';
import { SANDBOX_USAGE, sandboxCommand } from './sandbox.js';
import { systemCommand } from './system.js';

export const USAGE = `Usage: cnm [GLOBAL OPTIONS] COMMAND

Global options:
  --state-dir DIR      where state is kept (default /var/lib/cnm; env CNM_STATE_DIR)
  --host-netns NAME    treat this named netns as the host (env CNM_HOST_NETNS)
  --bip CIDR           address of the default bridge (like dockerd --bip)
  -b, --bridge DEV     use an existing bridge device for the default bridge
  --default-mtu N      MTU of the default bridge network
  --firewall B         nftables (default), iptables or none (env CNM_FIREWALL)
  --iptables=false     no firewall rules at all (same as --firewall none)
  --icc=false          no traffic between sandboxes on the default bridge
  --ip-forward=false   leave net.ipv4.ip_forward of the host netns alone
  --ip IP              default host IP for published ports (before the command only)
  --default-address-pool base=CIDR,size=N
                       pools for automatic subnets (repeatable; replaces the defaults)
  --plugin-dir DIR     where remote driver plugins are found (default /run/docker/plugins;
                       env CNM_PLUGIN_DIR)

Commands:
  network   create, ls, inspect, rm, connect, disconnect networks
  sandbox   create, ls, inspect, rm sandboxes (named network namespaces)
  run       run a command in a new sandbox: cnm run [--name N] [--rm] [-p SPEC]... --net NET -- CMD ARGS...
  port      list published ports: cnm port SANDBOX [PORT[/PROTO]]
  system    reconcile [--dry-run]: bring store and kernel into agreement
  daemon    serve the Docker Engine network API: cnm daemon [--socket PATH] (default /run/cnm.sock)
  demo      a self-contained walk-through in an isolated namespace

${NETWORK_USAGE}

${SANDBOX_USAGE}`;

export async function main(argv: string[], ctx: Omit<CliContext, 'open' | 'options'> = { out: (s) => console.log(s), err: (s) => console.error(s) }): Promise<number> {
  try {
    const { globals, command } = splitGlobal(argv);
    const g = parse(globals, GLOBAL_OPTIONS).values;
    // command-level options win over the leading global ones (except --ip, see LEADING_ONLY)
    const merged = (v: Parsed['values']) => ({
      ...g,
      ...Object.fromEntries(Object.entries(v).filter(([k, x]) => x !== undefined && k in GLOBAL_OPTIONS && !LEADING_ONLY.has(k))),
    });
    const full: CliContext = {
      ...ctx,
      open: (v, extra) => openFromOptions(merged(v), extra),
      options: (v, extra) => controllerOptions(merged(v), extra),
    };
    const [cmd, ...rest] = command;
    if (g.help || cmd === undefined || cmd === 'help' || cmd === '--help') {
      ctx.out(USAGE);
      return cmd === undefined && !g.help ? 1 : 0;
    }
    switch (cmd) {
      case 'network':
        return await networkCommand(full, rest);
      case 'sandbox':
        return await sandboxCommand(full, rest);
      case 'run':
        return await runCommand(full, rest);
      case 'system':
        return await systemCommand(full, rest);
      case 'port':
        return await portCommand(full, rest);
      case 'daemon':
        return await daemonCommand(full, rest);
      case 'demo':
        return await demoCommand(full);
      default:
        ctx.err(`Error: unknown command "${cmd}"; see cnm --help`);
        return 1;
    }
  } catch (e) {
    if (e instanceof CnmError) {
      ctx.err(`Error: ${e.message}`);
      return 1;
    }
    ctx.err(`Error: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  }
}
