/**
 * System programs some tests need (iptables for its backend, etcd, the docker CLI…):
 * a test whose program is missing is skipped, saying which package provides it,
 * rather than failing on a machine without it (`.ci/run` installs them all).
 */
import { existsSync } from 'node:fs';

const DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

/** Which Debian package provides each program. */
const PACKAGES: Record<string, string> = {
  iptables: 'iptables',
  'iptables-save': 'iptables',
  'iptables-restore': 'iptables',
  ip6tables: 'iptables',
  'ip6tables-save': 'iptables',
  nft: 'nftables',
  dig: 'dnsutils',
  dnsperf: 'dnsperf',
  etcd: 'etcd-server',
  docker: 'docker.io',
  unshare: 'util-linux',
  nsenter: 'util-linux',
  strace: 'strace',
};

export function has(tool: string): boolean {
  return DIRS.some((d) => existsSync(`${d}/${tool}`));
}

/**
 * Why tests needing `tools` cannot run here (printed once), or undefined when they can.
 * Use: `const it = skipReason(['iptables']) ? test.skip : test`.
 */
export function skipReason(tools: string[], what = 'these tests'): string | undefined {
  const missing = tools.filter((t) => !has(t));
  if (missing.length === 0) return undefined;
  const pkgs = [...new Set(missing.map((t) => PACKAGES[t] ?? t))];
  const reason = `${what} skipped: ${missing.join(', ')} not installed (apt-get install ${pkgs.join(' ')}; .ci/run installs it)`;
  console.log(reason);
  return reason;
}

/** The firewall backends whose programs this machine has (the iptables one is skipped, with its reason, without them). */
export function backendsHere(): Array<'nftables' | 'iptables'> {
  return skipReason(['iptables', 'iptables-save', 'iptables-restore', 'ip6tables-save'], 'the iptables backend tests') ? ['nftables'] : ['nftables', 'iptables'];
}
