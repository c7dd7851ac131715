/**
 * The resolver of one host, fed from the store: rebuilt from it when it starts
 * (so a resolver that crashed and came back answers the same), then changed
 * one sandbox at a time as the store's watch reports connects, disconnects and
 * removals, in place: the native table changes, the sandboxes' sockets stay.
 * Serves each sandbox that is ready and on at least one user-defined network.
 */
import { log } from '../log.js';
import { native } from '../native.js';
import type { DnsEndpoint, DnsStats } from '../native-api.js';
import { type PeerRecord, clusterKeys } from '../cluster/cluster.js';
import type { EtcdStore } from '../store/etcd-store.js';
import { allSandboxes, endpointsOfSandbox, keys } from '../records.js';
import type { Store, StoreEvent, StoreWatch } from '../store/store.js';
import type { NetworkRecord, SandboxRecord } from '../types.js';
import { hostResolvConf } from './host-conf.js';
import { dnsEndpoint, hasDns } from './names.js';

/**
 * Where the other hosts' endpoints come from: the cluster store and this host's
 * id. A controller follows the networks it has endpoints on itself; the CLI's
 * background resolver, which has no controller, gives `followPeers`.
 */
export interface RemotePeers {
  hostId: string;
  store: Pick<EtcdStore, 'following' | 'range' | 'get' | 'watch' | 'revision'>;
  followPeers?(netId: string): Promise<() => void>;
}

export class DnsService {
  /** sandbox id -> its endpoint ids the resolver has */
  private readonly known = new Map<string, Set<string>>();
  /** endpoint id -> its sandbox id, for deletions */
  private readonly owner = new Map<string, string>();
  /** sandbox id -> the upstream servers it is served with */
  private readonly served = new Map<string, string>();
  private readonly dirty = new Set<string>();
  private readonly watches: StoreWatch[] = [];
  /** local endpoint id -> its network id */
  private readonly epNet = new Map<string, string>();
  /** global network -> the other hosts' endpoint ids the resolver has (networks with local endpoints only) */
  private readonly remote = new Map<string, Set<string>>();
  /** peer keys changed since the last flush */
  private readonly peerKeys = new Set<string>();
  private peerWatch: StoreWatch | undefined;
  /** networks whose peers this service follows itself (see RemotePeers.followPeers) */
  private readonly following = new Map<string, Promise<() => void>>();
  private work: Promise<void> = Promise.resolve();
  private stopped = false;

  private constructor(
    private readonly store: Store,
    private readonly hostNetns: string | null,
    private readonly handle: number,
    private readonly cluster: () => RemotePeers | undefined,
  ) {}

  /**
   * Start the resolver of `hostNetns` over `store`, with every sandbox the store
   * holds; with `cluster`, the other hosts' endpoints on the global networks
   * this host has endpoints on answer too (from their peer records).
   */
  static async start(store: Store, hostNetns: string | null, cluster: () => RemotePeers | undefined = () => undefined): Promise<DnsService> {
    const handle = await native.dnsStart(hostNetns ?? undefined);
    const s = new DnsService(store, hostNetns, handle, cluster);
    const rev = store.revision();
    for (const sb of allSandboxes(store)) s.dirty.add(sb.id);
    for (const prefix of ['sb/', 'ep/']) s.watches.push(store.watch(prefix, rev, (e) => s.changed(e)));
    await s.flush();
    return s;
  }

  private changed(e: StoreEvent): void {
    for (const c of e.changes) {
      const parts = c.key.split('/');
      if (parts[0] === 'sb') this.dirty.add(parts[1]!);
      else {
        const ep = c.deleted ? undefined : this.store.get<{ sandboxId: string }>(c.key);
        const sb = ep?.sandboxId ?? this.owner.get(parts[2]!);
        if (sb) this.dirty.add(sb);
      }
    }
    if (this.dirty.size) void this.flush();
  }

  /** Bring every changed sandbox up to date; runs one at a time. */
  private flush(): Promise<void> {
    this.work = this.work.then(() => this.apply());
    return this.work;
  }

