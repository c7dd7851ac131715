/** The options the controller's operations take: Docker's daemon and API settings. */
import type { DefaultPool } from './ipam/default-pools.js';
import type { FirewallBackendName } from './native-api.js';
import type { PortBinding } from './ports.js';

/** Options of {@link NetworkController.open}; the daemon-level settings of Docker. */
export interface ControllerOptions {
  /** where the store lives; default /var/lib/cnm */
  stateDir?: string;
  /** named netns to treat as the host; default: the process's own netns */
  hostNetns?: string | null;
  /** default bridge address in CIDR form, e.g. "172.17.0.1/16" (Docker's --bip) */
  bip?: string;
  /** use this existing bridge device for the default bridge (Docker's -b) */
  bridge?: string;
  /** MTU of the default bridge network (Docker's --mtu) */
  mtu?: number;
  /** pools for automatic subnet choice (Docker's default-address-pools) */
  defaultAddressPools?: DefaultPool[];
  /** firewall backend; default nftables */
  firewall?: FirewallBackendName;
  /** Docker's --iptables: false means no firewall rules at all (firewall "none") */
  iptables?: boolean;
  /** inter-container communication on the default bridge (Docker's --icc); default true */
  icc?: boolean;
  /** turn on IPv4 forwarding in the host netns (Docker's --ip-forward); default true */
  ipForward?: boolean;
  /**
   * let packets routed from outside reach the subnets of every network directly
   * (Docker's --allow-direct-routing); by default a nat-mode network drops traffic for
   * its subnets that comes in through anything but its bridge, loopback and its
   * trusted_host_interfaces
   */
  allowDirectRouting?: boolean;
  /** default host IP for published ports (Docker's --ip); default 0.0.0.0 */
  ip?: string;
  /** host port range for ephemeral published ports; default: the host's ip_local_port_range */
  portRange?: [number, number];
  /**
   * reconcile store and kernel when the host is set up, on the first operation
   * that changes something (default true; `cnm system reconcile` turns it off to
   * report what it does itself). `'when-needed'` (the `cnm` command's) reconciles
   * only when something asks for it: the host's first set-up, a kernel booted or a
   * host netns made again since the last reconcile, or an operation a dead process
   * left half-done; drift made by hand waits for `cnm system reconcile` or a daemon.
   */
  reconcileOnOpen?: boolean | 'when-needed';
  /** where remote network driver plugins are found (<dir>/<name>.sock, .spec, .json); default /run/docker/plugins */
  pluginDir?: string;
  /**
   * time limit of one call to a remote driver or IPAM plugin, in ms (default
   * 10 000): a plugin that hangs, or answers a byte at a time, fails the
   * operation with ERR_PLUGIN then
   */
  pluginTimeoutMs?: number;
  /**
   * the cluster store: `etcd://HOST:PORT[,HOST:PORT…]` (Docker's --cluster-store).
   * With it, global-scope networks (the overlay driver) are shared by every host
   * of the cluster. A host's endpoints on them stay visible to the others while a
   * controller runs on it (it keeps the host's lease alive): the daemon, or a
   * long-lived process embedding cnm.
   */
  clusterStore?: string;
  /** this host's underlay address, the VXLAN tunnels' endpoint (Docker's --cluster-advertise); required with clusterStore */
  clusterAdvertise?: string;
  /** the cluster's key prefix in etcd is `cnm/<name>/`; default "default" */
  clusterName?: string;
  /** PEM files for TLS to etcd */
  clusterTls?: { ca?: string; cert?: string; key?: string };
  /** seconds a dead host's endpoints stay visible to the others (its lease's TTL); default 10 */
  clusterLeaseTtl?: number;
  /**
   * Use this lease (held alive by another process of this host: the CLI's cluster
   * agent) instead of granting one. @internal
   */
  clusterLeaseId?: string;
  /**
   * Called once etcd answered, for the lease to use (the CLI starts its cluster
   * agent then); undefined: grant one. @internal
   */
  clusterLease?: () => Promise<string | undefined>;
  /**
   * Called after a change to names when no process serves this host's DNS (the
   * CLI starts its background resolver then). @internal
   */
  dnsProcess?: () => Promise<unknown>;
}

/** One IPAM pool as given to network create. */
export interface IpamPoolRequest {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  auxAddresses?: Record<string, string>;
}

/** What `docker network create` carries. */
export interface NetworkCreateOptions {
  name: string;
  driver?: string;
  /** one entry per subnet; omit to choose a subnet from the default pools */
  ipam?: IpamPoolRequest[];
  internal?: boolean;
  attachable?: boolean;
  options?: Record<string, string>;
  labels?: Record<string, string>;
  /** shorthand for the com.docker.network.driver.mtu option */
  mtu?: number;
  /** give the network IPv6 too; a /64 is chosen when no IPv6 subnet is given */
  enableIPv6?: boolean;
  /** false: an IPv6-only network (needs IPv6: `enableIPv6` or an IPv6 subnet); default true */
  enableIPv4?: boolean;
  /** an IPAM driver plugin by name (Docker's --ipam-driver); default: the default IPAM */
  ipamDriver?: string;
  /** options for the IPAM driver (Docker's --ipam-opt) */
  ipamOptions?: Record<string, string>;
}

/** Options of {@link NetworkController.connect}. */
export interface ConnectOptions {
  /** static IPv4 address */
  ip?: string;
  /** static IPv6 address */
  ip6?: string;
  aliases?: string[];
  /** ports to publish on this endpoint (bridge networks) */
  ports?: PortBinding[];
  /** legacy links "NAME[:ALIAS]" to sandboxes on this network (Docker's --link) */
  links?: string[];
  /** its MAC address on this network (Docker's --mac-address / EndpointConfig.MacAddress) */
  mac?: string;
  /** link-local addresses added to its interface (Docker's --link-local-ip) */
  linkLocalIps?: string[];
  /** driver options of the endpoint (Docker's EndpointConfig.DriverOpts): kept and shown */
  driverOpts?: Record<string, string>;
}

/** Options of {@link NetworkController.createSandbox}. */
export interface SandboxCreateOptions {
  name: string;
  /** a network name or id, `host`, `none` or `container:<sandbox>`; default `bridge` */
  net?: string;
  ip?: string;
  ip6?: string;
  aliases?: string[];
  /** ports to publish (Docker's -p), on the sandbox's network */
  ports?: PortBinding[];
  /** upstream DNS servers for names not of its networks (Docker's --dns) */
  dns?: string[];
  /** search domains of its resolv.conf (Docker's --dns-search; "." for none) */
  dnsSearch?: string[];
  /** resolv.conf options (Docker's --dns-option), e.g. "ndots:2" */
  dnsOptions?: string[];
  /** extra /etc/hosts entries "NAME:IP" (Docker's --add-host) */
  extraHosts?: string[];
  /** its host name, in its hosts and hostname files (default: its name) */
  hostname?: string;
  /** legacy links "NAME[:ALIAS]" to sandboxes on its network (Docker's --link) */
  links?: string[];
  /** ports it exposes without publishing them, "PORT[-END][/PROTO]" (Docker's --expose) */
  expose?: string[];
  /** its MAC address on its network (Docker's --mac-address) */
  mac?: string;
  /**
   * a network namespace the caller already has (a container runtime's), e.g.
   * /proc/PID/ns/net or /run/netns/X: the sandbox is that namespace (named
   * /run/netns/NAME while it exists); removal takes cnm's links out of it and
   * leaves the namespace to its owner
   */
  netnsPath?: string;
  /** link-local addresses on its interface (Docker's --link-local-ip) */
  linkLocalIps?: string[];
}
