/** Records kept in the store. Plain JSON so that any process can read them. */
import type { PoolConfig } from './ipam/pool.js';
import type { Owner } from './owner.js';
import type { PortMappingRecord } from './ports.js';
import type { SandboxDns } from './dns/settings.js';

export type RecordState = 'creating' | 'ready' | 'deleting';

export interface NetworkRecord {
  id: string;
  name: string;
  driver: string;
  /** local: this host's store; global: the cluster's */
  scope: 'local' | 'global';
  created: string;
  internal: boolean;
  attachable: boolean;
  enableIPv6: boolean;
  /** false for an IPv6-only network (absent: true) */
  enableIPv4?: boolean;
  /** driver options, Docker's "Options" */
  options: Record<string, string>;
  labels: Record<string, string>;
  ipam: {
    driver: string;
    options: Record<string, string>;
    /** options were given, even none: inspect shows {} rather than null, as Docker does */
    optionsGiven?: boolean;
    /** canonical pool configs (subnet and gateway always filled in) */
    config: PoolConfig[];
    /** true when the user gave the subnet (Docker allows --ip only then) */
    userSubnet: boolean;
  };
  /** the bridge device, for the bridge driver */
  bridge?: string;
  /** false when we adopted an existing device and must not delete it */
  bridgeCreated?: boolean;
  /** macvlan: cnm made the 802.1q sub-interface its parent names (parent=eth0.10), and removes it with the network */
  vlanCreated?: boolean;
  mtu?: number;
  predefined?: boolean;
  state: RecordState;
  /** set while an operation on it is in flight */
  owner?: Owner;
}

export type SandboxMode = 'network' | 'host' | 'none' | 'container';

export interface SandboxRecord {
  id: string;
  name: string;
  /** name of the file under /run/netns */
  netns: string;
  mode: SandboxMode;
  /** a network namespace someone else made (a container runtime), bound to /run/netns/<netns>: removal unbinds it and takes cnm's links out */
  external?: string;
  /** for container mode: the sandbox whose netns this one shares */
  sharedWith?: string;
  /** its name-resolution settings (--dns, --dns-search, --dns-option, --add-host, --hostname) */
  dns?: SandboxDns;
  /** legacy links (--link): the linked sandbox's id, the alias it goes by here, and the network they share */
  links?: SandboxLink[];
  /** ports it exposes without publishing them (Docker's --expose), for links */
  expose?: Array<{ port: number; proto: 'tcp' | 'udp' | 'sctp' }>;
  created: string;
  state: RecordState;
  owner?: Owner;
}

/** One legacy link of a sandbox. */
export interface SandboxLink {
  /** the linked sandbox's id */
  sandbox: string;
  /** the name it goes by in the linking sandbox */
  alias: string;
  /** the network they share, where the link's firewall entries live */
  network: string;
}

export interface EndpointRecord {
  id: string;
  networkId: string;
  sandboxId: string;
  /** interface name inside the sandbox (eth0, eth1, …); empty for host/none */
  ifname: string;
  /** host end of the veth pair; empty when the driver makes no link */
  hostIfname: string;
  mac: string;
  /** CIDR of the IPv4 address, e.g. "10.1.0.2/24"; empty when none */
  ipv4: string;
  ipv6: string;
  gateway: string;
  /** IPv6 gateway ("" when the network has no IPv6) */
  gateway6?: string;
  /** true when this endpoint provides the sandbox's default route */
  defaultGateway: boolean;
  aliases: string[];
  /** the address was asked for with --ip */
  staticIp: boolean;
  /** the IPv6 address was asked for with --ip6 */
  staticIp6?: boolean;
  /** published ports (bridge networks) */
  ports?: PortMappingRecord[];
  /** the MAC was asked for (Docker's EndpointConfig.MacAddress) */
  staticMac?: boolean;
  /** extra addresses (Docker's IPAMConfig.LinkLocalIPs), as CIDRs on its interface */
  linkLocal?: string[];
  /** Docker's EndpointConfig.DriverOpts, kept and shown */
  driverOpts?: Record<string, string>;
  /** the legacy links asked for on this endpoint ("NAME[:ALIAS]"), as Docker shows them */
  links?: string[];
  created: string;
  state: 'pending' | 'active';
  owner?: Owner;
}

/** An IPAM allocation record: who holds one address. */
export interface AllocationRecord {
  endpointId: string;
  /** the cluster host that allocated it (global networks only): its reconcile alone may free it */
  host?: string;
  /** when it was allocated (ms since the epoch; global networks only) */
  at?: number;
}
