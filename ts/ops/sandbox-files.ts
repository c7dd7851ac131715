/**
 * A sandbox's /etc/netns/<sandbox>/{resolv.conf,hosts,hostname}, from its
 * records: written when it is made, rewritten when its own addresses change
 * (connect, disconnect), removed with it.
 */
import { hostResolvConf } from '../dns/host-conf.js';
import { type FilesToWrite, removeSandboxFiles, writeSandboxFiles } from '../dns/files.js';
import { hasDns } from '../dns/names.js';
import { log } from '../log.js';
import { endpointsOfSandbox, keys } from '../records.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import type { OpContext } from './context.js';
import { natural } from '../compare.js';

const bare = (cidr: string) => cidr.split('/')[0]!;

/** A sandbox's IPv4 address on a network, without prefix length; "" when it has none there. */
export function ipv4On(ctx: OpContext, sbId: string, netId: string): string {
  return bare(endpointsOfSandbox(ctx.store, sbId).find((e) => e.networkId === netId)?.ipv4 ?? '');
}

/** Sandboxes with files of their own: those with a netns of their own. */
const hasFiles = (sb: SandboxRecord) => sb.mode === 'network' || sb.mode === 'none';

/**
 * Write the sandbox's files from its endpoints (given, or read from the store);
 * all three unless `which` says. The content is taken now; the writing runs off
 * the JS thread (see writeSandboxFiles).
 */
export async function writeFilesOf(ctx: OpContext, sb: SandboxRecord, eps: EndpointRecord[] = endpointsOfSandbox(ctx.store, sb.id), which?: FilesToWrite): Promise<void> {
  if (!hasFiles(sb)) return;
  const ordered = [...eps].sort((a, b) => natural(a.ifname, b.ifname));
  const nets = ordered.map((ep) => ctx.store.get<NetworkRecord>(keys.net(ep.networkId)));
  const links = (sb.links ?? []).flatMap((l) => {
    const other = ctx.store.get<SandboxRecord>(keys.sb(l.sandbox));
    const ip = other ? ipv4On(ctx, other.id, l.network) : '';
    return other && ip ? [{ ip, alias: l.alias, name: other.name }] : [];
  });
  await writeSandboxFiles(
    {
      netns: sb.netns,
      name: sb.name,
      settings: sb.dns ?? {},
      addresses: [...ordered.filter((e) => e.ipv4).map((e) => bare(e.ipv4)), ...ordered.filter((e) => e.ipv6).map((e) => bare(e.ipv6))],
      embeddedDns: nets.some((n) => n !== undefined && hasDns(n)),
      links,
    },
    hostResolvConf(ctx.hostNetns),
    which,
  );
}

/**
 * Rewrite after a connect or disconnect to or from `net`: the hosts file (its
 * addresses changed), and resolv.conf when the sandbox joined its first, or
 * left its last, user-defined network. A failure is logged (the operation
 * itself is done).
 */
export async function refreshFilesOf(ctx: OpContext, sbId: string, net?: NetworkRecord, without?: EndpointRecord): Promise<void> {
  const sb = ctx.store.get<SandboxRecord>(keys.sb(sbId));
  if (!sb) return;
  try {
    const eps = endpointsOfSandbox(ctx.store, sb.id).filter((e) => e.id !== without?.id);
    const others = eps.filter((e) => e.networkId !== net?.id).some((e) => {
      const n = ctx.store.get<NetworkRecord>(keys.net(e.networkId));
      return n !== undefined && hasDns(n);
    });
    await writeFilesOf(ctx, sb, eps, { hosts: true, resolvConf: net === undefined || (hasDns(net) && !others) });
  } catch (err) {
    log.warn('rewriting the sandbox\'s hosts and resolv.conf failed', { sandbox: sb.name, err });
  }
}

export async function removeFilesOf(sb: SandboxRecord): Promise<void> {
  if (!hasFiles(sb)) return;
  try {
    await removeSandboxFiles(sb.netns);
  } catch (err) {
    log.warn('removing the sandbox\'s hosts and resolv.conf failed', { sandbox: sb.name, err });
  }
}
