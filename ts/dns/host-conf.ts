/**
 * The host's resolver configuration, as a program in the host netns sees it:
 * `/etc/netns/<host>/resolv.conf` when the host is a named netns that has one
 * (what `ip netns exec` shows), else `/etc/resolv.conf`.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { log } from '../log.js';

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const line of text.split('\n')) {
    const [key, ...rest] = line.replace(/[#;].*/, '').trim().split(/\s+/);
    if (key === 'nameserver' && rest[0] && isIP(rest[0].replace(/%.*/, ''))) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.search = rest.filter(Boolean);
    else if (key === 'options') out.options.push(...rest.filter(Boolean));
  }
  return out;
}

/** The host's resolv.conf path for `hostNetns`. */
export function hostResolvConfPath(hostNetns: string | null): string {
  if (hostNetns !== null) {
    const own = `/etc/netns/${hostNetns}/resolv.conf`;
    try {
      readFileSync(own);
      return own;
    } catch {
      // none of its own: the netns sees the machine's
    }
  }
  return '/etc/resolv.conf';
}

export function hostResolvConf(hostNetns: string | null): ResolvConf {
  const path = hostResolvConfPath(hostNetns);
  try {
    return parseResolvConf(readFileSync(path, 'utf8'));
  } catch (e) {
    log.warn('the host resolv.conf could not be read: sandboxes get no upstream DNS servers', { path, err: e });
    return { nameservers: [], search: [], options: [] };
  }
}
