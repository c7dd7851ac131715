/** `cnm network …`: create, ls, inspect, rm, connect, disconnect. */
import type { IpamPoolRequest } from '../controller.js';
import { invalid } from '../errors.js';
import { parsePublish } from '../ports.js';
import { contains, parseCidr, parseIp, parseSubnet } from '../net/ip.js';
import { parseKv } from '../validate.js';
import { type Parsed, list, parse, str, takeBool, didYouMean, usage } from './args.js';
import type { NetworkRecord } from '../types.js';
import { type CliContext, inspectCommand, listCommand, removeCommand, withController } from './context.js';
import { NETWORK_USAGE } from './usage.js';

/** Pair gateways, ranges and aux addresses with the subnet containing them, as docker does. */
export function ipamFromFlags(subnets: string[], gateways: string[], ranges: string[], aux: string[]): IpamPoolRequest[] {
  const pools: IpamPoolRequest[] = subnets.map((s) => ({ subnet: s }));
  const parsed = subnets.map((s) => parseSubnet(s));
  const home = (ipOrCidr: string, what: string) => {
    const ip = ipOrCidr.includes('/') ? (() => { const c = parseCidr(ipOrCidr, what); return { family: c.family, value: c.addr }; })() : parseIp(ipOrCidr, what);
    const i = parsed.findIndex((c) => contains(c, ip));
    if (i < 0) throw invalid(`no matching subnet for ${what} ${ipOrCidr}`, ipOrCidr);
    return pools[i]!;
  };
  for (const g of gateways) {
    const p = home(g, 'gateway');
    if (p.gateway) throw invalid(`cannot configure multiple gateways (${p.gateway}, ${g}) for the same subnet ${p.subnet}`, g);
    p.gateway = g;
  }
  for (const r of ranges) {
    const p = home(r, 'range');
    if (p.ipRange) throw invalid(`cannot configure multiple ranges (${p.ipRange}, ${r}) on the same subnet ${p.subnet}`, r);
    p.ipRange = r;
  }
  for (const [name, ip] of Object.entries(parseKv(aux, 'aux-address'))) {
    const p = home(ip, 'auxiliary address');
    p.auxAddresses = { ...p.auxAddresses, [name]: ip };
  }
  return pools;
}

/**
 * The networks `ls` shows: read from the store alone (see network-ls.ts) unless
 * a cluster store is given, whose global networks come from etcd.
 */
async function readNetworks(ctx: CliContext, v: Parsed['values'], filters: Record<string, string[]> | undefined): Promise<NetworkRecord[]> {
  const opts = ctx.options(v);
  if (opts.clusterStore !== undefined) return withController(ctx, v, async (ctl) => ctl.listNetworks({ filters }).map((n) => n.record));
  return (await import('./network-ls.js')).readNetworks(opts, filters);
}

