/**
 * What every CLI command gets (the parsed global options and a controller
 * opener) and the shapes commands share. Nothing here loads the controller:
 * `open` does, when a command calls it (see open.ts).
 */
import type { ControllerOptions, NetworkController } from '../controller.js';
import { CnmError, invalid, toCnmError } from '../errors.js';
import { log } from '../log.js';
import { checkBackend } from '../firewall.js';
import { parseBool, parseMtu } from '../validate.js';
import { type OptionSpec, type Parsed, list, parse, str, usage } from './args.js';
import { json, table } from './format.js';
import { formatItems } from './template.js';
import type { DefaultPool } from '../ipam/default-pools.js';

export interface CliContext {
  out: (s: string) => void;
  err: (s: string) => void;
  /** open the controller with the global options (state dir, host netns, bridge) */
  open: (v: Parsed['values'], extra?: Partial<ControllerOptions>) => Promise<NetworkController>;
  /** the controller options the global options stand for */
  options: (v: Parsed['values'], extra?: Partial<ControllerOptions>) => ControllerOptions;
}

/** Docker's `--default-address-pool base=10.10.0.0/16,size=24`. */
export function parsePoolFlag(s: string): DefaultPool {
  const kv = Object.fromEntries(s.split(',').map((p) => p.split('=', 2) as [string, string]));
  const size = Number(kv.size);
  if (!kv.base || !/^\d+$/.test(kv.size ?? '') || Object.keys(kv).some((k) => k !== 'base' && k !== 'size')) {
    throw invalid(`invalid --default-address-pool "${s}": expected base=CIDR,size=N`, s);
  }
  return { base: kv.base, size };
}

function flag(v: Parsed['values'], name: string): boolean | undefined {
  const s = str(v[name]);
  return s === undefined ? undefined : parseBool(`--${name}`, s);
}

export function controllerOptions(v: Parsed['values'], extra: Partial<ControllerOptions> = {}): ControllerOptions {
  const mtu = str(v['default-mtu']);
  const firewall = str(v.firewall) ?? process.env.CNM_FIREWALL;
  const hostNetns = str(v['host-netns']) ?? process.env.CNM_HOST_NETNS;
  if (hostNetns === '') throw invalid('--host-netns must not be empty');
  return {
    stateDir: str(v['state-dir']) ?? process.env.CNM_STATE_DIR,
    hostNetns: hostNetns ?? null,
    bip: str(v.bip),
    bridge: str(v.bridge),
    mtu: mtu === undefined ? undefined : parseMtu(mtu, '--default-mtu'),
    firewall: firewall === undefined ? undefined : checkBackend(firewall),
    iptables: flag(v, 'iptables'),
    icc: flag(v, 'icc'),
    ipForward: flag(v, 'ip-forward'),
    ip: str(v.ip),
    allowDirectRouting: v['allow-direct-routing'] === true ? true : undefined,
    defaultAddressPools: list(v['default-address-pool']).length ? list(v['default-address-pool']).map(parsePoolFlag) : undefined,
    pluginDir: str(v['plugin-dir']) ?? process.env.CNM_PLUGIN_DIR,
    ...clusterOptions(v),
    ...extra,
  };
}

/** --cluster-* (env CNM_CLUSTER_STORE, CNM_CLUSTER_ADVERTISE), only the ones given. */
function clusterOptions(v: Parsed['values']): Partial<ControllerOptions> {
  const out: Partial<ControllerOptions> = {};
  const store = str(v['cluster-store']) ?? process.env.CNM_CLUSTER_STORE;
  const advertise = str(v['cluster-advertise']) ?? process.env.CNM_CLUSTER_ADVERTISE;
  if (store !== undefined) out.clusterStore = store;
  if (advertise !== undefined) out.clusterAdvertise = advertise;
  if (str(v['cluster-name']) !== undefined) out.clusterName = str(v['cluster-name']);
  const ttl = str(v['cluster-lease-ttl']);
  if (ttl !== undefined) {
    if (!/^\d+$/.test(ttl) || Number(ttl) < 2 || Number(ttl) > 3600) throw invalid(`--cluster-lease-ttl must be 2 to 3600 seconds, not ${ttl}`, ttl);
    out.clusterLeaseTtl = Number(ttl);
  }
  const [ca, cert, key] = [str(v['cluster-store-ca']), str(v['cluster-store-cert']), str(v['cluster-store-key'])];
  if (ca !== undefined || cert !== undefined || key !== undefined) out.clusterTls = { ca, cert, key };
  return out;
}

