/**
 * The global-scope {@link Store} on etcd v3: what a cluster shares, under one key
 * prefix per cluster.
 *
 * - A mirror of every key under the prefix answers the synchronous reads. It is
 *   loaded once, then kept by one watch from the revision it was loaded at; the
 *   watch resumes from its last revision after etcd comes back, so a host that
 *   was cut off catches up on what it missed without reloading.
 * - A transaction runs its callback on the mirror, recording what it read, then
 *   commits with compare-and-swap in one etcd transaction: every key read or
 *   written must still have the modification revision the mirror showed, and no
 *   key under a ranged prefix may have changed since the mirror's revision (a
 *   key created there is a change). When another host got there first, the
 *   mirror catches up to the revision etcd answered with and the callback runs
 *   again. A key deleted under a ranged prefix is not seen by that check:
 *   deletions only free things, so a decision it makes stale is a conservative
 *   one (a name or address still thought taken), and a key the transaction
 *   writes is always compared itself.
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
  /** PEM contents for TLS to etcd */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** how long an operation may wait for etcd before ERR_CLUSTER_UNAVAILABLE (default 5 s) */
  timeoutMs?: number;
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

/** The callback's view: the mirror plus its own writes; every read is recorded for the commit's checks. */
class View implements StoreTxn {
  readonly writes = new Map<string, { value: unknown; ephemeral: boolean } | null>();
  /** key -> the modification revision read (0: absent) */
  readonly reads = new Map<string, number>();
  /** prefix -> how many keys the mirror held under it */
  readonly ranges = new Map<string, number>();
  readonly aborts: Array<() => void> = [];
  constructor(private readonly data: ReadonlyMap<string, Slot>) {}

  onAbort(fn: () => void): void {
    this.aborts.push(fn);
  }

  get<T>(key: string): T | undefined {
    const w = this.writes.get(key);
    if (w !== undefined) return w === null ? undefined : (structuredClone(w.value) as T);
    const s = this.data.get(key);
    if (!this.reads.has(key)) this.reads.set(key, s?.mod ?? 0);
    return s === undefined ? undefined : (structuredClone(s.value) as T);
  }

  put(key: string, value: unknown, opts?: PutOptions): void {
    this.writes.set(key, { value: structuredClone(value), ephemeral: opts?.ephemeral === true });
  }

  del(key: string): void {
    this.writes.set(key, null);
  }

