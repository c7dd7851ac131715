/** The `cnm` command: docker-like networking from the shell. */

import { GLOBAL_OPTIONS, LEADING_ONLY, type Parsed, didYouMean, parse, splitGlobal, usage } from './args.js';
import { CnmError } from '../errors.js';
import { type LogLevel, setLogLevel } from '../log.js';
import type { CliContext } from './context.js';
import { EVENTS_USAGE, NETWORK_USAGE, SANDBOX_USAGE } from './usage.js';
import { VERSION } from '../version.js';

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
  --allow-direct-routing
                       let traffic routed from outside reach network subnets directly
                       (by default only published ports are reachable from outside)
  --default-address-pool base=CIDR,size=N
                       pools for automatic subnets (repeatable; replaces the defaults)
  --plugin-dir DIR     where remote driver plugins are found (default /run/docker/plugins;
                       env CNM_PLUGIN_DIR)
  --cluster-store etcd://HOST:PORT[,HOST:PORT...]
                       join a cluster: global (overlay, routed) networks shared by its hosts
                       (env CNM_CLUSTER_STORE); \`cnm daemon\` on each host, or the cnm
                       command alone: it starts a background agent that holds the host's
                       lease and keeps its peer tables, gone when the host has no global endpoint
  --cluster-advertise IP
                       this host's underlay address, its VXLAN endpoint (env CNM_CLUSTER_ADVERTISE)
  --cluster-name NAME  the cluster's key prefix in etcd (cnm/NAME/; default "default")
  --cluster-lease-ttl S
                       seconds before a host that stopped answering leaves the others' tables (default 10)
  --cluster-store-ca F, --cluster-store-cert F, --cluster-store-key F
                       TLS to etcd
  -l, --log-level L    debug, info, warn (default) or error: JSON lines on stderr (env CNM_LOG)
  -v, --version        print cnm's version and exit

Commands:
  network   create, ls, inspect, rm, connect, disconnect networks
  sandbox   create, ls, inspect, rm sandboxes (named network namespaces)
  run       run a command in a new sandbox: cnm run [--name N] [--rm] [-p SPEC]... --net NET -- CMD ARGS...
  port      list published ports: cnm port SANDBOX [PORT[/PROTO]]
  system    reconcile [--dry-run]: bring store and kernel into agreement; check: verify both, changing nothing;
            hosts: the cluster's hosts; forget-host ID: give back a gone host's addresses
  daemon    serve the Docker Engine network API: cnm daemon [--socket PATH] (default /run/cnm.sock)
  completion  a completion script: cnm completion bash|zsh|fish (e.g. source <(cnm completion bash))
  events    the host's network events: cnm events [--since T] [--until T] [-f k=v]... [--format json]
  demo      a self-contained walk-through in an isolated namespace (--hosts N: a cluster of N hosts)

${NETWORK_USAGE}

${SANDBOX_USAGE}`;

const COMMAND_USAGE: Record<string, string> = {
  network: NETWORK_USAGE,
  sandbox: SANDBOX_USAGE,
  run: 'Usage: cnm run [--name NAME] [--rm] [--net NETWORK] [--ip IP] [--ip6 IP] [--alias A]... [-p SPEC]... [--dns IP]... [--dns-search D]... [--dns-option O]... [--add-host NAME:IP]... [--hostname H] [--link NAME[:ALIAS]]... [--expose PORT]... -- CMD ARGS...',
  port: 'Usage: cnm port SANDBOX [PORT[/PROTO]]',
  system: 'Usage: cnm system reconcile [--dry-run] | cnm system check | cnm system hosts | cnm system forget-host ID',
  daemon: 'Usage: cnm daemon [--socket PATH]   (default /run/cnm.sock; serves the Docker Engine network API)',
  events: EVENTS_USAGE,
  demo: 'Usage: cnm demo [--hosts N]   (a walk-through in an isolated namespace of its own; with --hosts, N hosts of a cluster on an etcd of its own)',
};

/** Whether -h/--help appears among a command's own words (not after `--`, which belong to `run`'s command). */
function asksForHelp(words: readonly string[]): boolean {
  for (const w of words) {
    if (w === '--') return false;
    if (w === '--help' || w === '-h') return true;
  }
  return false;
}

export async function main(argv: string[], ctx: Omit<CliContext, 'open' | 'options'> = { out: (s) => console.log(s), err: (s) => console.error(s) }): Promise<number> {
  try {
    const { globals, command } = splitGlobal(argv);
    const g = parse(globals, GLOBAL_OPTIONS).values;
    // help never acts, wherever it is asked for: it only prints
    if (command.length > 0 && asksForHelp(command)) {
      const { HELP, renderHelp } = await import('./help.js');
      const one = HELP[`${command[0]} ${command[1]}`] ?? HELP[command[0]!];
      ctx.out(one ? renderHelp(one) : (COMMAND_USAGE[command[0]!] ?? USAGE));
      return 0;
    }
    // command-level options win over the leading global ones (except --ip, see LEADING_ONLY)
    const merged = (v: Parsed['values']) => ({
      ...g,
      ...Object.fromEntries(Object.entries(v).filter(([k, x]) => x !== undefined && k in GLOBAL_OPTIONS && !LEADING_ONLY.has(k))),
    });
    const [cmd, ...rest] = command;
    const level = typeof g['log-level'] === 'string' ? g['log-level'] : undefined;
    if (level !== undefined) {
      if (!['debug', 'info', 'warn', 'error'].includes(level)) throw usage(`--log-level ${level}: expected debug, info, warn or error`, level);
      setLogLevel(level as LogLevel);
    }
    if (g.version || cmd === 'version') {
      ctx.out(`cnm version ${VERSION}`);
      return 0;
    }
    if (g.help || cmd === undefined || cmd === 'help' || cmd === '--help') {
      ctx.out(USAGE);
      return cmd === undefined && !g.help ? 1 : 0;
    }
    const { controllerOptions } = await import('./context.js');
    const full: CliContext = {
      ...ctx,
      // the controller (and what it loads) only for a command that opens it
      open: async (v, extra) => {
        const opts = controllerOptions(merged(v), extra);
        return (await import('./open.js')).openFromOptions(opts);
      },
      options: (v, extra) => controllerOptions(merged(v), extra),
    };
    // each command's code is loaded when it runs: a command pays only for what it uses
    switch (cmd) {
      case 'network':
        return await (await import('./network.js')).networkCommand(full, rest);
      case 'sandbox':
        return await (await import('./sandbox.js')).sandboxCommand(full, rest);
      case 'run':
        return await (await import('./run.js')).runCommand(full, rest);
      case 'system':
        return await (await import('./system.js')).systemCommand(full, rest);
      case 'port':
        return await (await import('./port.js')).portCommand(full, rest);
      case 'daemon':
        return await (await import('./daemon.js')).daemonCommand(full, rest);
      case 'completion':
        return (await import('./completion.js')).completionCommand(full, rest);
      case 'events':
        return await (await import('./events.js')).eventsCommand(full, rest);
      case 'demo':
        return await (await import('./demo.js')).demoCommand(full, rest);
      default:
        ctx.err(`Error: unknown command "${cmd}"; see cnm --help${didYouMean(cmd, ['network', 'sandbox', 'run', 'port', 'system', 'daemon', 'events', 'completion', 'demo', 'version', 'help'])}`);
        return 125;
    }
  } catch (e) {
    (await import('./context.js')).reportError(ctx, e);
    // a wrong use of the command exits 125, as docker's do; a failed operation 1
    return e instanceof CnmError && e.details.usage === true ? 125 : 1;
  }
}
