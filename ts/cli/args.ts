/** Argument parsing for the `cnm` command, on node:util parseArgs. */
import { parseArgs } from 'node:util';
import { CnmError, invalid } from '../errors.js';

/** A wrong use of the command (exit 125, as docker's usage errors). */
export function usage(message: string, value?: unknown): CnmError {
  return new CnmError('ERR_INVALID_ARGUMENT', message, { value, usage: true });
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The known word nearest to `word`, when near enough to be what was meant ("" otherwise). */
export function nearest(word: string, known: readonly string[]): string {
  let best = '';
  let bestD = Infinity;
  for (const k of known) {
    const d = k.startsWith(word) && word.length >= 2 ? 0.5 : distance(word, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : '';
}

/** " Did you mean X?" or "". */
export function didYouMean(word: string, known: readonly string[]): string {
  const n = nearest(word, known);
  return n ? `\n\nDid you mean this?\n\t${n}` : '';
}

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/** Options accepted before the command word (and, for convenience, after it). */
export const GLOBAL_OPTIONS: OptionSpec = {
  'state-dir': { type: 'string' },
  'host-netns': { type: 'string' },
  bip: { type: 'string' },
  bridge: { type: 'string', short: 'b' },
  'default-mtu': { type: 'string' },
  firewall: { type: 'string' },
  iptables: { type: 'string' },
  icc: { type: 'string' },
  'ip-forward': { type: 'string' },
  ip: { type: 'string' },
  'default-address-pool': { type: 'string', multiple: true },
  'plugin-dir': { type: 'string' },
  'allow-direct-routing': { type: 'boolean' },
  'cluster-store': { type: 'string' },
  'cluster-advertise': { type: 'string' },
  'cluster-name': { type: 'string' },
  'cluster-lease-ttl': { type: 'string' },
  'cluster-store-ca': { type: 'string' },
  'cluster-store-cert': { type: 'string' },
  'cluster-store-key': { type: 'string' },
  'log-level': { type: 'string', short: 'l' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
};

/** Global options whose names commands reuse with another meaning (sandbox create --ip). */
export const LEADING_ONLY = new Set(['ip']);

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** arguments after `--`, untouched */
  rest: string[];
}

/** Parse a command's arguments; unknown options are an ERR_INVALID_ARGUMENT. */
export function parse(argv: string[], spec: OptionSpec): Parsed {
  const dd = argv.indexOf('--');
  const head = dd >= 0 ? argv.slice(0, dd) : argv;
  const rest = dd >= 0 ? argv.slice(dd + 1) : [];
  try {
    const { values, positionals } = parseArgs({
      args: head,
      options: { ...GLOBAL_OPTIONS, ...spec },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as Parsed['values'], positionals, rest };
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional.*$/s, '');
    // an unknown flag: the nearest known one
    const flag = /Unknown option '(-{1,2}[^']+)'/.exec(msg)?.[1];
    const known = Object.keys({ ...GLOBAL_OPTIONS, ...spec }).map((k) => `--${k}`);
    const hint = flag?.startsWith('--') ? didYouMean(flag, known) : '';
    throw usage(`${msg} (see --help)${hint}`, flag);
  }
}

/** Split leading global options from the command words. */
export function splitGlobal(argv: string[]): { globals: string[]; command: string[] } {
  const globals: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('-') && argv[i] !== '--') {
    const a = argv[i]!;
    const name = a.replace(/^--?/, '').split('=')[0]!;
    const spec = GLOBAL_OPTIONS[name] ?? Object.values(GLOBAL_OPTIONS).find((o) => o.short === name);
    if (!spec) throw usage(`unknown global option ${a} (see cnm --help)${didYouMean(a, Object.keys(GLOBAL_OPTIONS).map((k) => `--${k}`))}`, a);
    globals.push(a);
    if (spec.type === 'string' && !a.includes('=')) {
      if (i + 1 >= argv.length) throw usage(`option ${a} needs a value`, a);
      globals.push(argv[i + 1]!);
      i++;
    }
    i++;
  }
  return { globals, command: argv.slice(i) };
}

export function str(v: Parsed['values'][string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function list(v: Parsed['values'][string]): string[] {
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/**
 * Take a boolean flag Docker's way out of argv: `--NAME` is true, `--NAME=true|false`
 * says which (node's parseArgs takes no value for a boolean). Returns the value
 * (undefined when absent; the last one wins) and the other arguments.
 */
export function takeBool(argv: readonly string[], name: string): { value: boolean | undefined; rest: string[] } {
  let value: boolean | undefined;
  const rest: string[] = [];
  const dd = argv.indexOf('--');
  argv.forEach((a, i) => {
    if ((dd < 0 || i < dd) && (a === `--${name}` || a.startsWith(`--${name}=`))) {
      const s = a.slice(name.length + 3);
      value = a === `--${name}` ? true : parseBoolFlag(name, s);
    } else rest.push(a);
  });
  return { value, rest };
}

function parseBoolFlag(name: string, s: string): boolean {
  if (s === 'true' || s === '1') return true;
  if (s === 'false' || s === '0') return false;
  throw invalid(`invalid value "${s}" for --${name}: expected true or false`, s);
}
