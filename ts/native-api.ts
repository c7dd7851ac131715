/**
 * The contract between the TypeScript layer and the Rust addon (crates/netcore).
 * The generated loader (../index.js) must export exactly these functions; napi-rs
 * turns Rust `Option<T>` into `T | undefined | null` and snake_case into camelCase.
 *
 * Netns arguments: `undefined`/`null` means the process's own network namespace;
 * a string is a named netns, i.e. the file /run/netns/<name>.
 *
 * Every rejection is an Error whose `code` is one of NativeErrorCode and whose
 * `message` is a JSON object: {"code","message","errno"?,"ifname"?,"netns"?}.
 */
export type NativeErrorCode =
  | 'ERR_KERNEL'
  | 'ERR_PERMISSION'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_NETNS_NOT_FOUND'
  | 'ERR_NETNS_EXISTS'
  | 'ERR_LINK_NOT_FOUND'
  | 'ERR_LINK_EXISTS'
  | 'ERR_IO';

export interface BridgeSpec {
  netns?: string | null;
  name: string;
  mtu?: number | null;
  mac?: string | null;
  /** CIDR strings, e.g. "10.1.0.1/24"; already present ones are kept, EEXIST ignored. */
  addresses?: string[] | null;
  /** default true */
  up?: boolean | null;
}

export interface BridgeInfo {
  ifindex: number;
  name: string;
  mtu: number;
  mac: string;
  /** false when the bridge already existed */
  created: boolean;
}

export interface VethSpec {
  hostNetns?: string | null;
  /** the named netns the peer is born in */
  sandboxNetns: string;
  hostIfname: string;
  /** bridge to enslave the host end to */
  master?: string | null;
  /** name of the peer inside the sandbox, e.g. eth0 */
  ifname: string;
  mtu?: number | null;
  mac?: string | null;
  /** CIDR strings for the peer */
  addresses?: string[] | null;
  /** IPv4 default route via this gateway */
  gateway?: string | null;
  /** IPv6 default route via this gateway */
  gateway6?: string | null;
  /** hairpin mode on the bridge port (a sandbox reaching its own published port) */
  hairpin?: boolean | null;
}

export interface VethInfo {
  hostIfindex: number;
  ifindex: number;
  mac: string;
  hostMac: string;
}

/** One static route for {@link AdoptSpec}: `dst` via `gateway`, or on-link without one. */
export interface StaticRoute {
  /** CIDR */
  dst: string;
  /** absent for an on-link route (nested fields take no null) */
  gateway?: string;
}

/**
 * adoptLink: a link made in the host netns by someone else (a remote plugin) is
 * moved into the sandbox netns, renamed and configured there. The move waits for
 * an RCU grace period (~20 ms): plugins only, never the bridge path.
 */
export interface AdoptSpec {
  hostNetns?: string | null;
  /** the link in the host netns */
  ifname: string;
  /** the named netns to move it into */
  sandboxNetns: string;
  /** its name inside the sandbox, e.g. eth0 */
  newName: string;
  mtu?: number | null;
  mac?: string | null;
  /** CIDR strings */
  addresses?: string[] | null;
  /** IPv4 default route via this gateway */
  gateway?: string | null;
  /** IPv6 default route via this gateway */
  gateway6?: string | null;
  routes?: StaticRoute[] | null;
}

export interface AdoptInfo {
  ifindex: number;
  mac: string;
}

export interface LinkInfo {
  index: number;
  name: string;
  kind?: string | null;
  master?: number | null;
  mtu: number;
  mac: string;
  up: boolean;
  addresses: string[];
}

export interface RouteInfo {
  /** CIDR; "0.0.0.0/0" for default */
  dst: string;
  gateway?: string | null;
  oif?: number | null;
  table: number;
}

