/**
 * The global-scope {@link Store} on etcd v3: what a cluster shares, under one key
 * prefix per cluster.
 *
 * - A mirror answers the synchronous reads. It holds the cluster's shared keys
 *   (networks, names, VNIs, hosts) and, of the per-network keys (the
 *   `partitioned` prefixes: `peer/<network>/…`, `ipam/<network>/…`), only those
 *   of the networks this host follows, so that an endpoint event reaches only
 *   the hosts with endpoints on its network (Docker's NetworkDB gossips per
 *   network for the same reason).
 * - Each part of the mirror (a "feed": the shared keys' ranges, one per
 *   followed network prefix) is loaded once, then kept by an etcd watch from the
 *   revision it was loaded at; the watch resumes from its last revision after
 *   etcd comes back, so a host that was cut off catches up on what it missed
 *   without reloading.
 * - A transaction runs its callback on the mirror, recording what it read, then
 *   commits with compare-and-swap in one etcd transaction: every key read or
 *   written must still have the modification revision the mirror showed, and no
 *   key under a ranged prefix may have changed since its feed's revision (a key
 *   created there is a change). When another host got there first, the mirror
 *   catches up to what etcd answered and the callback runs again. A key deleted
 *   under a ranged prefix is not seen by that check: deletions only free things,
 *   so a decision it makes stale is a conservative one (a name or address still
 *   thought taken), and a key the transaction writes is always compared itself.
 * - A committed transaction resolves once the mirror holds it (read your writes).
 * - etcd not answering within `timeoutMs` fails the operation with
 *   ERR_CLUSTER_UNAVAILABLE and changes nothing; reads keep answering from the
 *   mirror meanwhile.
 */
import {
  Etcd3,
  GRPCFailedPreconditionError,
  GRPCInvalidArgumentError,
  EtcdPermissionDeniedError,
  GRPCResourceExhastedError,
  type IOptions,
} from 'etcd3';
import type { IKeyValue, IWatchResponse } from 'etcd3/lib/rpc.js';
import { ConstantBackoff, noop } from 'cockatiel';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import type { Lease } from 'etcd3';
import { byKey } from './memory-store.js';
import type { PutOptions, Store, StoreChange, StoreEvent, StoreTxn, StoreWatch } from './store.js';

/** Where the cluster store is and how to reach it. */
export interface EtcdStoreOptions {
  /** etcd client URLs, e.g. `http://127.0.0.1:2379` */
  endpoints: string[];
  /** the key prefix of this cluster's records, e.g. `cnm/default/` */
  prefix: string;
  /**
   * Top-level prefixes whose keys are grouped by their second segment (a
   * network id: `peer/<id>/…`) and mirrored only for the groups this host
   * follows ({@link EtcdStore.follow}).
   */
  partitioned?: string[];
  /** PEM contents for TLS to etcd */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** how long an operation may wait for etcd before ERR_CLUSTER_UNAVAILABLE (default 5 s) */
  timeoutMs?: number;
}

/** What this host's store has cost and received, for the scale measurements. */
export interface EtcdStoreStats {
  /** requests sent to etcd: reads, transactions, watch creations */
  requests: number;
  /** key changes delivered by the watches */
  events: number;
  /** transactions that lost to another host's change and ran again */
  conflicts: number;
  /** keys the mirror holds now */
  keys: number;
  /** watches open now */
  watches: number;
}

/** How many times a transaction runs again after conflicts before it gives up. */
const MAX_ATTEMPTS = 1000;
/** How many revisions of events the mirror keeps for watches from the past. */
const KEPT_EVENTS = 10_000;

interface Slot {
  value: unknown;
  /** the key's modification revision */
  mod: number;
}

/** One watched part of the mirror: the logical keys in [start, end) ('' end: to the end of the prefix). */
interface Feed {
  readonly start: string;
  readonly end: string;
  /** the last revision of this range the mirror holds */
  rev: number;
  watch: { cancel(): Promise<void> } | undefined;
  /** holders of a followed prefix (the shared feeds have none and stay) */
  refs: number;
  opening: Promise<void> | undefined;
}

