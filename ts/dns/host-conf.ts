/**
 * The host's resolver configuration, as a program in the host netns sees it:
 * `/etc/netns/<host>/resolv.conf` when the host is a named netns that has one
 * (what `ip netns exec` shows), else `/etc/resolv.conf`.
 */
import { readFileSync, statSync } from 'node:fs';
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

/** The host's resolv.conf for `hostNetns`, and what `stat` says of it (to tell a change). */
function current(hostNetns: string | null): { path: string; stamp: string } {
  const own = hostNetns === null ? undefined : `/etc/netns/${hostNetns}/resolv.conf`;
  for (const path of own ? [own, '/etc/resolv.conf'] : ['/etc/resolv.conf']) {
    const st = statSync(path, { throwIfNoEntry: false });
    if (st) return { path, stamp: `${path}|${st.ino}|${st.size}|${st.mtimeMs}` };
  }
  return { path: '/etc/resolv.conf', stamp: '' };
}

/** Parsed files by host netns: read again only when stat says the file changed. */
const cache = new Map<string | null, { stamp: string; conf: ResolvConf }>();

export function hostResolvConf(hostNetns: string | null): ResolvConf {
  const { path, stamp } = current(hostNetns);
  const hit = cache.get(hostNetns);
  if (hit && stamp !== '' && hit.stamp === stamp) return hit.conf;
  let conf: ResolvConf;
  try {
    conf = parseResolvConf(readFileSync(path, 'utf8'));
  } catch (e) {
    log.warn('the host resolv.conf could not be read: sandboxes get no upstream DNS servers', { path, err: e });
    conf = { nameservers: [], search: [], options: [] };
  }
  cache.set(hostNetns, { stamp, conf });
  return conf;
}