/** Run fn with an open controller and always close it. */
export async function withController<T>(
  ctx: CliContext,
  v: Parsed['values'],
  fn: (c: NetworkController) => Promise<T>,
  extra?: Partial<ControllerOptions>,
): Promise<T> {
  const ctl = await ctx.open(v, extra);
  try {
    return await fn(ctl);
  } finally {
    await ctl.close();
  }
}

/**
 * Print a failure for a person (what to fix) and log it for a script: with
 * CNM_LOG=debug the log line carries the code and the cause; an internal error
 * (a bug) is always logged.
 */
export function reportError(ctx: Pick<CliContext, 'err'>, e: unknown): void {
  const err = toCnmError(e);
  ctx.err(`Error: ${err.message}`);
  log.debug('command failed', { err });
  if (!(e instanceof CnmError)) log.error('command failed on an internal error', { err });
}

/**
 * Apply fn to each NAME|ID like docker does for inspect and rm: carry on past a
 * CnmError, print it, and return exit code 1 if any failed.
 */
export async function eachRef(ctx: CliContext, refs: string[], fn: (ref: string) => unknown): Promise<number> {
  let rc = 0;
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (e) {
      if (!(e instanceof CnmError)) throw e;
      reportError(ctx, e);
      rc = 1;
    }
  }
  return rc;
}

/** `inspect NAME|ID…`: a JSON array of what was found, an error line for each miss. */
export async function inspectCommand(ctx: CliContext, args: string[], kind: string, get: (ctl: NetworkController, ref: string) => unknown): Promise<number> {
  const { values: v, positionals } = parse(args, { format: { type: 'string', short: 'f' } });
  if (positionals.length === 0) throw usage(`${kind} inspect needs at least one NAME or ID`);
  return withController(ctx, v, async (ctl) => {
    const found: unknown[] = [];
    const rc = await eachRef(ctx, positionals, (ref) => found.push(get(ctl, ref)));
    const fmt = str(v.format);
    if (fmt === undefined) ctx.out(json(found));
    else for (const line of formatItems(fmt, found)) ctx.out(line);
    return rc;
  });
}

/** `rm NAME|ID…`: each removed one is echoed, each failure gets its error line. */
export async function removeCommand(
  ctx: CliContext,
  args: string[],
  kind: string,
  spec: OptionSpec,
  remove: (ctl: NetworkController, ref: string) => Promise<void>,
): Promise<number> {
  const { values: v, positionals } = parse(args, spec);
  if (positionals.length === 0) throw usage(`${kind} rm needs at least one NAME or ID`);
  return withController(ctx, v, async (ctl) =>
    eachRef(ctx, positionals, async (ref) => {
      await remove(ctl, ref);
      ctx.out(ref);
    }),
  );
}

/** How `ls` shows one kind of item: its `-q` line, its JSON object and its table row. */
export interface ListView<T> {
  quiet: (item: T, full: boolean) => string;
  json: (item: T) => unknown;
  headers: string[];
  row: (item: T, full: boolean) => string[];
  /** docker's column titles of template fields (`table {{.ID}}` is "NETWORK ID") */
  titles?: Record<string, string>;
}

/**
 * `ls [-q] [--format table|json] [--no-trunc] [-f k=v]...`: the items `get`
 * returns (given the command's options and the filters), shown as `view` says;
 * `full` ids with --no-trunc.
 */
export async function listCommand<T>(
  ctx: CliContext,
  args: string[],
  get: (v: Parsed['values'], filters: Record<string, string[]> | undefined) => Promise<T[]>,
  view: ListView<T>,
): Promise<number> {
  const { values: v } = parse(args, { format: { type: 'string' }, quiet: { type: 'boolean', short: 'q' }, 'no-trunc': { type: 'boolean' }, filter: { type: 'string', short: 'f', multiple: true } });
  const filters = list(v.filter).length ? kvFilters(list(v.filter)) : undefined;
  const full = v['no-trunc'] === true;
  const fmt = str(v.format) ?? 'table';
  const items = await get(v, filters);
  if (v.quiet) {
    for (const item of items) ctx.out(view.quiet(item, full));
  } else if (fmt === 'table') {
    ctx.out(table(view.headers, items.map((i) => view.row(i, full))));
  } else {
    // json: one object per line, as docker; else a Go template over each item's JSON view
    for (const line of formatItems(fmt, items.map(view.json), view.titles)) ctx.out(line);
  }
  return 0;
}

/** `-f key=value` flags as filters (values of one key gathered), as docker takes them. */
export function kvFilters(flags: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of flags) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw usage(`bad format of filter (expected name=value): ${f}`, f);
    (out[f.slice(0, eq)] ??= []).push(f.slice(eq + 1));
  }
  return out;
}