  private async apply(): Promise<void> {
    if (this.stopped) return;
    const ids = [...this.dirty];
    this.dirty.clear();
    const upsert = [];
    const remove: string[] = [];
    const serve: Array<[SandboxRecord, string[]]> = [];
    for (const id of ids) {
      const sb = this.store.get<SandboxRecord>(keys.sb(id));
      const have = this.known.get(id) ?? new Set<string>();
      const now = new Set<string>();
      for (const ep of sb ? endpointsOfSandbox(this.store, id) : []) {
        const net = this.store.get<NetworkRecord>(keys.net(ep.networkId));
        if (!net || !hasDns(net)) continue;
        upsert.push(dnsEndpoint(net, sb!, ep));
        now.add(ep.id);
        this.owner.set(ep.id, id);
        this.epNet.set(ep.id, net.id);
      }
      for (const e of have) {
        if (now.has(e)) continue;
        remove.push(e);
        this.owner.delete(e);
        this.epNet.delete(e);
      }
      if (now.size) this.known.set(id, now);
      else this.known.delete(id);
      if (sb && sb.state === 'ready' && sb.mode === 'network' && now.size) {
        serve.push([sb, sb.dns?.dns ?? hostResolvConf(this.hostNetns).nameservers]);
      } else if (this.served.delete(id)) {
        native.dnsCloseSandbox(this.handle, id);
      }
    }
    this.remoteChanges(upsert, remove);
    native.dnsUpdate(this.handle, upsert, remove);
    await Promise.all(
      serve.map(async ([sb, upstreams]) => {
        const key = `${sb.netns}|${upstreams.join(',')}`;
        if (this.served.get(sb.id) === key) return;
        try {
          await native.dnsOpenSandbox(this.handle, sb.id, sb.netns, upstreams);
          this.served.set(sb.id, key);
        } catch (err) {
          // its netns went meanwhile (a removal in flight): the next change settles it
          log.warn('the resolver could not open its sockets in a sandbox', { sandbox: sb.name, err });
        }
      }),
    );
  }

  /**
   * The other hosts' endpoints on the global networks with local endpoints: a
   * network newly in use here is read whole, one no longer in use dropped, and
   * changed peer keys applied one by one.
   */
  private remoteChanges(upsert: DnsEndpoint[], remove: string[]): void {
    const cluster = this.cluster();
    if (!cluster) return;
    this.peerWatch ??= cluster.store.watch('peer/', cluster.store.revision(), (e) => {
      for (const c of e.changes) this.peerKeys.add(c.key);
      void this.flush();
    });
    const needed = new Set<string>();
    for (const netId of this.epNet.values()) {
      if (this.store.get<NetworkRecord>(keys.net(netId))?.scope === 'global') needed.add(netId);
    }
    for (const [netId, ids] of this.remote) {
      if (needed.has(netId)) continue;
      remove.push(...ids);
      this.remote.delete(netId);
    }
    if (cluster.followPeers) this.follow(cluster.followPeers, needed);
    for (const netId of needed) {
      if (this.remote.has(netId) || !cluster.store.following(clusterKeys.peers(netId))) continue;
      this.remote.set(netId, new Set());
      for (const [key] of cluster.store.range(clusterKeys.peers(netId))) this.peerKeys.add(key);
    }
    for (const key of this.peerKeys) {
      const [, netId, epId] = key.split('/') as [string, string, string];
      const ids = this.remote.get(netId);
      if (!ids) continue;
      const rec = cluster.store.following(clusterKeys.peers(netId)) ? cluster.store.get<PeerRecord>(key) : undefined;
      if (rec && rec.host !== cluster.hostId && rec.names?.length) {
        upsert.push({
          id: epId,
          network: netId,
          names: rec.names,
          ptr: rec.ptr ?? rec.names[0]!,
          ipv4: rec.ips.find((a) => !a.includes(':')),
          ipv6: rec.ips.find((a) => a.includes(':')),
        });
        ids.add(epId);
      } else if (ids.delete(epId)) remove.push(epId);
    }
    this.peerKeys.clear();
  }

  /** Follow the peers of the networks in use here, and only those (a resolver no controller follows for). */
  private follow(follow: (netId: string) => Promise<() => void>, needed: Set<string>): void {
    for (const netId of needed) {
      if (this.following.has(netId)) continue;
      const p = follow(netId);
      this.following.set(netId, p);
      p.then(
        () => void this.flush(),
        (err: unknown) => {
          this.following.delete(netId);
          log.warn('the resolver could not follow a global network\'s peers (tried again with the next change)', { network: netId, err });
        },
      );
    }
    for (const [netId, p] of this.following) {
      if (needed.has(netId)) continue;
      this.following.delete(netId);
      void p.then((letGo) => letGo()).catch(() => undefined);
    }
  }

  /** Settle: what other processes committed is read now, and every change so far is applied. */
  async sync(): Promise<void> {
    this.store.catchUp?.();
    await this.flush();
  }

  /** the sandboxes served, endpoints known and query counters */
  stats(): DnsStats {
    return native.dnsStats(this.handle);
  }

  /** Stop: every sandbox's sockets close. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    for (const w of this.watches) w.close();
    this.peerWatch?.close();
    for (const p of this.following.values()) void p.then((letGo) => letGo()).catch(() => undefined);
    this.following.clear();
    await this.work.catch(() => undefined);
    this.stopped = true;
    native.dnsStop(this.handle);
  }
}