export interface NativeBinding extends NativeFirewall {
  netnsCreate(name: string): Promise<void>;
  netnsBind(name: string, target?: string | null): Promise<void>;
  netnsDelete(name: string): Promise<boolean>;
  netnsDeleteMany(names: string[]): Promise<number>;
  netnsList(): Promise<string[]>;
  netnsExists(name: string): Promise<boolean>;
  /** the netns cookie (a 64-bit id never reused during a boot) of a named netns, or of the process's own (null), in decimal */
  netnsCookie(netns: string | null): Promise<string>;
  /** whether the addon was built with the fault-injection hooks (tests only) */
  faultInjectionEnabled(): boolean;
  /** drop the cached sockets of a netns; resolves once closed (waits off the JS thread) */
  releaseNetns(name: string): Promise<void>;
  ensureBridge(spec: BridgeSpec): Promise<BridgeInfo>;
  deleteLink(netns: string | undefined | null, name: string): Promise<boolean>;
  attachVeth(spec: VethSpec): Promise<VethInfo>;
  /** move a plugin-made link into a sandbox and configure it; moved back (or deleted) on failure */
  adoptLink(spec: AdoptSpec): Promise<AdoptInfo>;
  detachVeth(hostNetns: string | undefined | null, hostIfname: string): Promise<boolean>;
  listLinks(netns?: string | null): Promise<LinkInfo[]>;
  listRoutes(netns?: string | null, family?: number | null): Promise<RouteInfo[]>;
  /** make gateway (out of ifname) the default route of family 4|6 in a named netns; no gateway removes it */
  setDefaultRoute(netns: string, ifname: string | undefined | null, gateway: string | undefined | null, family: number): Promise<void>;
  sysctlGet(netns: string | undefined | null, key: string): Promise<string>;
  sysctlSet(netns: string | undefined | null, key: string, value: string): Promise<void>;
}

// ---------------------------------------------------------------- firewall

/** Which firewall backend programs the rules. */
export type FirewallBackendName = 'nftables' | 'iptables' | 'none';

/** Per-network firewall state: one bridge and how its traffic is treated. */
export interface FirewallNetwork {
  /** the bridge device */
  bridge: string;
  /** IPv4 subnet of the network, CIDR (iptables rules match on it) */
  subnet: string;
  /** IPv6 subnet of a dual-stack network, CIDR; absent/null = none (the iptables backend writes ip6tables rules only for networks with one) */
  subnet6?: string | null;
  /** masquerade traffic from the subnet that leaves through anything but its own bridge */
  masquerade: boolean;
  /** inter-container communication on this bridge */
  icc: boolean;
  /** no traffic in or out except on the bridge itself */
  internal: boolean;
  /** the network id, used as the rule tag (iptables comment) */
  tag: string;
}

/** One published port (a range is expanded into one mapping per port by the caller). */
export interface PortMapping {
  proto: 'tcp' | 'udp' | 'sctp';
  /** IPv4 host address; absent/null = every local address (0.0.0.0) */
  hostIp?: string | null;
  hostPort: number;
  containerIp: string;
  /** also publish the host port on IPv6 to this container address (unless hostIp is a specific IPv4 address); absent/null = IPv4 only */
  containerIp6?: string | null;
  containerPort: number;
  /** the bridge the container sits behind (iptables rules use it) */
  bridge: string;
  /** the endpoint id, used as the rule tag */
  tag: string;
}

/** One atomic change to the firewall of one netns. */
export interface FirewallBatch {
  backend: FirewallBackendName;
  netns?: string | null;
  addNetworks?: FirewallNetwork[] | null;
  removeNetworks?: FirewallNetwork[] | null;
  addPorts?: PortMapping[] | null;
  removePorts?: PortMapping[] | null;
}

/** What the firewall of one netns holds that we made. */
export interface FirewallState {
  networks: FirewallNetwork[];
  ports: PortMapping[];
}

export interface NativeFirewall {
  /** create our table(s)/chains if missing; idempotent */
  firewallInit(backend: FirewallBackendName, netns?: string | null): Promise<void>;
  /** apply a batch atomically (nftables: one netlink transaction) */
  applyFirewall(batch: FirewallBatch): Promise<void>;
  /** read back what we made (for reconcile and tests) */
  firewallState(backend: FirewallBackendName, netns?: string | null): Promise<FirewallState>;
  /** remove everything we made in that netns */
  firewallReset(backend: FirewallBackendName, netns?: string | null): Promise<void>;
}
