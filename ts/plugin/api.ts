/**
 * The wire format of Docker's plugin protocol for network drivers and IPAM drivers
 * (libnetwork's `remote` driver and `remote` IPAM): JSON over HTTP POST on a unix
 * socket. Field names are exactly libnetwork's; every request is `POST /<Method>`
 * with a JSON body, every answer a JSON object.
 */

/** Content type of requests and answers. */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** Answer to `/Plugin.Activate`: which subsystems the plugin implements. */
export interface ActivateResponse {
  /** e.g. ["NetworkDriver"] or ["NetworkDriver", "IpamDriver"] */
  Implements: string[];
}

// ------------------------------------------------------------ NetworkDriver

/** Network driver error answer: `{"Err": "..."}` (an empty string means no error). */
export interface ErrResponse {
  Err?: string;
}

/** Answer to `/NetworkDriver.GetCapabilities`. */
export interface CapabilitiesResponse {
  /** "local" (this host only) or "global" (cluster-wide, needs a global store) */
  Scope: 'local' | 'global';
  /** reachability of the network's endpoints: "local" or "global" */
  ConnectivityScope?: 'local' | 'global';
}

/** One address pool of a network, as the IPAM gave it (CIDR strings). */
export interface IPAMData {
  /** e.g. "LocalDefault" */
  AddressSpace: string;
  /** the subnet, e.g. "10.210.0.0/24" */
  Pool: string;
  /** the gateway with the pool's prefix length, e.g. "10.210.0.1/24" */
  Gateway?: string;
  /** reserved addresses by name, CIDR with the pool's prefix length */
  AuxAddresses?: Record<string, string>;
}

/**
 * `/NetworkDriver.CreateNetwork`. `Options` carries the driver options under
 * `com.docker.network.generic` (a string map, `docker network create -o k=v`) and
 * flags such as `com.docker.network.enable_ipv6`.
 */
export interface CreateNetworkRequest {
  NetworkID: string;
  Options: Record<string, unknown>;
  IPv4Data: IPAMData[];
  IPv6Data: IPAMData[];
}

/** `/NetworkDriver.DeleteNetwork` and `/NetworkDriver.FreeNetwork`. */
export interface NetworkIdRequest {
  NetworkID: string;
}
export type DeleteNetworkRequest = NetworkIdRequest;
export type FreeNetworkRequest = NetworkIdRequest;

/** `/NetworkDriver.AllocateNetwork` (swarm-scope networks; rarely used on one host). */
export interface AllocateNetworkRequest {
  NetworkID: string;
  Options: Record<string, string>;
  IPv4Data: IPAMData[];
  IPv6Data: IPAMData[];
}

/** Answer to AllocateNetwork: options to hand to CreateNetwork on every node. */
export interface AllocateNetworkResponse {
  Options?: Record<string, string>;
}

/** The interface of an endpoint: CIDR addresses and a MAC ("" when not set). */
export interface EndpointInterface {
  Address?: string;
  AddressIPv6?: string;
  MacAddress?: string;
}

/**
 * `/NetworkDriver.CreateEndpoint`. `Interface` holds what the IPAM allocated; the
 * driver may fill in the fields left empty (typically MacAddress) in its answer,
 * but must not change those already given.
 */
export interface CreateEndpointRequest {
  NetworkID: string;
  EndpointID: string;
  Interface: EndpointInterface;
  Options: Record<string, unknown>;
}

/** Answer to CreateEndpoint: only the fields the driver fills in. */
export interface CreateEndpointResponse {
  Interface?: EndpointInterface | null;
}

/** Requests that name one endpoint: DeleteEndpoint, EndpointOperInfo, Leave, RevokeExternalConnectivity. */
export interface EndpointIdRequest {
  NetworkID: string;
  EndpointID: string;
}
export type DeleteEndpointRequest = EndpointIdRequest;
export type EndpointOperInfoRequest = EndpointIdRequest;
export type LeaveRequest = EndpointIdRequest;
export type RevokeExternalConnectivityRequest = EndpointIdRequest;

/** Answer to EndpointOperInfo: free-form operational data. */
export interface EndpointOperInfoResponse {
  Value: Record<string, unknown>;
}

