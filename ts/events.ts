/**
 * Network events (create, connect, disconnect, destroy), as Docker's events API
 * shows them. Each is written into the host's store in the transaction that
 * commits the change, by whichever process makes it (a `cnm` command, a daemon,
 * a library program), into a bounded log: `cnm events`, the daemon's `/events`
 * and `ctl.events()` all see every change, the recent past included.
 */
import { labelsMatch } from './daemon/filters.js';
import type { Store, StoreReader, StoreTxn } from './store/store.js';
import type { EndpointRecord, NetworkRecord } from './types.js';

/** One event, in Docker's shape (`docker events --format '{{json .}}'`). */
export interface CnmEvent {
  Type: 'network';
  Action: 'create' | 'connect' | 'disconnect' | 'destroy';
  Actor: { ID: string; Attributes: Record<string, string> };
  /** `swarm` for the cluster's (global) networks, as Docker's overlay networks */
  scope: 'local' | 'swarm';
  /** unix seconds */
  time: number;
  /** unix nanoseconds */
  timeNano: number;
}

/** Docker's event filters: type, event, scope, label, network, container… each a list of values. */
export type EventFilters = Record<string, string[]>;

export interface EventQuery {
  /** only events at or after this time (unix seconds, fractions allowed) */
  since?: number;
  /** stop at this time (unix seconds): past events up to it, live ones until it comes */
  until?: number;
  filters?: EventFilters;
}

/** How many events the log keeps (the oldest go first). */
export const EVENT_LOG_SIZE = 1000;

const SEQ_KEY = 'evtseq';
const PREFIX = 'evt/';
const keyOf = (seq: number) => `${PREFIX}${String(seq).padStart(12, '0')}`;

/** Record an event inside the transaction that commits the change it reports. */
export function appendEvent(tx: StoreTxn, action: CnmEvent['Action'], actorId: string, attributes: Record<string, string>, scope: CnmEvent['scope'] = 'local'): void {
  const seq = (tx.get<number>(SEQ_KEY) ?? 0) + 1;
  const now = Date.now();
  const ev: CnmEvent = { Type: 'network', Action: action, Actor: { ID: actorId, Attributes: attributes }, scope, time: Math.floor(now / 1000), timeNano: now * 1_000_000 };
  tx.put(keyOf(seq), ev);
  tx.put(SEQ_KEY, seq);
  if (seq > EVENT_LOG_SIZE) tx.del(keyOf(seq - EVENT_LOG_SIZE));
}

/** The connect or disconnect event of an endpoint, as Docker reports it (the network is the actor). */
export function endpointEvent(tx: StoreTxn, action: 'connect' | 'disconnect', ep: Pick<EndpointRecord, 'networkId' | 'sandboxId'>): void {
  const net = tx.get<NetworkRecord>(`net/${ep.networkId}`);
  appendEvent(tx, action, ep.networkId, { container: ep.sandboxId, name: net?.name ?? '', type: net?.driver ?? '' }, net?.scope === 'global' ? 'swarm' : 'local');
}

/** Filter keys that name an object: matched against the actor's id or name (prefix), as Docker does. */
const NAMED = ['container', 'image', 'volume', 'network', 'plugin', 'node', 'service', 'secret', 'config', 'daemon'];

/** Docker's event filter (daemon/events/filter.go Include), for network events. */
export function eventMatches(f: EventFilters, e: CnmEvent): boolean {
  const vals = (k: string) => f[k] ?? [];
  if (vals('type').length && !vals('type').includes(e.Type)) return false;
  if (vals('event').length && !vals('event').includes(e.Action)) return false;
  if (vals('scope').length && !vals('scope').includes(e.scope)) return false;
  if (vals('label').length && !labelsMatch(e.Actor.Attributes, vals('label'))) return false;
  const name = e.Actor.Attributes.name ?? '';
  for (const k of NAMED) {
    // a container filter matches the container of a connect or disconnect
    const ids = k === 'container' ? [e.Actor.Attributes.container ?? ''] : [e.Actor.ID];
    if (vals(k).length && !vals(k).some((v) => ids.some((id) => id !== '' && id.startsWith(v)) || (k !== 'container' && name.startsWith(v)))) return false;
  }
  return true;
}

const within = (e: CnmEvent, q: EventQuery) => (q.since === undefined || e.timeNano >= q.since * 1e9) && (q.until === undefined || e.timeNano <= q.until * 1e9);

/** The events the log holds, oldest first, that pass the query. */
export function storedEvents(r: StoreReader, q: EventQuery = {}): CnmEvent[] {
  return r
    .range<CnmEvent>(PREFIX)
    .map(([, e]) => e)
    .filter((e) => within(e, q) && eventMatches(q.filters ?? {}, e));
}

/**
 * The events of the query: those of the log (since `since`), then live ones as
 * any process commits them, until `until` (or forever), or `signal` aborts.
 * Without `since`, only new ones (as `docker events`).
 */
export async function* watchEvents(store: Store, q: EventQuery = {}, signal?: AbortSignal): AsyncGenerator<CnmEvent> {
  const queue: CnmEvent[] = [];
  let wake: (() => void) | undefined;
  let failed: Error | undefined;
  const from = store.revision();
  const seen = new Set<string>();
  const past = q.since === undefined ? [] : store.range<CnmEvent>(PREFIX).filter(([, e]) => within(e, q) && eventMatches(q.filters ?? {}, e));
  for (const [k] of past) seen.add(k);
  const w = store.watch(
    PREFIX,
    from,
    (ev) => {
      for (const c of ev.changes) {
        if (c.deleted || seen.has(c.key)) continue;
        const e = store.get<CnmEvent>(c.key);
        if (e && within(e, q) && eventMatches(q.filters ?? {}, e)) queue.push(e);
      }
      wake?.();
    },
    (err) => {
      failed = err;
      wake?.();
    },
  );
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort);
  // an open stream keeps the process alive, as a server does (the store's watch alone may not)
  const alive = setInterval(() => undefined, 1 << 30);
  try {
    for (const [, e] of past) yield e;
    for (;;) {
      while (queue.length) yield queue.shift()!;
      if (failed) throw failed;
      if (signal?.aborted || (q.until !== undefined && Date.now() >= q.until * 1000)) return;
      // armed again at each wait: a timer may fire a moment before the wall clock
      // reaches `until` (it runs on another clock), and the stream must still end
      if (q.until !== undefined) {
        clearTimeout(timer);
        timer = setTimeout(() => wake?.(), q.until * 1000 - Date.now() + 1);
      }
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  } finally {
    clearInterval(alive);
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    w.close();
  }
}
