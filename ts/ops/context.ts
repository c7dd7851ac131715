/**
 * What the operations share: the host, the store, the drivers and IPAMs, the
 * firewall and the daemon-level settings. The controller builds one and hands it
 * to every operation; nothing in ops/ holds state of its own.
 */
import type { DriverRegistry } from '../drivers/registry.js';
import type { Firewall } from '../firewall.js';
import type { DefaultPool } from '../ipam/default-pools.js';
import type { Store } from '../store/store.js';
import type { Cluster } from '../cluster/cluster.js';
import type { CommitMarks } from './marks.js';
import type { ProcessLease } from './process-lease.js';
import type { Reaper } from '../reaper.js';

/** Daemon-level settings after validation. */
export interface Settings {
  /** pools for automatic subnets */
  pools: readonly DefaultPool[];
  /** host address published ports bind to when none is given (Docker's --ip) */
  defaultHostIp: string;
  /** ephemeral host ports; read from the host's ip_local_port_range unless given */
  portRange: [number, number];
  /** turn on forwarding in the host netns */
  ipForward: boolean;
}

export interface OpContext {
  /** the netns treated as the host; null = the process's own */
  readonly hostNetns: string | null;
  /** the local-scope store */
  readonly store: Store;
  readonly drivers: DriverRegistry;
  readonly firewall: Firewall;
  readonly settings: Settings;
  /** endpoint commit marks waiting for this process's next transaction */
  readonly marks: CommitMarks;
  /** held while this process's kernel work may run ahead of its records */
  readonly lease: ProcessLease;
  /** deletes retired links (see reaper.ts) off the callers' path */
  readonly reaper: Reaper;
  /** this host's membership of a cluster (global networks), once joined */
  cluster?: Cluster;
}
