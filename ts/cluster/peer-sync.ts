/**
 * Peer tables from the store: for each overlay network with endpoints on this
 * host, the VXLAN device's FDB and neighbour entries are exactly the peer
 * records of the other hosts' endpoints.
 *
 * One watch on the cluster's peer keys. A network is synced in full when it
 * becomes active here (and by reconcile): its wanted peers against what the
 * kernel holds, read back with listPeers. After that each change is applied by
 * itself, against the peers this host programmed (kept in memory), so a change
 * costs the same however many peers a network has. Changes to one network are
 * applied one batch at a time and those arriving meanwhile are merged, so
 * nothing is missed or left stale whatever the order.
 */
import { log } from '../log.js';
import { native } from '../native.js';
import type { Peer } from '../native-api.js';
import type { StoreWatch } from '../store/store.js';
import { type Cluster, type PeerRecord, clusterKeys } from './cluster.js';

interface Active {
  device: string;
  /** endpoint id -> the peer programmed for it */
  programmed: Map<string, Peer>;
  /** a full sync is wanted (activation, reconcile, or a failed batch) */
  full: boolean;
  /** endpoint ids changed since the last batch */
  dirty: Set<string>;
  running: Promise<void> | undefined;
  /** a failed batch waits for its retry */
  retrying: boolean;
}

/** How long after a failed batch the network is synced again in full. */
const RETRY_MS = 1000;

/** Where a network's peers are programmed: the kernel's VXLAN devices, or a simulation's memory. */
export interface PeerTable {
  /** the peers a device holds now */
  list(device: string): Promise<Peer[]>;
  /** add and remove peers on a device (removals first) */
  set(device: string, add: Peer[], remove: Peer[]): Promise<void>;
}

/** The kernel's tables: FDB and neighbour entries of the VXLAN devices in the host netns. */
export function kernelPeers(hostNetns: string | null): PeerTable {
  return {
    list: (device) => native.listPeers(hostNetns, device),
    set: (device, add, remove) => native.setPeers({ netns: hostNetns, device, add, remove }),
  };
}

const same = (a: Peer, b: Peer) => a.mac === b.mac && a.vtep === b.vtep && a.ips.join() === b.ips.join();
const peerKey = (p: Peer) => `${p.mac}|${p.vtep}|${p.ips.join(',')}`;

export class PeerSync {
  private readonly active = new Map<string, Active>();
  private watch: StoreWatch | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly table: PeerTable,
  ) {}

  start(): void {
    this.watch = this.cluster.store.watch('peer/', this.cluster.store.revision(), (e) => {
      const touched = new Set<string>();
      for (const c of e.changes) {
        const [, netId, epId] = c.key.split('/');
        const a = this.active.get(netId!);
        if (!a) continue;
        a.dirty.add(epId!);
        touched.add(netId!);
      }
      for (const n of touched) void this.run(n);
    });
  }

  stop(): void {
    this.watch?.close();
    this.watch = undefined;
  }

  /**
   * Keep the peers of network `netId` on `device` in sync from now on (a full
   * sync first); already kept, nothing more. Resolves when what is pending is done.
   */
  async activate(netId: string, device: string): Promise<void> {
    if (!this.active.has(netId)) this.active.set(netId, { device, programmed: new Map(), full: true, dirty: new Set(), running: undefined, retrying: false });
    await this.run(netId);
  }

  /** A full sync of a network kept here, against what the kernel holds (reconcile). */
  async resync(netId: string, device: string): Promise<void> {
    await this.activate(netId, device);
    const a = this.active.get(netId);
    if (!a) return;
    a.full = true;
    await this.run(netId);
  }

  /** Stop keeping them (its last local endpoint left; the device goes). */
  deactivate(netId: string): void {
    this.active.delete(netId);
  }

  /** Networks kept, by id. */
  networks(): string[] {
    return [...this.active.keys()];
  }

  /** The peer an endpoint record stands for, or undefined when it is this host's own or gone. */
  private wantedOf(netId: string, epId: string): Peer | undefined {
    const p = this.cluster.store.get<PeerRecord>(clusterKeys.peer(netId, epId));
    if (!p || p.host === this.cluster.hostId) return undefined;
    return { mac: p.mac, ips: [...p.ips].sort(), vtep: p.vtep };
  }

  /** Every peer the network's device should hold, by endpoint id. */
  wanted(netId: string): Map<string, Peer> {
    const prefix = clusterKeys.peers(netId);
    const out = new Map<string, Peer>();
    for (const [k] of this.cluster.store.range<PeerRecord>(prefix)) {
      const epId = k.slice(prefix.length);
      const p = this.wantedOf(netId, epId);
      if (p) out.set(epId, p);
    }
    return out;
  }

  /** Apply what is pending for a network, then whatever arrived meanwhile. */
  private run(netId: string): Promise<void> {
    const a = this.active.get(netId);
    if (!a) return Promise.resolve();
    // the running batch takes what is pending now before it ends
    if (a.running) return a.running;
    const p = this.loop(netId, a);
    a.running = p;
    return p.finally(() => {
      if (a.running === p) a.running = undefined;
      // what came after the loop's last look is not left waiting for the next change
      if (this.active.get(netId) === a && !a.retrying && (a.full || a.dirty.size > 0)) return this.run(netId);
      return undefined;
    });
  }

  private async loop(netId: string, a: Active): Promise<void> {
    while (this.active.get(netId) === a && (a.full || a.dirty.size > 0)) {
      try {
        if (a.full) await this.fullSync(netId, a);
        else await this.applyDirty(netId, a);
      } catch (e) {
        // the network's last endpoint here left meanwhile, and its device with it: nothing to keep
        if (this.active.get(netId) !== a) break;
        log.warn('programming the peers of an overlay network failed: a full sync follows in a second', { network: netId, err: e });
        a.full = true;
        a.retrying = true;
        setTimeout(() => {
          a.retrying = false;
          void this.run(netId);
        }, RETRY_MS).unref();
        break;
      }
    }
  }

  private async fullSync(netId: string, a: Active): Promise<void> {
    a.full = false;
    a.dirty.clear();
    const want = this.wanted(netId);
    const have = await this.table.list(a.device);
    const wantKeys = new Set([...want.values()].map(peerKey));
    const haveKeys = new Set(have.map((p) => peerKey({ ...p, ips: [...p.ips].sort() })));
    const add = [...want.values()].filter((p) => !haveKeys.has(peerKey(p)));
    // a MAC that moved or changed addresses is replaced: its old entries go first
    const remove = have.filter((p) => !wantKeys.has(peerKey({ ...p, ips: [...p.ips].sort() })));
    if (add.length || remove.length) await this.table.set(a.device, add, remove);
    a.programmed = want;
  }

  private async applyDirty(netId: string, a: Active): Promise<void> {
    const ids = [...a.dirty];
    a.dirty.clear();
    const add: Peer[] = [];
    const remove: Peer[] = [];
    const next = new Map<string, Peer | undefined>();
    for (const id of ids) {
      const want = this.wantedOf(netId, id);
      const had = a.programmed.get(id);
      if (had && want && same(had, want)) continue;
      if (had) remove.push(had);
      if (want) add.push(want);
      next.set(id, want);
    }
    if (add.length === 0 && remove.length === 0) return;
    // an address or MAC another endpoint still holds must not be removed with this one's old entry
    const kept = remove.filter((r) => ![...a.programmed.entries()].some(([id, p]) => !next.has(id) && p.mac === r.mac));
    await this.table.set(a.device, add, kept);
    for (const [id, p] of next) {
      if (p) a.programmed.set(id, p);
      else a.programmed.delete(id);
    }
  }
}
