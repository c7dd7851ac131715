/**
 * A remote IPAM driver: an IPAM plugin reached over Docker's plugin protocol
 * (libnetwork's ipams/remote). Pools are requested at network create, the gateway
 * and every endpoint address with RequestAddress; everything requested is released
 * again. As libnetwork does: one IPv4 pool per IPv4 subnet (one with Pool "" when
 * none is given), one IPv6 pool per IPv6 subnet (one with Pool "" when IPv6 is on and
 * none is given); auxiliary addresses are requested after the gateway.
 */
import { CnmError, invalid } from '../errors.js';
import { log } from '../log.js';
import { contains, formatIp, parseCidr, parseIp, parseSubnet } from '../net/ip.js';
import type { AddressSpacesResponse, RequestAddressResponse, RequestPoolResponse } from '../plugin/api.js';
import { PluginOptions } from '../plugin/api.js';
import type { PluginClient } from '../plugin/client.js';
import type { NetworkRecord } from '../types.js';
import type { AddressLease, Ipam, PoolRequest, PoolsRequest } from './ipam-api.js';
import { Pool, type PoolConfig } from './pool.js';

/** The option libnetwork sets on the gateway's RequestAddress. */
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';

export class RemoteIpam implements Ipam {
  constructor(
    readonly name: string,
    private readonly client: PluginClient,
  ) {}

  private fail(method: string, message: string): CnmError {
    return new CnmError('ERR_PLUGIN', `plugin ${this.name}: ${method}: ${message}`, { value: this.name });
  }

  /**
   * Request the pools (IPv4 first, then IPv6), each pool's gateway and auxiliary
   * addresses. Returns the pool configs with their pool ids. When anything fails,
   * everything requested so far is released.
   */
  async requestPools({ network, requested }: PoolsRequest): Promise<PoolConfig[]> {
    // the request as given: the plugin chooses what the user left out
    const reqs = requested.filter((r) => r.subnet);
    const options = network.ipam.options;
    const enableIPv6 = network.enableIPv6;
    const spaces = await this.client.call<AddressSpacesResponse>('IpamDriver.GetDefaultAddressSpaces', {});
    const space = typeof spaces.LocalDefaultAddressSpace === 'string' ? spaces.LocalDefaultAddressSpace : '';
    const v4 = reqs.filter((r) => !r.subnet?.includes(':'));
    const v6 = reqs.filter((r) => r.subnet?.includes(':'));
    const plan: Array<[PoolRequest, boolean]> = [
      ...(v4.length > 0 ? v4 : network.enableIPv4 !== false ? [{}] : []).map((r): [PoolRequest, boolean] => [r, false]),
      ...(v6.length > 0 ? v6 : enableIPv6 ? [{}] : []).map((r): [PoolRequest, boolean] => [r, true]),
    ];
    const out: PoolConfig[] = [];
    try {
      for (const [req, isV6] of plan) await this.requestPool(space, req, options, isV6, out);
    } catch (e) {
      await this.releasePools(network, out).catch((u: unknown) => log.warn('giving back the pools of a failed request failed', { ipam: this.name, err: u }));
      throw e;
    }
    return out;
  }

  /**
   * One pool with its gateway and auxiliary addresses, added to `out` as soon as the
   * pool is given; each address is recorded once requested, so that a failure part
   * way releases exactly what was taken.
   */
  private async requestPool(space: string, req: PoolRequest, options: Record<string, string>, isV6: boolean, out: PoolConfig[]): Promise<void> {
    const r = await this.client.call<RequestPoolResponse>('IpamDriver.RequestPool', {
      AddressSpace: space,
      Pool: req.subnet ?? '',
      SubPool: req.ipRange ?? '',
      Options: options,
      V6: isV6,
    });
    if (typeof r.PoolID !== 'string' || r.PoolID === '' || typeof r.Pool !== 'string') {
      throw this.fail('IpamDriver.RequestPool', 'answer has no "PoolID" or "Pool"');
    }
    const entry: PoolConfig = { subnet: r.Pool, poolId: r.PoolID };
    if (req.subnet && !req.gateway) entry.gatewayAuto = true;
    out.push(entry);
    let subnet;
    try {
      subnet = parseSubnet(r.Pool);
    } catch (e) {
      throw this.fail('IpamDriver.RequestPool', `invalid pool ${JSON.stringify(r.Pool)}: ${(e as Error).message}`);
    }
    if (subnet.family !== (isV6 ? 6 : 4)) throw this.fail('IpamDriver.RequestPool', `pool ${r.Pool} is not an IPv${isV6 ? 6 : 4} subnet`);
    // the gateway: the user's, or one the pool's data names, or any the plugin gives
    const fromData = r.Data?.[PluginOptions.gateway];
    let gateway: string;
    if (req.gateway === undefined && typeof fromData === 'string' && fromData !== '') {
      gateway = fromData.split('/')[0]!;
    } else {
      const a = await this.client.call<RequestAddressResponse>('IpamDriver.RequestAddress', {
        PoolID: r.PoolID,
        Address: req.gateway ?? '',
        Options: { [REQUEST_ADDRESS_TYPE]: PluginOptions.gateway },
      });
      gateway = this.addressOf('IpamDriver.RequestAddress', a);
      entry.gateway = gateway;
      entry.gatewayRequested = true;
    }
    // Pool checks that the gateway, range and auxiliary addresses are inside the subnet
    let cfg: PoolConfig;
    try {
      cfg = new Pool({ subnet: r.Pool, gateway, ipRange: req.ipRange, auxAddresses: req.auxAddresses }).config;
    } catch (e) {
      throw this.fail('IpamDriver.RequestPool', (e as Error).message);
    }
    // auxiliary addresses are held by the plugin so that it never hands them out
    const aux: Record<string, string> = {};
    for (const [name, addr] of Object.entries(cfg.auxAddresses ?? {})) {
      const a = await this.client.call<RequestAddressResponse>('IpamDriver.RequestAddress', { PoolID: r.PoolID, Address: addr, Options: {} });
      aux[name] = this.addressOf('IpamDriver.RequestAddress', a);
      entry.auxAddresses = { ...aux };
    }
    Object.assign(entry, cfg);
  }