export async function networkCommand(ctx: CliContext, argv: string[]): Promise<number> {
  const [sub, ...args] = argv;
  switch (sub) {
    case 'create': {
      const ipv4 = takeBool(args, 'ipv4');
      const ipv6 = takeBool(ipv4.rest, 'ipv6');
      const { values: v, positionals } = parse(ipv6.rest, {
        driver: { type: 'string', short: 'd' },
        subnet: { type: 'string', multiple: true },
        gateway: { type: 'string', multiple: true },
        'ip-range': { type: 'string', multiple: true },
        'aux-address': { type: 'string', multiple: true },
        internal: { type: 'boolean' },
        attachable: { type: 'boolean' },
        opt: { type: 'string', short: 'o', multiple: true },
        label: { type: 'string', multiple: true },
        mtu: { type: 'string' },
        'ipam-driver': { type: 'string' },
        'ipam-opt': { type: 'string', multiple: true },
      });
      if (positionals.length !== 1) throw usage('network create needs exactly one NAME');
      const subnets = list(v.subnet);
      if (subnets.length === 0 && (list(v.gateway).length || list(v['ip-range']).length || list(v['aux-address']).length)) {
        throw invalid('--gateway, --ip-range and --aux-address need a --subnet');
      }
      const mtu = str(v.mtu);
      if (mtu !== undefined && !/^\d+$/.test(mtu)) throw invalid(`--mtu ${mtu}: expected an integer`, mtu);
      const ipam = ipamFromFlags(subnets, list(v.gateway), list(v['ip-range']), list(v['aux-address']));
      return withController(ctx, v, async (ctl) => {
        const net = await ctl.createNetwork({
          name: positionals[0]!,
          driver: str(v.driver),
          ipam,
          internal: v.internal === true,
          attachable: v.attachable === true,
          enableIPv6: ipv6.value,
          enableIPv4: ipv4.value,
          options: parseKv(list(v.opt), 'option'),
          labels: parseKv(list(v.label), 'label'),
          mtu: mtu === undefined ? undefined : Number(mtu),
          ipamDriver: str(v['ipam-driver']),
          ipamOptions: parseKv(list(v['ipam-opt']), 'ipam-opt'),
        });
        ctx.out(net.id);
        return 0;
      });
    }
    case 'ls':
    case 'list': {
      return listCommand(ctx, args, (v, filters) => readNetworks(ctx, v, filters), {
        quiet: (n, full) => (full ? n.id : n.id.slice(0, 12)),
        json: (n) => ({
          ID: n.id.slice(0, 12),
          Name: n.name,
          Driver: n.driver,
          Scope: n.scope,
          IPv4: String(n.enableIPv4 !== false),
          IPv6: String(n.enableIPv6),
          Internal: String(n.internal),
          Subnets: n.ipam.config.map((c) => c.subnet),
          Labels: Object.entries(n.labels).map(([k, val]) => `${k}=${val}`).join(','),
          CreatedAt: n.created,
        }),
        headers: ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'],
        titles: { ID: 'NETWORK ID', CreatedAt: 'CREATED AT', IPv6: 'IPV6' },
        row: (n, full) => [full ? n.id : n.id.slice(0, 12), n.name, n.driver, n.scope],
      });
    }
    case 'inspect':
      return inspectCommand(ctx, args, 'network', (ctl, ref) => ctl.getNetwork(ref).inspect());
    case 'rm':
    case 'remove':
      return removeCommand(ctx, args, 'network', {}, (ctl, ref) => ctl.removeNetwork(ref));
    case 'prune':
      return (await import('./prune.js')).pruneCommand(ctx, args, 'network');
    case 'connect': {
      const { values: v, positionals } = parse(args, {
        ip: { type: 'string' },
        ip6: { type: 'string' },
        alias: { type: 'string', multiple: true },
        link: { type: 'string', multiple: true },
        publish: { type: 'string', short: 'p', multiple: true },
        'mac-address': { type: 'string' },
        'link-local-ip': { type: 'string', multiple: true },
        'driver-opt': { type: 'string', multiple: true },
      });
      if (positionals.length !== 2) throw usage('network connect needs NETWORK and SANDBOX');
      const ports = list(v.publish).flatMap(parsePublish);
      return withController(ctx, v, async (ctl) => {
        await ctl.connect(positionals[0]!, positionals[1]!, {
          ip: str(v.ip),
          ip6: str(v.ip6),
          aliases: list(v.alias),
          ports,
          links: list(v.link).length ? list(v.link) : undefined,
          mac: str(v['mac-address']),
          linkLocalIps: list(v['link-local-ip']),
          driverOpts: parseKv(list(v['driver-opt']), 'driver-opt'),
        });
        return 0;
      });
    }
    case 'disconnect': {
      const { values: v, positionals } = parse(args, {});
      if (positionals.length !== 2) throw usage('network disconnect needs NETWORK and SANDBOX');
      return withController(ctx, v, async (ctl) => {
        await ctl.disconnect(positionals[0]!, positionals[1]!);
        return 0;
      });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      ctx.out(NETWORK_USAGE);
      return sub === undefined ? 1 : 0;
    default:
      throw usage(`unknown command "network ${sub}"${didYouMean(sub, ['create', 'ls', 'inspect', 'rm', 'prune', 'connect', 'disconnect'])}\n\n${NETWORK_USAGE}`, sub);
  }
}
