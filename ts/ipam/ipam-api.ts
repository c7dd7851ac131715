/**
 * The IPAM interface, libnetwork's ipamapi.Ipam made asynchronous: request and
 * release pools, request and release addresses. The built-in allocator
 * (default-ipam.ts) and IPAM plugins (remote.ts) implement it alike, so that no
 * caller asks which one it has.
 *
 * One addition to libnetwork's shape: an address request returns a lease that
 * the caller binds inside the store transaction recording its endpoint. The
 * built-in allocator keeps its state in cnm's store, so its allocation commits
 * (or rolls back) with the endpoint in one transaction; a plugin's address was
 * taken at request time and the bind only hands it over.
 */
import type { Cidr } from '../net/ip.js';
import type { StoreReader, StoreTxn } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import type { PoolConfig } from './pool.js';

/** One pool as the user asked for it (Docker's IPAM config); all but subnet optional. */
export interface PoolRequest {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  auxAddresses?: Record<string, string>;
}

/** What a new network asks of its IPAM. */
export interface PoolsRequest {
  /** the network being created (name, id, enableIPv6, IPAM options) */
  network: NetworkRecord;
  /** the pools the user gave, already checked for consistency; may be empty */
  requested: PoolRequest[];
  /** prefixes an automatic choice must avoid (host routes, nameservers, other networks) */
  exclude: () => Promise<Cidr[]>;
}

/** An address requested for an endpoint, not yet recorded with it. */
export interface AddressLease {
  /**
   * Record the address inside the caller's store transaction, for endpoint
   * `endpointId`; returns it as "addr/prefix". A conflict found here (another
   * process took a static address) throws, and the transaction rolls back.
   */
  bind(tx: StoreTxn, endpointId: string): string;
  /**
   * Give the address back when its bind never committed (the operation failed
   * before, or the transaction rolled back). After a committed bind, addresses
   * go back through {@link Ipam.releaseAddress}.
   */
  release(): Promise<void>;
}

export interface Ipam {
  /** "default" or the plugin's name */
  readonly name: string;
  /**
   * The pools of a new network, IPv4 first then IPv6, each with its gateway: the
   * requested ones, and automatic ones where IPv4 (always) or IPv6 (when
   * enabled) has none. Everything taken is given back when this fails.
   */
  requestPools(req: PoolsRequest): Promise<PoolConfig[]>;
  /** Give back a network's pools, their gateways and any address still held on it. */
  releasePools(net: NetworkRecord, pools?: PoolConfig[]): Promise<void>;
  /**
   * An endpoint address of `family`: `address` when given, else any free one.
   * `endpointId` is the endpoint it is for (an IPAM that records it at request
   * time, as the cluster's does, keeps it with the address).
   */
  requestAddress(net: NetworkRecord, family: 4 | 6, address?: string, endpointId?: string): Promise<AddressLease>;
  /** Give back an endpoint address ("addr/prefix" or "addr"); nothing when it is not held. */
  releaseAddress(net: NetworkRecord, address: string): Promise<void>;
  /**
   * The same inside a transaction of the local store, for an IPAM that keeps its
   * allocations there: a removal then gives its addresses back in the commit that
   * drops its records, one disk flush instead of two.
   */
  releaseAddressIn?(tx: StoreTxn, net: NetworkRecord, address: string): void;
  /**
   * Reconcile: give back what this IPAM holds for endpoints that no longer exist
   * (`isLive` reads the store, inside the releasing transaction when there is
   * one). Returns the addresses given back (in a dry run: that would be).
   */
  reconcile(net: NetworkRecord, isLive: (r: StoreReader, endpointId: string) => boolean, dryRun: boolean): Promise<string[]>;
}