  range<T>(prefix: string): Array<[string, T]> {
    const out = new Map<string, unknown>();
    for (const [k, s] of this.data) if (k.startsWith(prefix)) out.set(k, s.value);
    if (!this.ranges.has(prefix)) this.ranges.set(prefix, out.size);
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
  /** the last revision the mirror holds, as the watch delivered it */
  private rev = 0;
  /** the revision the mirror was (re)loaded at: events before it are not kept */
  private loadedAt = 0;
  private readonly events: StoreEvent[] = [];
  private watchers = new Set<Watcher>();
  private readonly waits: Array<{ ready: () => boolean; resolve: () => void }> = [];
  private watch$: { cancel(): Promise<void> } | undefined;
  private closed = false;
  private readonly timeoutMs: number;
  private lease: Lease | undefined;
  private leaseId = '';
  private leaseTtl = 0;
  private readonly renewed: Array<() => void> = [];

  private constructor(
    private readonly client: Etcd3,
    private readonly opts: EtcdStoreOptions,
  ) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** Connect, load the mirror and start watching; ERR_CLUSTER_UNAVAILABLE if etcd does not answer. */
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
      await store.load();
      await store.startWatch();
    } catch (e) {
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

  /** (Re)load every key under the prefix; returns the keys that changed against the old mirror. */
  private async load(): Promise<StoreChange[]> {
    const p = this.opts.prefix;
    let res;
    try {
      res = await this.client.kv.range({ key: Buffer.from(p), range_end: prefixEnd(p) }, this.deadline());
    } catch (e) {
      throw this.unavailable('a read of the cluster state', e);
    }
    const fresh = new Map<string, Slot>();
    for (const kv of res.kvs) fresh.set(kv.key.toString().slice(p.length), { value: JSON.parse(kv.value.toString()), mod: Number(kv.mod_revision) });
    const changes: StoreChange[] = [];
    for (const [k, s] of fresh) if (this.data.get(k)?.mod !== s.mod) changes.push({ key: k, deleted: false });
    for (const k of this.data.keys()) if (!fresh.has(k)) changes.push({ key: k, deleted: true });
    this.data.clear();
    for (const [k, s] of fresh) this.data.set(k, s);
    this.rev = Number(res.header.revision);
    this.loadedAt = this.rev;
    this.events.length = 0;
    return changes;
  }

  private async startWatch(): Promise<void> {
    const p = this.opts.prefix;
    const created = this.client.watch().prefix(p).startRevision(String(this.rev + 1)).create();
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
    w.on('data', (res: IWatchResponse) => this.apply(res));
    w.on('error', (e: Error) => void this.watchFailed(e));
    this.watch$ = w;
  }

  /** The watch broke for good (its revision was compacted while etcd was away): reload. */
  private async watchFailed(e: Error): Promise<void> {
    if (this.closed) return;
    log.warn('the cluster store watch failed: reloading the cluster state', { err: e });
    await this.watch$?.cancel().catch(() => undefined);
    for (;;) {
      try {
        await this.load();
        await this.startWatch();
        break;
      } catch (err) {
        if (this.closed) return;
        log.warn('reloading the cluster state failed: retrying', { err });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const err = new CnmError('ERR_STORE', 'the cluster store watch was restarted from a reload: events in between are not delivered; reload and watch again');
    const stopped = this.watchers;
    this.watchers = new Set();
    for (const w of stopped) {
      if (w.onError) w.onError(err);
      else log.error('a cluster store watch stopped', { prefix: w.prefix, err });
    }
    this.release();
  }

  /** Apply one watch response to the mirror, a revision at a time, and deliver it. */
  private apply(res: IWatchResponse): void {
    const p = this.opts.prefix;
    const byRev = new Map<number, StoreChange[]>();
    for (const ev of res.events) {
      const kv = ev.kv as IKeyValue;
      const rev = Number(kv.mod_revision);
      if (rev <= this.rev) continue; // replayed after a reconnect
      const key = kv.key.toString().slice(p.length);
      const deleted = ev.type === 'Delete';
      if (deleted) this.data.delete(key);
      else this.data.set(key, { value: JSON.parse(kv.value.toString()), mod: rev });
      let list = byRev.get(rev);
      if (!list) byRev.set(rev, (list = []));
      list.push({ key, deleted });
    }
    for (const [revision, changes] of [...byRev].sort(([a], [b]) => a - b)) {
      this.rev = revision;
      const e: StoreEvent = { revision, changes };
      this.events.push(e);
      if (this.events.length > KEPT_EVENTS) this.events.shift();
      for (const w of this.watchers) this.deliver(w, e);
    }
    this.release();
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
   * of every key, also those outside our prefix that the mirror never sees.
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

  private check(): void {
    if (this.closed) throw new CnmError('ERR_CLOSED', 'the cluster store is closed: open a new one');
  }

  get<T>(key: string): T | undefined {
    this.check();
    const s = this.data.get(key);
    return s === undefined ? undefined : (structuredClone(s.value) as T);
  }

  range<T>(prefix: string): Array<[string, T]> {
    this.check();
    const out: Array<[string, T]> = [];
    for (const [k, s] of this.data) if (k.startsWith(prefix)) out.push([k, structuredClone(s.value) as T]);
    return out.sort(byKey);
  }

  revision(): number {
    this.check();
    return this.rev;
  }

  watch(prefix: string, fromRevision: number, listener: (e: StoreEvent) => void, onError?: (e: CnmError) => void): StoreWatch {
    this.check();
    const oldest = this.events[0]?.revision ?? this.rev + 1;
    if (fromRevision < this.loadedAt && fromRevision + 1 < oldest) {
      throw new CnmError('ERR_STORE', `revision ${fromRevision} is older than this host's view of the cluster store (from ${this.loadedAt}): reload and watch from ${this.rev}`, { value: fromRevision });
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
      const at = this.rev;
      const view = new View(this.data);
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
      for (const r of view.ranges.keys()) compare.push({ key: Buffer.from(p + r), range_end: prefixEnd(p + r), target: 'Mod' as const, result: 'Less' as const, mod_revision: at + 1 });
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
        const mine = () => this.rev >= revision || [...view.writes].every(([k, w]) => (w === null ? !this.data.has(k) : (this.data.get(k)?.mod ?? 0) >= revision));
        if (!(await this.caughtUp(mine, left()))) log.warn('a committed cluster store transaction is not in the mirror yet: the watch lags', { revision });
        return result;
      }
      for (const a of view.aborts) a();
      // another host changed what we read: wait until the mirror shows it, then run again
      const moved = () => {
        for (const [k, mod] of checked) if ((this.data.get(k)?.mod ?? 0) !== mod) return true;
        for (const [r, n] of view.ranges) {
          let count = 0;
          for (const [k, s] of this.data) {
            if (!k.startsWith(r)) continue;
            if (s.mod > at) return true;
            count++;
          }
          if (count !== n) return true;
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
    await this.watch$?.cancel().catch((e: unknown) => log.warn('cancelling the cluster store watch failed', { err: e }));
    this.client.close();
  }
}
