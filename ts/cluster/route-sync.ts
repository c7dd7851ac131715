/**
 * Routes of routed networks from the store: on each host where a routed network
 * is active (it has endpoints here), the main table holds a route to every
 * other host's block via that host's underlay address, and nothing else in the
 * network's subnet with a gateway. One watch on the block records; a network
 * is synced in full (against the kernel's table) when it becomes active and by
 * reconcile, and against what this host programmed on each change after that.
 * Changes to one network are applied one batch at a time, those arriving
 * meanwhile merged into the next.
 */
import { log } from '../log.js';
import { native } from '../native.js';
import { contains, parseIp, parseSubnet } from '../net/ip.js';
import type { StoreWatch } from '../store/store.js';
import type { Cluster } from './cluster.js';
import { type RouteBlocks, blockKeys, subnetOf } from './route-blocks.js';
import type { NetworkRecord } from '../types.js';

interface Active {
  net: NetworkRecord;
  /** block -> the underlay address it is routed via */
  programmed: Map<string, string>;
  full: boolean;
  running: Promise<void> | undefined;
  again: boolean;
}

/** How long after a failed batch the network is synced again in full. */
const RETRY_MS = 1000;

export class RouteSync {
  private readonly active = new Map<string, Active>();
  private watch: StoreWatch | undefined;
  /** called after each applied batch (the bench times route convergence with it) */
  onApplied: ((netId: string, routes: ReadonlyMap<string, string>) => void) | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly hostNetns: string | null,
    private readonly blocks: RouteBlocks,
  ) {}

  start(): void {
    this.watch = this.cluster.store.watch(blockKeys.prefix, this.cluster.store.revision(), (e) => {
      const touched = new Set(e.changes.map((c) => c.key.split('/')[1]!));
      for (const n of touched) if (this.active.has(n)) void this.run(n);
    });
  }

  stop(): void {
    this.watch?.close();
    this.watch = undefined;
  }

  /** The network is active here: its routes are made (in full) before this returns. */
  async activate(net: NetworkRecord): Promise<void> {
    let a = this.active.get(net.id);
    if (!a) {
      a = { net, programmed: new Map(), full: true, running: undefined, again: false };
      this.active.set(net.id, a);
    }
    await this.run(net.id);
  }

  /** Sync in full again (reconcile). */
  async resync(netId: string): Promise<void> {
    const a = this.active.get(netId);
    if (!a) return;
    a.full = true;
    await this.run(netId);
  }

  /** The network is no longer active here: the routes this host made for it go. */
  async deactivate(netId: string): Promise<void> {
    const a = this.active.get(netId);
    if (!a) return;
    this.active.delete(netId);
    await a.running?.catch(() => undefined);
    const blocks = [...a.programmed.keys()];
    if (blocks.length) await native.setClusterRoutes({ netns: this.hostNetns, add: [], remove: blocks });
  }

  /** The networks active here. */
  networks(): string[] {
    return [...this.active.keys()];
  }

  /** The routes programmed for a network now (block -> via). */
  routesOf(netId: string): ReadonlyMap<string, string> {
    return this.active.get(netId)?.programmed ?? new Map();
  }

  private run(netId: string): Promise<void> {
    const a = this.active.get(netId)!;
    if (a.running) {
      a.again = true;
      return a.running;
    }
    const p = (async () => {
      try {
        do {
          a.again = false;
          await this.sync(a);
        } while (a.again && this.active.get(netId) === a);
      } finally {
        a.running = undefined;
      }
    })();
    a.running = p;
    p.catch((e: unknown) => {
      log.error('programming the routes of a routed network failed: retrying in full', { network: a.net.name, err: e });
      a.full = true;
      setTimeout(() => {
        if (this.active.get(netId) === a) void this.run(netId).catch(() => undefined);
      }, RETRY_MS).unref();
    });
    return p;
  }

  private async sync(a: Active): Promise<void> {
    const want = new Map<string, string>();
    for (const b of this.blocks.records(a.net.id)) if (b.host !== this.cluster.hostId) want.set(b.block, b.advertise);
    let have = a.programmed;
    const full = a.full;
    if (full) {
      // what the kernel has in the subnet via a gateway: ours from an earlier run, or stale
      const subnet = parseSubnet(subnetOf(a.net));
      have = new Map();
      for (const r of await native.listRoutes(this.hostNetns, 4)) {
        if (r.gateway && contains(subnet, parseIp(r.dst.split('/')[0]!))) have.set(r.dst, r.gateway);
      }
    }
    const remove = [...have.keys()].filter((b) => !want.has(b));
    const add = [...want].filter(([b, via]) => have.get(b) !== via).map(([dst, via]) => ({ dst, via }));
    if (remove.length || add.length) await native.setClusterRoutes({ netns: this.hostNetns, add, remove });
    a.programmed = want;
    if (full) a.full = false;
    this.onApplied?.(a.net.id, want);
  }
}
