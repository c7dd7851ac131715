/**
 * A sandbox's name-resolution settings (Docker's --dns, --dns-search,
 * --dns-option, --add-host, --hostname, --link): checked before anything
 * changes, kept on the sandbox record.
 */
import { invalid } from '../errors.js';
import { isIP } from 'node:net';

/** The settings as kept on the sandbox record. */
export interface SandboxDns {
  /** upstream servers for this sandbox (IP addresses) */
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** extra hosts entries: [name, ip] */
  extraHosts?: Array<[string, string]>;
  hostname?: string;
}

const LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** A host name (RFC 1123): dot-separated labels of letters, digits and inner hyphens. */
export function checkHostname(name: unknown, what = '--hostname'): string {
  if (typeof name !== 'string' || name === '' || name.length > 253 || !name.split('.').every((l) => LABEL.test(l))) {
    throw invalid(`${what} "${String(name)}" is not a valid host name: letters, digits and inner hyphens, in dot-separated labels of at most 63`, name);
  }
  return name;
}

function list(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw invalid(`${what} must be a list of strings`, v);
  return v as string[];
}

/** --add-host NAME:IP (or NAME=IP, as Docker 25 allows); IPv6 may be bracketed. */
export function parseAddHost(spec: string): [string, string] {
  const at = spec.search(/[:=]/);
  const name = at > 0 ? spec.slice(0, at) : '';
  let ip = at > 0 ? spec.slice(at + 1) : '';
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (!name || !ip) throw invalid(`invalid --add-host "${spec}": expected NAME:IP, e.g. db:10.0.0.5`, spec);
  checkHostname(name, `--add-host name`);
  if (!isIP(ip)) throw invalid(`invalid --add-host "${spec}": "${ip}" is not an IP address`, spec);
  return [name, ip];
}

/** Check what the caller gave; throws ERR_INVALID_ARGUMENT naming the bad value. */
export function checkSandboxDns(req: { dns?: unknown; dnsSearch?: unknown; dnsOptions?: unknown; extraHosts?: unknown; hostname?: unknown }): SandboxDns {
  const out: SandboxDns = {};
  const dns = list(req.dns, '--dns');
  for (const s of dns) if (!isIP(s)) throw invalid(`invalid --dns "${s}": expected an IP address, e.g. 10.0.0.53`, s);
  const search = list(req.dnsSearch, '--dns-search');
  for (const s of search) if (s !== '.' && (s.length > 253 || !s.replace(/\.$/, '').split('.').every((l) => /^[a-zA-Z0-9_]([a-zA-Z0-9_-]*[a-zA-Z0-9_])?$/.test(l)))) throw invalid(`invalid --dns-search "${s}": expected a domain name`, s);
  const options = list(req.dnsOptions, '--dns-option');
  for (const s of options) if (s === '' || /\s/.test(s)) throw invalid(`invalid --dns-option "${s}": expected one option such as ndots:2`, s);
  const hosts = list(req.extraHosts, '--add-host').map(parseAddHost);
  if (dns.length) out.dns = dns;
  if (search.length) out.dnsSearch = search;
  if (options.length) out.dnsOptions = options;
  if (hosts.length) out.extraHosts = hosts;
  if (req.hostname !== undefined) out.hostname = checkHostname(req.hostname);
  return out;
}
