/**
 * Store keys and record lookups shared by the controller's operations. All the
 * key layout lives here so that nothing else spells a key by hand.
 */
import { CnmError, invalid } from './errors.js';
import type { StoreTxn } from './store/store.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';

export const keys = {
  net: (id: string) => `net/${id}`,
  netName: (name: string) => `netname/${name}`,
  sb: (id: string) => `sb/${id}`,
  sbName: (name: string) => `sbname/${name}`,
  ep: (netId: string, epId: string) => `ep/${netId}/${epId}`,
  netEps: (netId: string) => `ep/${netId}/`,
  sbEp: (sbId: string, epId: string) => `sbep/${sbId}/${epId}`,
  sbEps: (sbId: string) => `sbep/${sbId}/`,
  /** a sandbox sharing another's netns (container:X), under the one it shares */
  sbUser: (targetId: string, userId: string) => `sbuser/${targetId}/${userId}`,
  sbUsers: (targetId: string) => `sbuser/${targetId}/`,
  /** set once the sbuser/ index covers every sandbox (stores made before it had none) */
  sbUserIndex: 'meta/sbuser-index',
};

type Reader = Pick<StoreTxn, 'get' | 'range'>;

export function allNetworks(r: Reader): NetworkRecord[] {
  return r.range<NetworkRecord>('net/').map(([, v]) => v);
}

export function allSandboxes(r: Reader): SandboxRecord[] {
  return r.range<SandboxRecord>('sb/').map(([, v]) => v);
}

/**
 * The sandboxes sharing `sb`'s netns (container:NAME), from their index: a
 * removal then reads a few keys, not every sandbox. A store made before the
 * index existed is read in full until its first set-up builds it.
 */
export function sandboxUsers(r: Reader, sbId: string): SandboxRecord[] {
  if (r.get(keys.sbUserIndex) === undefined) return allSandboxes(r).filter((s) => s.sharedWith === sbId);
  return r
    .range<string>(keys.sbUsers(sbId))
    .map(([, id]) => r.get<SandboxRecord>(keys.sb(id)))
    .filter((s): s is SandboxRecord => s !== undefined);
}

/** Build the sbuser/ index of a store made before it (once; inside the caller's transaction). */
export function indexSandboxUsers(tx: StoreTxn): void {
  if (tx.get(keys.sbUserIndex) !== undefined) return;
  for (const s of allSandboxes(tx)) if (s.sharedWith) tx.put(keys.sbUser(s.sharedWith, s.id), s.id);
  tx.put(keys.sbUserIndex, 1);
}

export function endpointsOfNetwork(r: Reader, netId: string): EndpointRecord[] {
  return r.range<EndpointRecord>(keys.netEps(netId)).map(([, v]) => v);
}

export function endpointsOfSandbox(r: Reader, sbId: string): EndpointRecord[] {
  const out: EndpointRecord[] = [];
  for (const [k, netId] of r.range<string>(keys.sbEps(sbId))) {
    const ep = r.get<EndpointRecord>(keys.ep(netId, k.slice(keys.sbEps(sbId).length)));
    if (ep) out.push(ep);
  }
  return out;
}

interface Named {
  id: string;
  name: string;
}

/** Full id, exact name, then unique id prefix: Docker's lookup order. */
function findByRef<T extends Named>(r: Reader, kind: 'network' | 'sandbox', prefix: string, namePrefix: string, ref: string): T | undefined {
  if (typeof ref !== 'string' || ref === '') throw invalid(`${kind} name or id must not be empty`, ref);
  const byId = r.get<T>(`${prefix}${ref}`);
  if (byId) return byId;
  const id = r.get<string>(`${namePrefix}${ref}`);
  const byName = id === undefined ? undefined : r.get<T>(`${prefix}${id}`);
  if (byName) return byName;
  if (/^[0-9a-f]{1,63}$/.test(ref)) {
    const hits = r.range<T>(`${prefix}${ref}`);
    if (hits.length === 1) return hits[0]![1];
    if (hits.length > 1) throw invalid(`${kind} ${ref} is ambiguous (${hits.length} matches found based on ID prefix)`, ref);
  }
  return undefined;
}

/** Resolve a network by id, name or unique id prefix; ERR_NETWORK_NOT_FOUND otherwise. */
export function findNetwork(r: Reader, ref: string): NetworkRecord {
  const n = findByRef<NetworkRecord>(r, 'network', 'net/', 'netname/', ref);
  if (!n) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${ref} not found`, { value: ref, network: ref });
  return n;
}

/** Resolve a sandbox by id, name or unique id prefix; ERR_SANDBOX_NOT_FOUND otherwise. */
export function findSandbox(r: Reader, ref: string): SandboxRecord {
  const s = findByRef<SandboxRecord>(r, 'sandbox', 'sb/', 'sbname/', ref);
  if (!s) throw new CnmError('ERR_SANDBOX_NOT_FOUND', `sandbox ${ref} not found`, { value: ref, sandbox: ref });
  return s;
}
