/**
 * The resolver of one host, fed from the store: rebuilt from it when it starts
 * (so a resolver that crashed and came back answers the same), then changed
 * one sandbox at a time as the store's watch reports connects, disconnects and
 * removals, in place: the native table changes, the sandboxes' sockets stay.
 * Serves each sandbox that is ready and on at least one user-defined network.
 */
import { log } from '../log.js';
import { native } from '../native.js';
import type { DnsStats } from '../native-api.js';
import { allSandboxes, endpointsOfSandbox, keys } from '../records.js';
import type { Store, StoreEvent, StoreWatch } from '../store/store.js';
import type { NetworkRecord, SandboxRecord } from '../types.js';
import { hostResolvConf } from './host-conf.js';
import { dnsEndpoint, hasDns } from './names.js';

export class DnsService {
  /** sandbox id -> its endpoint ids the resolver has */
  private readonly known = new Map<string, Set<string>>();
  /** endpoint id -> its sandbox id, for deletions */
  private readonly owner = new Map<string, string>();
  /** sandbox id -> the upstream servers it is served with */
  private readonly served = new Map<string, string>();
  private readonly dirty = new Set<string>();
  private readonly watches: StoreWatch[] = [];
  private work: Promise<void> = Promise.resolve();
  private stopped = false;

  private constructor(
    private readonly store: Store,
    private readonly hostNetns: string | null,
    private readonly handle: number,
  ) {}

  /** Start the resolver of `hostNetns` over `store`, with every sandbox the store holds. */
  static async start(store: Store, hostNetns: string | null): Promise<DnsService> {
    const handle = await native.dnsStart(hostNetns ?? undefined);
    const s = new DnsService(store, hostNetns, handle);
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
      }
      for (const e of have) {
        if (now.has(e)) continue;
        remove.push(e);
        this.owner.delete(e);
      }
      if (now.size) this.known.set(id, now);
      else this.known.delete(id);
      if (sb && sb.state === 'ready' && sb.mode === 'network' && now.size) {
        serve.push([sb, sb.dns?.dns ?? hostResolvConf(this.hostNetns).nameservers]);
      } else if (this.served.delete(id)) {
        native.dnsCloseSandbox(this.handle, id);
      }
    }
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
    await this.work.catch(() => undefined);
    this.stopped = true;
    native.dnsStop(this.handle);
  }
}