/** `/NetworkDriver.Join`: put the endpoint into the sandbox at SandboxKey (a netns path). */
export interface JoinRequest {
  NetworkID: string;
  EndpointID: string;
  /** e.g. "/run/netns/mybox" */
  SandboxKey: string;
  Options: Record<string, unknown>;
}

/**
 * The link the driver made in the host netns (SrcName), which the caller moves
 * into the sandbox and renames DstPrefix + index (e.g. eth0, eth1).
 */
export interface InterfaceName {
  SrcName: string;
  DstPrefix?: string;
  /** an exact name instead of a prefix (older plugins) */
  DstName?: string;
}

/** A route to add inside the sandbox. RouteType 0: via NextHop; 1: directly connected. */
export interface StaticRoute {
  Destination: string;
  RouteType: 0 | 1;
  NextHop?: string;
}

/** Answer to Join. */
export interface JoinResponse {
  InterfaceName?: InterfaceName | null;
  /** IPv4 default gateway of the sandbox (no prefix), "" for none */
  Gateway?: string;
  GatewayIPv6?: string;
  StaticRoutes?: StaticRoute[] | null;
  DisableGatewayService?: boolean;
}

/** `/NetworkDriver.ProgramExternalConnectivity`: publish the endpoint's ports. */
export interface ProgramExternalConnectivityRequest {
  NetworkID: string;
  EndpointID: string;
  /** `com.docker.network.portmap`: PortBinding[]; `com.docker.network.endpoint.exposedports` */
  Options: Record<string, unknown>;
}

/** libnetwork's types.PortBinding as found in `com.docker.network.portmap`. */
export interface PortBinding {
  /** IP protocol number: 6 tcp, 17 udp, 132 sctp */
  Proto: number;
  IP: string;
  Port: number;
  HostIP: string;
  HostPort: number;
  HostPortEnd: number;
}

/** `/NetworkDriver.DiscoverNew` and `/NetworkDriver.DiscoverDelete`. */
export interface DiscoveryNotification {
  /** 1: node discovery; 2: datastore config; 3: encryption keys */
  DiscoveryType: number;
  DiscoveryData: unknown;
}

// --------------------------------------------------------------- IpamDriver

/** IPAM error answer: `{"Error": "..."}`. */
export interface IpamErrorResponse {
  Error?: string;
}

/** Answer to `/IpamDriver.GetCapabilities`. */
export interface IpamCapabilitiesResponse {
  RequiresMACAddress?: boolean;
  RequiresRequestReplay?: boolean;
}

/** Answer to `/IpamDriver.GetDefaultAddressSpaces`. */
export interface AddressSpacesResponse {
  LocalDefaultAddressSpace: string;
  GlobalDefaultAddressSpace: string;
}

/** `/IpamDriver.RequestPool`: Pool empty means "choose one". */
export interface RequestPoolRequest {
  AddressSpace: string;
  Pool: string;
  SubPool: string;
  Options: Record<string, string>;
  V6: boolean;
}

/** Answer to RequestPool; Data may carry `com.docker.network.gateway` (CIDR). */
export interface RequestPoolResponse {
  PoolID: string;
  Pool: string;
  Data?: Record<string, string>;
}

/** `/IpamDriver.ReleasePool`. */
export interface ReleasePoolRequest {
  PoolID: string;
}

/** `/IpamDriver.RequestAddress`: Address empty means "any free one". */
export interface RequestAddressRequest {
  PoolID: string;
  Address: string;
  Options: Record<string, string>;
}

/** Answer to RequestAddress: the address in CIDR form. */
export interface RequestAddressResponse {
  Address: string;
  Data?: Record<string, string>;
}

/** `/IpamDriver.ReleaseAddress`. */
export interface ReleaseAddressRequest {
  PoolID: string;
  Address: string;
}

/** Option keys libnetwork puts into network and endpoint options. */
export const PluginOptions = {
  generic: 'com.docker.network.generic',
  enableIPv6: 'com.docker.network.enable_ipv6',
  internal: 'com.docker.network.internal',
  portMap: 'com.docker.network.portmap',
  exposedPorts: 'com.docker.network.endpoint.exposedports',
  gateway: 'com.docker.network.gateway',
} as const;
