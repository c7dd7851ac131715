/**
 * Peer tables from the store: for each overlay network with endpoints on this
 * host, the VXLAN device's FDB and neighbour entries are exactly the peer
 * records of the other hosts' endpoints. One watch on the cluster's peer keys;
 * a change to a network resyncs that network (its wanted peers against what the
 * kernel holds, read back with listPeers), one resync at a time per network and
 * changes coalesced, so nothing is missed or left stale whatever the order.
 */
import { log } from '../log.js';
import { native } from '../native.js';
import type { Peer } from '../native-api.js';
import type { StoreWatch } from '../store/store.js';
import { type Cluster, type PeerRecord, clusterKeys } from './cluster.js';

interface Active {
  device: string;
  /** a resync is running */
  running: Promise<void> | undefined;
  /** another one is wanted after it */
  again: boolean;
}

const peerKey = (p: Peer) => `${p.mac}|${p.vtep}|${[...p.ips].sort().join(',')}`;

export class PeerSync {
  private readonly active = new Map<string, Active>();
  private watch: StoreWatch | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly hostNetns: string | null,
  ) {}

  start(): void {
    this.watch = this.cluster.store.watch('peer/', this.cluster.store.revision(), (e) => {
      const nets = new Set(e.changes.map((c) => c.key.split('/')[1]!));
      for (const n of nets) if (this.active.has(n)) this.kick(n);
    });
  }

  stop(): void {
    this.watch?.close();
    this.watch = undefined;
  }

  /** Keep the peers of network `netId` on `device` (its first local endpoint joined). */
  async activate(netId: string, device: string): Promise<void> {
    if (!this.active.has(netId)) this.active.set(netId, { device, running: undefined, again: false });
    await this.kick(netId);
  }

  /** Stop keeping them (its last local endpoint left; the device goes). */
  deactivate(netId: string): void {
    this.active.delete(netId);
  }

  /** Networks kept, by id. */
  networks(): string[] {
    return [...this.active.keys()];
  }

  /** Resync a network now, or after the one running; resolves when the kernel matches. */
  kick(netId: string): Promise<void> {
    const a = this.active.get(netId);
    if (!a) return Promise.resolve();
    if (a.running) {
      a.again = true;
      return a.running;
    }
    a.running = (async () => {
      do {
        a.again = false;
        try {
          await this.resync(netId, a.device);
        } catch (e) {
          // the network's last endpoint here left meanwhile, and its device with it: nothing to keep
          if (this.active.get(netId) !== a) break;
          log.warn('programming the peers of an overlay network failed: the next change or reconcile retries', { network: netId, err: e });
        }
      } while (a.again && this.active.get(netId) === a);
      a.running = undefined;
    })();
    return a.running;
  }

  /** The peers this host's device should hold: every other host's endpoints on the network. */
  wanted(netId: string): Peer[] {
    return this.cluster.store
      .range<PeerRecord>(clusterKeys.peers(netId))
      .map(([, p]) => p)
      .filter((p) => p.host !== this.cluster.hostId)
      .map((p) => ({ mac: p.mac, ips: [...p.ips].sort(), vtep: p.vtep }));
  }

  private async resync(netId: string, device: string): Promise<void> {
    const want = this.wanted(netId);
    const have = await native.listPeers(this.hostNetns, device);
    const wantKeys = new Set(want.map(peerKey));
    const haveKeys = new Set(have.map(peerKey));
    const add = want.filter((p) => !haveKeys.has(peerKey(p)));
    // a MAC that moves or changes addresses is replaced: its old entries go first
    const remove = have.filter((p) => !wantKeys.has(peerKey(p)));
    if (add.length === 0 && remove.length === 0) return;
    await native.setPeers({ netns: this.hostNetns, device, add, remove });
  }
}