  /** Release the gateways and auxiliary addresses we requested and the pools; every step is tried, the first error thrown. */
  async releasePools(net: NetworkRecord, pools?: PoolConfig[]): Promise<void> {
    let first: unknown;
    for (const c of pools ?? net.ipam.config) {
      if (!c.poolId) continue;
      if (c.gatewayRequested && c.gateway) {
        await this.client.call('IpamDriver.ReleaseAddress', { PoolID: c.poolId, Address: c.gateway }).catch((e: unknown) => (first ??= e));
      }
      for (const addr of Object.values(c.auxAddresses ?? {})) {
        await this.client.call('IpamDriver.ReleaseAddress', { PoolID: c.poolId, Address: addr }).catch((e: unknown) => (first ??= e));
      }
      await this.client.call('IpamDriver.ReleasePool', { PoolID: c.poolId }).catch((e: unknown) => (first ??= e));
    }
    if (first !== undefined) throw first;
  }

  /**
   * An endpoint address of one family: `staticIp` or any free one, taken from the
   * plugin now; the lease hands it over ("addr/prefix", with the prefix of the
   * network's pool it is in) and gives it back if it is never used.
   */
  async requestAddress(net: NetworkRecord, family: 4 | 6, staticIp?: string): Promise<AddressLease> {
    const address = await this.takeAddress(net, family, staticIp);
    return { bind: () => address, release: () => this.releaseAddress(net, address) };
  }

  private async takeAddress(net: NetworkRecord, family: 4 | 6, staticIp?: string): Promise<string> {
    if (!net.ipam.config.some((c) => c.poolId && parseSubnet(c.subnet).family === family)) {
      throw invalid(`network ${net.name} has no IPv${family} subnet${family === 6 ? ': create it with --ipv6 to use --ip6' : ''}`, staticIp);
    }
    if (staticIp !== undefined) {
      const ip = parseIp(staticIp, 'IP address');
      if (ip.family !== family) throw invalid(`address ${staticIp} is not an IPv${family} address`, staticIp);
    }
    const pools = net.ipam.config.filter((c) => c.poolId && parseSubnet(c.subnet).family === family);
    const pool = staticIp === undefined ? pools[0] : pools.find((c) => contains(parseSubnet(c.subnet), parseIp(staticIp)));
    if (!pool) {
      throw invalid(`address ${staticIp ?? ''} is not inside the network's subnets (${pools.map((c) => c.subnet).join(', ') || 'none'})`, staticIp);
    }
    const a = await this.client.call<RequestAddressResponse>('IpamDriver.RequestAddress', { PoolID: pool.poolId, Address: staticIp ?? '', Options: {} });
    const ip = this.addressOf('IpamDriver.RequestAddress', a);
    const home = pools.find((c) => contains(parseSubnet(c.subnet), parseIp(ip)));
    if (!home) {
      await this.releaseAddress(net, ip).catch((u: unknown) => log.warn('giving back an address outside the pools failed', { ipam: this.name, address: ip, err: u }));
      throw this.fail('IpamDriver.RequestAddress', `address ${ip} is not inside the network's IPv${family} pools`);
    }
    return `${ip}/${home.subnet.split('/')[1]}`;
  }

  /** Release an endpoint address ("addr/prefix" or "addr"). */
  async releaseAddress(net: NetworkRecord, address: string): Promise<void> {
    if (!address) return;
    const ip = address.split('/')[0]!;
    const pool = net.ipam.config.find((c) => c.poolId && contains(parseSubnet(c.subnet), parseIp(ip)));
    if (!pool) return;
    await this.client.call('IpamDriver.ReleaseAddress', { PoolID: pool.poolId, Address: ip });
  }

  /** The plugin keeps its own books: nothing of it lives in cnm's store. */
  async reconcile(): Promise<string[]> {
    return [];
  }

  /** The plain IP of a RequestAddress answer (CIDR form, or a bare address). */
  private addressOf(method: string, a: RequestAddressResponse): string {
    if (typeof a.Address !== 'string' || a.Address === '') throw this.fail(method, 'answer has no "Address"');
    try {
      const ip = a.Address.includes('/') ? a.Address.split('/')[0]! : a.Address;
      if (a.Address.includes('/')) parseCidr(a.Address, 'address');
      return formatIp(parseIp(ip, 'address'));
    } catch (e) {
      throw this.fail(method, `invalid address ${JSON.stringify(a.Address)}: ${(e as Error).message}`);
    }
  }
}


