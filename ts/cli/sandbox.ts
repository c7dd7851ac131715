/** `cnm sandbox …`: create, ls, inspect, rm. */
import { parsePublish } from '../ports.js';
import type { SandboxCreateOptions } from '../controller.js';
import type { SandboxInspect } from '../sandbox.js';
import { invalid } from '../errors.js';
import { type OptionSpec, type Parsed, list, parse, str, didYouMean, usage } from './args.js';
import { type CliContext, inspectCommand, listCommand, removeCommand, withController } from './context.js';
import { SANDBOX_USAGE } from './usage.js';

/** `sandbox ls -f`: id (prefix), name (substring), network (name or id prefix). */
function sandboxesMatching(list: SandboxInspect[], filters: Record<string, string[]> | undefined): SandboxInspect[] {
  const f = filters ?? {};
  for (const k of Object.keys(f)) if (!['id', 'name', 'network'].includes(k)) throw invalid(`invalid filter '${k}': expected id, name or network`, k);
  const any = (k: string, ok: (v: string) => boolean) => !f[k]?.length || f[k]!.some(ok);
  return list.filter(
    (s) =>
      any('id', (v) => s.Id.startsWith(v)) &&
      any('name', (v) => s.Name.includes(v)) &&
      any('network', (v) => Object.entries(s.Networks).some(([name, n]) => name === v || n.NetworkID.startsWith(v))),
  );
}

/** The options of `sandbox create` and `run` that shape the sandbox. */
export const SANDBOX_OPTIONS = {
  net: { type: 'string' },
  network: { type: 'string' },
  ip: { type: 'string' },
  ip6: { type: 'string' },
  alias: { type: 'string', multiple: true },
  publish: { type: 'string', short: 'p', multiple: true },
  dns: { type: 'string', multiple: true },
  'dns-search': { type: 'string', multiple: true },
  'dns-option': { type: 'string', multiple: true },
  'add-host': { type: 'string', multiple: true },
  hostname: { type: 'string' },
  link: { type: 'string', multiple: true },
  expose: { type: 'string', multiple: true },
  'mac-address': { type: 'string' },
  'link-local-ip': { type: 'string', multiple: true },
  'netns-path': { type: 'string' },
} as const satisfies OptionSpec;

/** What those options ask of createSandbox (all but the name); bad -p specs throw here. */
export function sandboxRequest(v: Parsed['values']): Omit<SandboxCreateOptions, 'name'> {
  return {
    net: str(v.net) ?? str(v.network),
    ip: str(v.ip),
    ip6: str(v.ip6),
    aliases: list(v.alias).length ? list(v.alias) : undefined,
    ports: list(v.publish).flatMap(parsePublish),
    dns: list(v.dns).length ? list(v.dns) : undefined,
    dnsSearch: list(v['dns-search']).length ? list(v['dns-search']) : undefined,
    dnsOptions: list(v['dns-option']).length ? list(v['dns-option']) : undefined,
    extraHosts: list(v['add-host']).length ? list(v['add-host']) : undefined,
    hostname: str(v.hostname),
    links: list(v.link).length ? list(v.link) : undefined,
    expose: list(v.expose).length ? list(v.expose) : undefined,
    mac: str(v['mac-address']),
    linkLocalIps: list(v['link-local-ip']).length ? list(v['link-local-ip']) : undefined,
    netnsPath: str(v['netns-path']),
  };
}

export async function sandboxCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  switch (sub) {
    case 'create': {
      const { values: v, positionals } = parse(args, SANDBOX_OPTIONS);
      if (positionals.length !== 1) throw usage('sandbox create needs exactly one NAME');
      const req = sandboxRequest(v);
      return withController(ctx, v, async (ctl) => {
        const sb = await ctl.createSandbox({ name: positionals[0]!, ...req });
        ctx.out(sb.id);
        return 0;
      });
    }
    case 'prune':
      return (await import('./prune.js')).pruneCommand(ctx, args, 'sandbox');
    case 'ls':
    case 'list': {
      return listCommand(ctx, args, (v, filters) => withController(ctx, v, async (ctl) => sandboxesMatching(ctl.listSandboxes().map((s) => s.inspect()), filters)), {
        quiet: (s) => s.Name,
        json: (s) => s,
        headers: ['SANDBOX ID', 'NAME', 'MODE', 'NETWORKS', 'ADDRESSES'],
        titles: { Id: 'SANDBOX ID', NetworkMode: 'MODE' },
        row: (s, full) => [
          full ? s.Id : s.Id.slice(0, 12),
          s.Name,
          s.NetworkMode,
          Object.keys(s.Networks).join(','),
          Object.values(s.Networks)
            .filter((n) => n.IPAddress)
            .map((n) => `${n.InterfaceName}=${n.IPAddress}/${n.IPPrefixLen}`)
            .join(','),
        ],
      });
    }
    case 'inspect':
      return inspectCommand(ctx, args, 'sandbox', (ctl, ref) => ctl.getSandbox(ref).inspect());
    case 'rm':
    case 'remove':
      return removeCommand(ctx, args, 'sandbox', { force: { type: 'boolean', short: 'f' } }, (ctl, ref) => ctl.removeSandbox(ref));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      ctx.out(SANDBOX_USAGE);
      return sub === undefined ? 1 : 0;
    default:
      throw usage(`unknown command "sandbox ${sub}"${didYouMean(sub, ['create', 'ls', 'inspect', 'rm', 'prune'])}\n\n${SANDBOX_USAGE}`, sub);
  }
}
