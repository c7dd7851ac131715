/**
 * The network driver interface (libnetwork's driverapi). The controller calls these
 * after it has reserved everything in the store; a driver never touches the store.
 * Each method that changes the kernel undoes its own partial work when it fails.
 */
import type { Firewall } from '../firewall.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';

export interface DriverContext {
  /** the netns the controller treats as its host; null = the process's own */
  hostNetns: string | null;
  firewall: Firewall;
  /** turn on forwarding in the host netns for the families networks use */
  ipForward: boolean;
  /** where remote driver plugins are looked for; absent = Docker's dirs (/run/docker/plugins…) */
  pluginDir?: string | null;
}

export interface Driver {
  readonly name: string;
  /** whether endpoints of this driver's networks get addresses from IPAM */
  readonly usesIpam: boolean;
  /** whether sandboxes on this driver's networks have a netns of their own */
  readonly ownNetns: boolean;
  /**
   * Check and normalise driver options into the record (device name, MTU…),
   * without touching the kernel. Throws ERR_INVALID_ARGUMENT.
   */
  prepareNetwork(net: NetworkRecord): void;
  createNetwork(net: NetworkRecord): Promise<void>;
  deleteNetwork(net: NetworkRecord): Promise<void>;
  /** fill in the endpoint's link names and MAC; no kernel work */
  createEndpoint(net: NetworkRecord, ep: EndpointRecord): void;
  deleteEndpoint(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
  join(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<{ mac?: string }>;
  leave(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void>;
  /** publish the endpoint's ports (ep.ports) */
  programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
  /** withdraw the endpoint's published ports */
  revokeExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void>;
}
