/**
 * The store's records against each other, changing nothing: what `cnm system
 * check` reports besides damaged records. Each record must sit under the key
 * its id gives, every index entry (names, a sandbox's endpoints) must point at
 * the record it names and back, and no two endpoints of a network may hold the
 * same address.
 */
import { keys } from './records.js';
import type { StoreReader } from './store/store.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';

const short = (id: string) => (typeof id === 'string' ? id.slice(0, 12) : String(id));

/** One line per inconsistency found; empty when the records agree. */
export function checkRecords(r: StoreReader): string[] {
  const out: string[] = [];
  const nets = new Map<string, NetworkRecord>();
  for (const [key, net] of r.range<NetworkRecord>('net/')) {
    const id = key.slice('net/'.length);
    if (net?.id !== id) out.push(`record ${key} holds network id ${String(net?.id)}`);
    else nets.set(id, net);
  }
  for (const [, net] of nets) {
    // a global network's local copy is named in the cluster store, not here
    if (net.scope !== 'global' && r.get<string>(keys.netName(net.name)) !== net.id) out.push(`network ${net.name} (${short(net.id)}) is missing from the name index`);
  }
  for (const [key, id] of r.range<string>('netname/')) {
    const name = key.slice('netname/'.length);
    if (nets.get(id)?.name !== name) out.push(`name index ${key} points at ${nets.has(id) ? `network ${nets.get(id)!.name}` : `no network (${short(id)})`}`);
  }

  const sbs = new Map<string, SandboxRecord>();
  for (const [key, sb] of r.range<SandboxRecord>('sb/')) {
    const id = key.slice('sb/'.length);
    if (sb?.id !== id) out.push(`record ${key} holds sandbox id ${String(sb?.id)}`);
    else sbs.set(id, sb);
  }
  for (const [, sb] of sbs) {
    if (r.get<string>(keys.sbName(sb.name)) !== sb.id) out.push(`sandbox ${sb.name} (${short(sb.id)}) is missing from the name index`);
    if (sb.sharedWith !== undefined && !sbs.has(sb.sharedWith)) out.push(`sandbox ${sb.name} shares the netns of sandbox ${short(sb.sharedWith)}, which has no record`);
  }
  for (const [key, id] of r.range<string>('sbname/')) {
    const name = key.slice('sbname/'.length);
    if (sbs.get(id)?.name !== name) out.push(`name index ${key} points at ${sbs.has(id) ? `sandbox ${sbs.get(id)!.name}` : `no sandbox (${short(id)})`}`);
  }

  const eps = new Map<string, EndpointRecord>();
  const held = new Map<string, string>();
  for (const [key, ep] of r.range<EndpointRecord>('ep/')) {
    const [, netId, epId] = key.split('/');
    if (ep?.id !== epId || ep.networkId !== netId) {
      out.push(`record ${key} holds endpoint ${String(ep?.id)} of network ${String(ep?.networkId)}`);
      continue;
    }
    eps.set(ep.id, ep);
    const net = nets.get(netId);
    const what = `endpoint ${short(ep.id)}${net ? ` on ${net.name}` : ''}`;
    if (!net) out.push(`${what} belongs to network ${short(netId)}, which has no record`);
    if (!sbs.has(ep.sandboxId)) out.push(`${what} belongs to sandbox ${short(ep.sandboxId)}, which has no record`);
    else if (r.get<string>(keys.sbEp(ep.sandboxId, ep.id)) !== netId) out.push(`${what} is missing from its sandbox's index`);
    for (const a of [ep.ipv4, ep.ipv6]) {
      if (!a) continue;
      const addr = `${netId}|${a.split('/')[0]}`;
      const other = held.get(addr);
      if (other !== undefined) out.push(`${what} and endpoint ${short(other)} hold the same address ${a}`);
      else held.set(addr, ep.id);
    }
  }
  for (const [key, netId] of r.range<string>('sbep/')) {
    const [, , epId] = key.split('/');
    const ep = eps.get(epId ?? '');
    if (!ep || ep.networkId !== netId) out.push(`sandbox index ${key} points at no endpoint`);
  }
  return out;
}
