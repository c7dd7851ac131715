/**
 * The network driver interface (libnetwork's driverapi). The controller calls these
 * after it has reserved everything in the store; a driver never touches the store.
 * Each method that changes the kernel undoes its own partial work when it fails.
 * Reconcile asks each driver to repair its own kernel state: it names no driver.
 */
import type { Reaper } from '../reaper.js';
import type { Proxies } from '../proxy/proxies.js';
import type { Firewall } from '../firewall.js';
import type { FirewallLink } from '../native-api.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';

export interface DriverContext {
  /** the netns the controller treats as its host; null = the process's own */
  hostNetns: string | null;
  firewall: Firewall;
  /** the userland proxies of ports published on [::1] */
  proxies: Proxies;
  /** turn on forwarding in the host netns for the families networks use */
  ipForward: boolean;
  /** where remote driver plugins are looked for; absent = Docker's dirs (/run/docker/plugins…) */
  pluginDir?: string | null;
  /** time limit of one plugin call, ms (see ControllerOptions.pluginTimeoutMs) */
  pluginTimeoutMs?: number;
  /** deletes the links drivers retire (see ../reaper.ts) */
  reaper: Reaper;
}

/** What reconcile hands a driver: its networks and their endpoints, as the store has them. */
export interface RepairInput {
  /** this driver's networks that are ready (half-made ones are rolled back before) */
  networks: NetworkRecord[];
  /**
   * Every endpoint of those networks, in any state, read from the store at the
   * call. Order matters against a concurrent process: read the endpoints before
   * listing the kernel when looking for lost links (an endpoint recorded before
   * the listing has its link in it), after it when looking for orphans (a link
   * in the listing had its endpoint recorded before).
   */
  endpoints(): EndpointRecord[];
  /**
   * Resolves once no write transaction of any process is in flight (absent in a
   * dry run). A join that ran ahead of its record (see
   * {@link Driver.joinAheadOfRecord}) started inside the transaction recording
   * it: endpoints read after this name every link in a listing made before.
   */
  settled?(): Promise<void>;
  /**
   * The sandboxes with a netns of their own, each with the interface names its
   * endpoints (of any network) claim, read at the call.
   */
  sandboxes?(): Array<{ sandbox: SandboxRecord; ifnames(): string[] }>;
  /** the firewall entries of the legacy links on these networks (see ops/links.ts) */
  links?(): FirewallLink[];
  dryRun: boolean;
  /**
   * Record one repair (or several done by one `fn`): `fn` runs unless this is a
   * dry run; a failure is reported with `what` and the cause, and the repair
   * carries on. True when `fn` ran and succeeded.
   */
  step(what: string | string[], fn: () => Promise<unknown>): Promise<boolean>;
  /** Report something found that reconcile leaves as it is (an address added by hand). */
  notice?(what: string): void;
}

/** What a driver's repair asks the controller to record. */
export interface RepairResult {
  /** networks whose record changed (e.g. a bridge made again): the store follows */
  changed: NetworkRecord[];
  /** endpoints whose kernel side is gone for good: their records are dropped */
  lost: EndpointRecord[];
}

export interface Driver {
  readonly name: string;
  /** whether endpoints of this driver's networks get addresses from IPAM */
  readonly usesIpam: boolean;
  /** whether sandboxes on this driver's networks have a netns of their own */
  readonly ownNetns: boolean;
  /** false when its networks cannot publish ports (macvlan): `-p` is refused before anything changes */
  readonly publishesPorts?: boolean;
  /**
   * Its links live in the sandbox alone (macvlan) and would stay on the wire, with
   * their addresses, until the kernel reclaims a deleted netns (which takes a
   * while): sandbox rm takes them out before it deletes the netns.
   */
  readonly leavesBeforeNetnsDelete?: boolean;
  /**
   * Its repair removes the links that no endpoint record names, so its join may
   * start before the transaction that records the endpoint has committed (the
   * commit's disk flush overlaps the kernel work; see ops/process-lease.ts).
   */
  readonly joinAheadOfRecord?: boolean;
  /**
   * Stop the endpoint's traffic at once, before sandbox rm deletes its netns (the
   * kernel keeps a deleted netns's links for a while): veth drivers take the
   * sandbox end's addresses off. `leave` follows after the netns is gone.
   */
  quiesce?(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void>;
  /** only one network of this driver may exist (host, null): the predefined one */
  readonly singleton?: boolean;
  /**
   * Check and normalise driver options into the record (device name, MTU…),
   * without touching the kernel. Throws ERR_INVALID_ARGUMENT.
   */
  prepareNetwork(net: NetworkRecord): void;
  /**
   * Refuse `net` beside an existing network `other` (of any driver), inside the
   * create's transaction: throws a CnmError. Subnet overlaps are checked for every driver.
   */
  checkConflict?(net: NetworkRecord, other: NetworkRecord): void;
  /** Refuse a new endpoint on `net` beside its `others`, inside the connect's transaction. */
  checkEndpoint?(net: NetworkRecord, others: readonly EndpointRecord[]): void;
  createNetwork(net: NetworkRecord): Promise<void>;
  deleteNetwork(net: NetworkRecord): Promise<void>;
  /**
   * Undo whatever createNetwork may have done for a network that a dead process
   * left half-made (its record may lack what createNetwork fills in).
   */
  rollbackNetwork(net: NetworkRecord): Promise<void>;
  /** fill in the endpoint's link names and MAC; no kernel work */
  createEndpoint(net: NetworkRecord, ep: EndpointRecord): void;
  deleteEndpoint(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
  join(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<{ mac?: string }>;
  /**
   * Whether join finished the kernel side of an endpoint whose owner died before
   * recording it done: reconcile then finishes the endpoint (its connect may have
   * been reported done) instead of rolling it back. False when it cannot tell.
   */
  endpointComplete(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<boolean>;
  /**
   * Take the endpoint out of the sandbox; fine when the sandbox or the link is
   * gone already. `quiesced`: {@link quiesce} ran and the netns is deleted, so
   * the links are dealt with; only the rest of the leave remains.
   */
  leave(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord, quiesced?: boolean): Promise<void>;
  /** publish the endpoint's ports (ep.ports) */
  programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
  /** withdraw the endpoint's published ports */
  revokeExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
  /**
   * Reconcile: make the kernel match the records of this driver's networks (make
   * again what is missing, remove what no record accounts for) and report the
   * endpoints whose kernel side is lost.
   */
  repair(input: RepairInput): Promise<RepairResult>;
}