/** The first key after every key that starts with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const out = Buffer.from(b.subarray(0, i + 1));
      out[i]! += 1;
      return out;
    }
  }
  return Buffer.from([0]);
}

/** The first string after every string that starts with `prefix` (prefixes here are ASCII). */
const after = (prefix: string) => prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);

const inFeed = (f: Feed, key: string) => key >= f.start && (f.end === '' || key < f.end);

/** The callback's view: the mirror plus its own writes; every read is recorded for the commit's checks. */
class View implements StoreTxn {
  readonly writes = new Map<string, { value: unknown; ephemeral: boolean } | null>();
  /** key -> the modification revision read (0: absent) */
  readonly reads = new Map<string, number>();
  /** prefix -> how many keys the mirror held under it, and the revision its feed was at */
  readonly ranges = new Map<string, { count: number; at: number }>();
  readonly aborts: Array<() => void> = [];
  constructor(private readonly store: EtcdStore) {}

  onAbort(fn: () => void): void {
    this.aborts.push(fn);
  }

  get<T>(key: string): T | undefined {
    const w = this.writes.get(key);
    if (w !== undefined) return w === null ? undefined : (structuredClone(w.value) as T);
    const s = this.store.slot(key);
    if (!this.reads.has(key)) this.reads.set(key, s?.mod ?? 0);
    return s === undefined ? undefined : (structuredClone(s.value) as T);
  }

  put(key: string, value: unknown, opts?: PutOptions): void {
    this.store.covered(key);
    this.writes.set(key, { value: structuredClone(value), ephemeral: opts?.ephemeral === true });
  }

  del(key: string): void {
    this.store.covered(key);
    this.writes.set(key, null);
  }

  range<T>(prefix: string): Array<[string, T]> {
    const out = new Map<string, unknown>();
    const at = this.store.revOf(prefix);
    for (const [k, s] of this.store.slots(prefix)) out.set(k, s.value);
    if (!this.ranges.has(prefix)) this.ranges.set(prefix, { count: out.size, at });
    for (const [k, w] of this.writes) {
      if (!k.startsWith(prefix)) continue;
      if (w === null) out.delete(k);
      else out.set(k, w.value);
    }
    return ([...out].map(([k, v]) => [k, structuredClone(v)]) as Array<[string, T]>).sort(byKey);
  }
}

interface Watcher {
  prefix: string;
  listener: (e: StoreEvent) => void;
  onError?: (e: CnmError) => void;
}

export class EtcdStore implements Store {
  readonly scope = 'global' as const;
  private readonly data = new Map<string, Slot>();
  /** the feeds of the shared keys: every range outside the partitioned prefixes */
  private readonly shared: Feed[] = [];
  /** followed partition prefix (`peer/<id>/`) -> its feed */
  private readonly follows = new Map<string, Feed>();
  private readonly partitioned: string[];
  /** the revision the mirror was first loaded at: events before it are not kept */
  private loadedAt = 0;
  private readonly events: StoreEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly waits: Array<{ ready: () => boolean; resolve: () => void }> = [];
  private closed = false;
  private readonly timeoutMs: number;
  private lease: Lease | undefined;
  private leaseId = '';
  private leaseTtl = 0;
  private readonly renewed: Array<() => void> = [];
  private readonly counters = { requests: 0, events: 0, conflicts: 0 };

  private constructor(
    private readonly client: Etcd3,
    private readonly opts: EtcdStoreOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.partitioned = [...(opts.partitioned ?? [])].sort();
    // the shared feeds: the gaps between the partitioned prefixes
    let start = '';
    for (const p of this.partitioned) {
      this.shared.push({ start, end: p, rev: 0, watch: undefined, refs: 0, opening: undefined });
      start = after(p);
    }
    this.shared.push({ start, end: '', rev: 0, watch: undefined, refs: 0, opening: undefined });
  }

