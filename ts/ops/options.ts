/** Checks of the controller's options (Docker's daemon flags), before anything is opened. */
import { invalid } from '../errors.js';
import { checkBackend } from '../firewall.js';
import { DEFAULT_POOLS, validatePools } from '../ipam/default-pools.js';
import type { FirewallBackendName } from '../native-api.js';
import { parseCidr, parseIp } from '../net/ip.js';
import type { ControllerOptions } from '../options.js';
import { checkIfname, checkName, parseMtu } from '../validate.js';
import type { Settings } from './context.js';

/** The validated options: the firewall backend and the settings operations use. */
export interface Checked {
  backend: FirewallBackendName;
  settings: Settings;
}

/** Check every option; throws ERR_INVALID_ARGUMENT naming the one to fix. */
export function checkOptions(opts: ControllerOptions): Checked {
  if (typeof opts !== 'object' || opts === null) throw invalid('controller options must be an object', opts);
  if (opts.bip !== undefined && opts.bridge !== undefined) {
    throw invalid('you specified -b & --bip, mutually exclusive options: configure one or the other', opts.bip);
  }
  if (opts.bridge !== undefined) checkIfname(opts.bridge, 'bridge');
  if (opts.bip !== undefined) parseCidr(opts.bip, 'bip');
  if (opts.mtu !== undefined) parseMtu(opts.mtu);
  if (opts.defaultAddressPools) validatePools(opts.defaultAddressPools);
  const backend = firewallBackend(opts);
  if (opts.icc === false && backend === 'none') {
    throw invalid('you specified --iptables=false (firewall none) with --icc=false: ICC=false needs the firewall to work; set --icc or --iptables to true', opts.icc);
  }
  if (opts.ip !== undefined && parseIp(opts.ip, 'ip').family !== 4) throw invalid(`--ip ${opts.ip} must be an IPv4 address`, opts.ip);
  if (opts.portRange !== undefined) checkPortRange(opts.portRange);
  const pt = opts.pluginTimeoutMs;
  if (pt !== undefined && (!Number.isInteger(pt) || pt < 1 || pt > 600_000)) throw invalid(`pluginTimeoutMs ${String(pt)} must be 1 to 600 000 ms`, pt);
  if (opts.allowDirectRouting !== undefined && typeof opts.allowDirectRouting !== 'boolean') throw invalid('allowDirectRouting must be a boolean', opts.allowDirectRouting);
  if (opts.hostNetns !== undefined && opts.hostNetns !== null) checkName('host netns', opts.hostNetns, 200);
  checkClusterOptions(opts);
  return {
    backend,
    settings: {
      pools: opts.defaultAddressPools ?? DEFAULT_POOLS,
      defaultHostIp: opts.ip ?? '0.0.0.0',
      portRange: opts.portRange ?? [32768, 60999],
      ipForward: opts.ipForward !== false,
    },
  };
}

/** `etcd://h:p[,h:p…]` as the etcd client's URLs. */
export function etcdEndpoints(url: string): string[] {
  const m = /^etcd:\/\/(.+)$/.exec(url);
  if (!m) throw invalid(`cluster store ${url} must be etcd://HOST:PORT[,HOST:PORT…] (only etcd is supported)`, url);
  return m[1]!.split(',').map((hp) => {
    const hm = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(hp);
    if (!hm || Number(hm[2]) < 1 || Number(hm[2]) > 65535) throw invalid(`cluster store address ${hp} must be HOST:PORT`, url);
    return `http://${hp}`;
  });
}

function checkClusterOptions(opts: ControllerOptions): void {
  const cluster = [opts.clusterAdvertise, opts.clusterName, opts.clusterTls, opts.clusterLeaseTtl].some((o) => o !== undefined);
  if (opts.clusterStore === undefined) {
    if (cluster) throw invalid('--cluster-advertise and the other cluster options need --cluster-store', opts.clusterAdvertise ?? opts.clusterName);
    return;
  }
  etcdEndpoints(opts.clusterStore);
  if (opts.clusterAdvertise === undefined) throw invalid('--cluster-store needs --cluster-advertise: the address of this host that the other hosts reach it on', opts.clusterStore);
  parseIp(opts.clusterAdvertise, 'cluster advertise address');
  if (opts.clusterName !== undefined) checkName('cluster name', opts.clusterName, 64);
  const ttl = opts.clusterLeaseTtl;
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 2 || ttl > 3600)) throw invalid(`cluster lease TTL ${ttl} must be 2 to 3600 seconds`, ttl);
}

function firewallBackend(opts: ControllerOptions): FirewallBackendName {
  if (opts.iptables === false) {
    if (opts.firewall !== undefined && opts.firewall !== 'none') {
      throw invalid(`--iptables=false conflicts with --firewall ${opts.firewall}`, opts.firewall);
    }
    return 'none';
  }
  return opts.firewall === undefined ? 'nftables' : checkBackend(opts.firewall);
}

function checkPortRange(r: unknown): void {
  const ok = Array.isArray(r) && r.length === 2 && r.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535) && r[0] <= r[1];
  if (!ok) throw invalid(`port range ${JSON.stringify(r)} must be [low, high] with 1 <= low <= high <= 65535`, r);
}