  /** Connect, load the shared keys and start watching them; ERR_CLUSTER_UNAVAILABLE if etcd does not answer. */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const options: IOptions = {
      hosts: opts.endpoints,
      dialTimeout: opts.timeoutMs ?? 5000,
      // our own deadline bounds each call; retries would only stretch it
      faultHandling: { host: () => noop, global: noop, watchBackoff: new ConstantBackoff(200).next() },
    };
    if (opts.tls) options.credentials = { rootCertificate: opts.tls.ca ?? Buffer.alloc(0), certChain: opts.tls.cert, privateKey: opts.tls.key };
    const store = new EtcdStore(new Etcd3(options), opts);
    try {
      for (const f of store.shared) await store.load(f);
      store.loadedAt = Math.min(...store.shared.map((f) => f.rev));
      for (const f of store.shared) await store.startWatch(f);
    } catch (e) {
      for (const f of store.shared) await f.watch?.cancel().catch(() => undefined);
      store.client.close();
      throw e;
    }
    return store;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.timeoutMs };
  }

  private unavailable(what: string, e: unknown): CnmError {
    const err = new CnmError('ERR_CLUSTER_UNAVAILABLE', `the cluster store (${this.opts.endpoints.join(', ')}) did not answer ${what} within ${this.timeoutMs} ms: is etcd running and reachable?`, {
      value: this.opts.endpoints.join(','),
    });
    (err as { cause?: unknown }).cause = e;
    return err;
  }

  /**
   * An etcd call that failed: ERR_CLUSTER_UNAVAILABLE when etcd was not reached
   * in time, ERR_STORE when it answered with a refusal (a request over its
   * limits, a permission), which waiting will not cure.
   */
  private failed(what: string, e: unknown): CnmError {
    const reached = e instanceof GRPCInvalidArgumentError || e instanceof GRPCResourceExhastedError || e instanceof GRPCFailedPreconditionError || e instanceof EtcdPermissionDeniedError;
    if (!reached) return this.unavailable(what, e);
    const err = new CnmError('ERR_STORE', `the cluster store refused ${what}: ${(e as Error).message}`, { value: this.opts.endpoints.join(',') });
    (err as { cause?: unknown }).cause = e;
    return err;
  }

  // ---------------------------------------------------------------- the mirror's parts

  /** The partition prefix (`peer/<id>/`) a key or prefix falls in, '' when it is a shared key, undefined when it spans partitions. */
  private partitionOf(key: string): string | undefined {
    for (const p of this.partitioned) {
      if (key.startsWith(p)) {
        const slash = key.indexOf('/', p.length);
        return slash < 0 ? undefined : key.slice(0, slash + 1);
      }
      if (p.startsWith(key)) return undefined;
    }
    return '';
  }

  /** Throw unless the mirror holds `key` (its partition is followed here). */
  covered(key: string): void {
    const part = this.partitionOf(key);
    if (part === '') return;
    if (part === undefined || !this.follows.get(part)?.refs || this.follows.get(part)?.opening) {
      throw new CnmError('ERR_INTERNAL', `internal error (please report it): cluster key ${key} read or written on a host that does not follow ${part ?? 'one partition'}`);
    }
  }

  /** A key's slot in the mirror (the key must be covered). */
  slot(key: string): Slot | undefined {
    this.covered(key);
    return this.data.get(key);
  }

  /** The mirror's slots under a prefix: one partition, shared keys, or what this host holds of several partitions. */
  slots(prefix: string): Array<[string, Slot]> {
    if (this.partitionOf(prefix) !== undefined) this.covered(prefix);
    const out: Array<[string, Slot]> = [];
    for (const [k, s] of this.data) if (k.startsWith(prefix)) out.push([k, s]);
    return out;
  }

  /** The feeds that hold keys under `prefix`. */
  private feedsOf(prefix: string): Feed[] {
    const part = this.partitionOf(prefix);
    if (part) {
      const f = this.follows.get(part);
      return f ? [f] : [];
    }
    const lo = prefix;
    const hi = prefix === '' ? '' : after(prefix);
    const out = this.shared.filter((f) => (f.end === '' || lo < f.end) && (hi === '' || f.start < hi));
    for (const [p, f] of this.follows) if (p.startsWith(prefix)) out.push(f);
    return out;
  }

  /** The revision up to which the mirror holds every change under `prefix`. */
  revOf(prefix: string): number {
    const feeds = this.feedsOf(prefix);
    return feeds.length === 0 ? this.loadedAt : Math.min(...feeds.map((f) => f.rev));
  }

  private feedOfKey(key: string): Feed | undefined {
    const part = this.partitionOf(key);
    if (part) return this.follows.get(part);
    return this.shared.find((f) => inFeed(f, key));
  }

  private range$(f: Feed): { key: Buffer; range_end: Buffer } {
    const p = this.opts.prefix;
    return { key: Buffer.from(p + f.start), range_end: f.end === '' ? prefixEnd(p) : Buffer.from(p + f.end) };
  }

  /** (Re)load a feed's keys; returns the keys that changed against what the mirror held. */
  private async load(f: Feed): Promise<StoreChange[]> {
    const p = this.opts.prefix;
    let res;
    this.counters.requests++;
    try {
      res = await this.client.kv.range(this.range$(f), this.deadline());
    } catch (e) {
      throw this.unavailable('a read of the cluster state', e);
    }
    const fresh = new Map<string, Slot>();
    for (const kv of res.kvs) fresh.set(kv.key.toString().slice(p.length), { value: JSON.parse(kv.value.toString()), mod: Number(kv.mod_revision) });
    const changes: StoreChange[] = [];
    for (const [k, s] of fresh) if (this.data.get(k)?.mod !== s.mod) changes.push({ key: k, deleted: false });
    for (const k of this.data.keys()) {
      if (inFeed(f, k) && !fresh.has(k)) {
        changes.push({ key: k, deleted: true });
        this.data.delete(k);
      }
    }
    for (const [k, s] of fresh) this.data.set(k, s);
    f.rev = Number(res.header.revision);
    return changes;
  }

  private async startWatch(f: Feed): Promise<void> {
    const r = this.range$(f);
    this.counters.requests++;
    const created = this.client
      .watch()
      .inRange({ start: r.key, end: r.range_end })
      .startRevision(String(f.rev + 1))
      .create();
    let timer: NodeJS.Timeout | undefined;
    const w = await Promise.race([
      created,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(this.unavailable('a watch', new Error('timeout'))), this.timeoutMs);
      }),
    ]).catch((e: unknown) => {
      // a watch that connects after all is not wanted any more
      void created.then((late) => late.cancel()).catch(() => undefined);
      throw e instanceof CnmError ? e : this.unavailable('a watch', e);
    });
    clearTimeout(timer);
    // events come on later turns of the loop than the one create() resolves on
    w.on('data', (res: IWatchResponse) => this.apply(f, res));
    w.on('error', (e: Error) => void this.watchFailed(f, e));
    f.watch = w;
  }

  /** A feed still part of the mirror (a dropped follow's late events are not). */
  private live(f: Feed): boolean {
    return !this.closed && (f.refs === 0 ? this.shared.includes(f) : this.follows.get(f.start) === f);
  }

  /**
   * A feed's watch broke for good (its revision was compacted while etcd was
   * away): reload its keys and deliver what changed as one event.
   */
  private async watchFailed(f: Feed, e: Error): Promise<void> {
    if (!this.live(f)) return;
    log.warn('a cluster store watch failed: reloading that part of the cluster state', { range: f.start, err: e });
    await f.watch?.cancel().catch(() => undefined);
    let changes: StoreChange[] = [];
    for (;;) {
      try {
        changes = await this.load(f);
        await this.startWatch(f);
        break;
      } catch (err) {
        if (!this.live(f)) return;
        log.warn('reloading the cluster state failed: retrying', { err });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    if (changes.length > 0) this.publish({ revision: f.rev, changes });
    this.release();
  }

  /** Apply one watch response to the mirror, a revision at a time, and deliver it. */
  private apply(f: Feed, res: IWatchResponse): void {
    if (!this.live(f)) return;
    const p = this.opts.prefix;
    const byRev = new Map<number, StoreChange[]>();
    for (const ev of res.events) {
      const kv = ev.kv as IKeyValue;
      const rev = Number(kv.mod_revision);
      if (rev <= f.rev) continue; // replayed after a reconnect
      const key = kv.key.toString().slice(p.length);
      const deleted = ev.type === 'Delete';
      if (deleted) this.data.delete(key);
      else this.data.set(key, { value: JSON.parse(kv.value.toString()), mod: rev });
      let list = byRev.get(rev);
      if (!list) byRev.set(rev, (list = []));
      list.push({ key, deleted });
      this.counters.events++;
    }
    for (const [revision, changes] of [...byRev].sort(([a], [b]) => a - b)) {
      f.rev = revision;
      this.publish({ revision, changes });
    }
    this.release();
  }

  private publish(e: StoreEvent): void {
    this.events.push(e);
    if (this.events.length > KEPT_EVENTS) this.events.shift();
    for (const w of this.watchers) this.deliver(w, e);
  }

  private deliver(w: Watcher, e: StoreEvent): void {
    const changes = e.changes.filter((c) => c.key.startsWith(w.prefix));
    if (changes.length === 0) return;
    try {
      w.listener({ revision: e.revision, changes });
    } catch (err) {
      log.error('store watch listener threw', { err, prefix: w.prefix, revision: e.revision });
    }
  }

  private release(): void {
    for (let i = this.waits.length - 1; i >= 0; i--) {
      const w = this.waits[i]!;
      if (w.ready()) {
        this.waits.splice(i, 1);
        w.resolve();
      }
    }
  }

  /**
   * Resolves true once `ready()` holds for the mirror, or false after `ms`. A
   * condition on our keys, not a revision: etcd's revisions count the changes
   * of every key, also those outside the ranges the mirror holds.
   */
  private caughtUp(ready: () => boolean, ms: number): Promise<boolean> {
    if (ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waits.indexOf(entry);
        if (i >= 0) this.waits.splice(i, 1);
        resolve(false);
      }, ms);
      const entry = {
        ready,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      this.waits.push(entry);
    });
  }

  /**
   * Mirror the keys under a partition prefix (`peer/<network>/`) from now on:
   * loaded, then watched. Counted: each call wants one {@link unfollow}.
   * ERR_CLUSTER_UNAVAILABLE when etcd does not answer (nothing is held then).
   */
  async follow(prefix: string): Promise<void> {
    this.check();
    if (!this.partitioned.some((p) => prefix.startsWith(p)) || this.partitionOf(prefix) !== prefix) {
      throw new CnmError('ERR_INTERNAL', `internal error (please report it): ${prefix} is not a partition prefix of the cluster store`);
    }
    let f = this.follows.get(prefix);
    if (f) {
      f.refs++;
      if (f.opening) {
        try {
          await f.opening;
        } catch (e) {
          f.refs--;
          throw e;
        }
      }
      return;
    }
    const feed: Feed = { start: prefix, end: after(prefix), rev: 0, watch: undefined, refs: 1, opening: undefined };
    f = feed;
    this.follows.set(prefix, feed);
    feed.opening = (async () => {
      await this.load(feed);
      await this.startWatch(feed);
    })();
    try {
      await feed.opening;
      feed.opening = undefined;
    } catch (e) {
      if (this.follows.get(prefix) === feed) this.follows.delete(prefix);
      this.dropUnder(prefix);
      throw e;
    }
  }

  /**
   * Follow several partition prefixes (all or none: a failure undoes the ones
   * taken); the returned function unfollows them, once.
   */
  async followAll(prefixes: string[]): Promise<() => void> {
    const done: string[] = [];
    try {
      for (const p of prefixes) {
        await this.follow(p);
        done.push(p);
      }
    } catch (e) {
      for (const p of done) this.unfollow(p);
      throw e;
    }
    let once = false;
    return () => {
      if (once) return;
      once = true;
      for (const p of done) this.unfollow(p);
    };
  }

  /** Drop the mirror's keys under a prefix (deleting while iterating a Map is safe). */
  private dropUnder(prefix: string): void {
    for (const k of this.data.keys()) if (k.startsWith(prefix)) this.data.delete(k);
  }

  /** Stop mirroring a partition prefix once every {@link follow} of it is undone. */
  unfollow(prefix: string): void {
    const f = this.follows.get(prefix);
    if (!f || f.opening) return;
    if (--f.refs > 0) return;
    this.follows.delete(prefix);
    this.dropUnder(prefix);
    void f.watch?.cancel().catch((e: unknown) => log.warn('cancelling a cluster store watch failed', { prefix, err: e }));
  }

  /** Whether the mirror holds a partition prefix now. */
  following(prefix: string): boolean {
    const f = this.follows.get(prefix);
    return f !== undefined && f.opening === undefined;
  }

  /** What this host's store has cost and received so far. */
  stats(): EtcdStoreStats {
    return { ...this.counters, keys: this.data.size, watches: this.shared.length + this.follows.size };
  }

  private check(): void {
    if (this.closed) throw new CnmError('ERR_CLOSED', 'the cluster store is closed: open a new one');
  }

  get<T>(key: string): T | undefined {
    this.check();
    const s = this.slot(key);
    return s === undefined ? undefined : (structuredClone(s.value) as T);
  }

  range<T>(prefix: string): Array<[string, T]> {
    this.check();
    return this.slots(prefix)
      .map(([k, s]) => [k, structuredClone(s.value) as T] as [string, T])
      .sort(byKey);
  }

  /** The newest revision the mirror holds of any part. */
  revision(): number {
    this.check();
    let rev = this.loadedAt;
    for (const f of [...this.shared, ...this.follows.values()]) rev = Math.max(rev, f.rev);
    return rev;
  }

  /**
   * Watch changes under `prefix` after `fromRevision`. The mirror's parts are
   * watched separately, so their events arrive in revision order per part: a
   * watcher reads the mirror for the state and takes events as news of what changed.
   */
  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch {
    this.check();
    const oldest = this.events[0]?.revision ?? this.revision() + 1;
    if (fromRevision < this.loadedAt && fromRevision + 1 < oldest) {
      throw new CnmError('ERR_STORE', `revision ${fromRevision} is older than this host's view of the cluster store (from ${this.loadedAt}): reload and watch from ${this.revision()}`, { value: fromRevision });
    }
    const w: Watcher = { prefix, listener, onError };
    const past = this.events.filter((e) => e.revision > fromRevision);
    // the past first, asynchronously like every event; live ones are held until then
    queueMicrotask(() => {
      for (const e of past) this.deliver(w, e);
      if (!this.closed) this.watchers.add(w);
    });
    return { close: () => this.watchers.delete(w) };
  }

  async txn<T>(fn: (tx: StoreTxn) => T): Promise<T> {
    this.check();
    for (let attempt = 1; ; attempt++) {
      // each round trip has the whole timeout: contention only makes more of them
      const until = Date.now() + this.timeoutMs;
      if (attempt > MAX_ATTEMPTS) {
        throw new CnmError('ERR_STORE', `a cluster store transaction lost ${MAX_ATTEMPTS} times in a row to other hosts' changes: too much contention, try again`);
      }
      const view = new View(this);
      let result: T;
      try {
        result = fn(view);
      } catch (e) {
        for (const a of view.aborts) a();
        throw e;
      }
      if (view.writes.size === 0) return result;
      const p = this.opts.prefix;
      const compare = [];
      // every key read, and every key written (a blind write must not resurrect a deleted record either)
      const checked = new Map(view.reads);
      for (const k of view.writes.keys()) if (!checked.has(k)) checked.set(k, this.data.get(k)?.mod ?? 0);
      for (const [k, mod] of checked) compare.push({ key: Buffer.from(p + k), target: 'Mod' as const, result: 'Equal' as const, mod_revision: mod });
      for (const [r, { at }] of view.ranges) compare.push({ key: Buffer.from(p + r), range_end: prefixEnd(p + r), target: 'Mod' as const, result: 'Less' as const, mod_revision: at + 1 });
      if ([...view.writes.values()].some((w) => w?.ephemeral) && this.leaseId === '') {
        for (const a of view.aborts) a();
        throw new CnmError('ERR_INTERNAL', 'an ephemeral key was written before the host lease was granted');
      }
      const success = [...view.writes].map(([k, w]) =>
        w === null
          ? { request_delete_range: { key: Buffer.from(p + k) } }
          : { request_put: { key: Buffer.from(p + k), value: Buffer.from(JSON.stringify(w.value)), ...(w.ephemeral ? { lease: this.leaseId } : {}) } },
      );
      let res;
      this.counters.requests++;
      try {
        res = await this.client.kv.txn({ compare, success, failure: [] }, { deadline: until });
      } catch (e) {
        for (const a of view.aborts) a();
        throw this.failed('a transaction', e);
      }
      const revision = Number(res.header.revision);
      const left = () => Math.max(0, until - Date.now());
      if (res.succeeded) {
        // our writes in the mirror (a delete of an absent key makes no event, hence per key)
        const mine = () =>
          [...view.writes].every(([k, w]) => {
            const f = this.feedOfKey(k);
            if (!f || f.rev >= revision) return true;
            return w === null ? !this.data.has(k) : (this.data.get(k)?.mod ?? 0) >= revision;
          });
        if (!(await this.caughtUp(mine, left()))) log.warn('a committed cluster store transaction is not in the mirror yet: the watch lags', { revision });
        return result;
      }
      for (const a of view.aborts) a();
      this.counters.conflicts++;
      // another host changed what we read: wait until the mirror shows it, then run again
      const moved = () => {
        for (const [k, mod] of checked) if ((this.data.get(k)?.mod ?? 0) !== mod) return true;
        for (const [r, { count, at }] of view.ranges) {
          let n = 0;
          for (const [k, s] of this.data) {
            if (!k.startsWith(r)) continue;
            if (s.mod > at) return true;
            n++;
          }
          if (n !== count) return true;
        }
        return false;
      };
      if (!(await this.caughtUp(moved, left()))) {
        throw this.unavailable(`the changes of a conflicting transaction (attempt ${attempt})`, new Error('watch lag'));
      }
    }
  }

  /**
   * Grant this host's lease (TTL in seconds) and keep it alive: ephemeral keys
   * are bound to it. When it is lost (etcd did not hear from this host within
   * the TTL), a new one is granted and `onRenewed` callbacks run, so that their
   * owners write their ephemeral keys again.
   */
  async grantLease(ttlSeconds: number): Promise<void> {
    this.leaseTtl = ttlSeconds;
    const lease = this.client.lease(ttlSeconds);
    try {
      const id = await Promise.race([
        lease.grant(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), this.timeoutMs).unref()),
      ]);
      this.lease = lease;
      this.leaseId = id;
    } catch (e) {
      lease.release();
      throw this.unavailable('a lease grant', e);
    }
    lease.on('lost', (err: Error) => void this.leaseLost(lease, err));
  }

  /**
   * Bind this store's ephemeral keys to a lease another process of this host
   * keeps alive (the CLI's cluster agent): no keep-alive here, nothing revoked on close.
   */
  adoptLease(id: string): void {
    this.leaseId = id;
  }

  /** Run `fn` after each new lease (see {@link grantLease}). */
  onRenewed(fn: () => void): void {
    this.renewed.push(fn);
  }

  /** The id of this host's lease ('' before it is granted). */
  leaseOf(): string {
    return this.leaseId;
  }

  private async leaseLost(lease: Lease, err: Error): Promise<void> {
    if (this.closed || lease !== this.lease) return;
    log.warn('the host lease in the cluster store was lost: granting a new one', { err });
    this.leaseId = '';
    for (;;) {
      try {
        await this.grantLease(this.leaseTtl);
        break;
      } catch (e) {
        if (this.closed) return;
        log.warn('granting a new host lease failed: retrying', { err: e });
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    for (const fn of this.renewed) {
      try {
        fn();
      } catch (e) {
        log.error('a lease renewal callback threw', { err: e });
      }
    }
  }

  /**
   * Close; with `revoke`, the lease is revoked so this host's ephemeral keys go
   * at once (a clean shutdown), otherwise they stay until its TTL runs out.
   */
  async close(opts: { revoke?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.lease) {
      if (opts.revoke) await this.lease.revoke(this.deadline()).catch((e: unknown) => log.warn('revoking the host lease failed', { err: e }));
      else this.lease.release();
    }
    this.watchers.clear();
    const feeds = [...this.shared, ...this.follows.values()];
    this.follows.clear();
    await Promise.all(feeds.map((f) => f.watch?.cancel().catch((e: unknown) => log.warn('cancelling a cluster store watch failed', { range: f.start, err: e }))));
    this.client.close();
  }
}
