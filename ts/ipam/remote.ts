/**
 * A remote IPAM driver: an IPAM plugin reached over Docker's plugin protocol
 * (libnetwork's ipams/remote). Pools are requested at network create, the gateway
 * and every endpoint address with RequestAddress; everything requested is released
 * again. Only IPv4 pools are requested (V6: false).
 */
import { CnmError, invalid } from '../errors.js';
import { contains, formatIp, parseCidr, parseIp, parseSubnet } from '../net/ip.js';
import type { AddressSpacesResponse, RequestAddressResponse, RequestPoolResponse } from '../plugin/api.js';
import { PluginOptions } from '../plugin/api.js';
import type { PluginClient } from '../plugin/client.js';
import type { NetworkRecord } from '../types.js';
import { Pool, type PoolConfig } from './pool.js';

/** The option libnetwork sets on the gateway's RequestAddress. */
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';

/** One pool request of network create. */
export interface RemotePoolRequest {
  subnet?: string;
  gateway?: string;
  ipRange?: string;
}

export class RemoteIpam {
  constructor(
    readonly name: string,
    private readonly client: PluginClient,
  ) {}

  private fail(method: string, message: string): CnmError {
    return new CnmError('ERR_PLUGIN', `plugin ${this.name}: ${method}: ${message}`, { value: this.name });
  }

  /**
   * Request one pool per request (one with Pool "" when none is given) and each
   * pool's gateway. Returns the pool configs with their pool ids. When anything
   * fails, everything requested so far is released.
   */
  async requestPools(reqs: RemotePoolRequest[], options: Record<string, string>): Promise<PoolConfig[]> {
    const spaces = await this.client.call<AddressSpacesResponse>('IpamDriver.GetDefaultAddressSpaces', {});
    const space = typeof spaces.LocalDefaultAddressSpace === 'string' ? spaces.LocalDefaultAddressSpace : '';
    const out: PoolConfig[] = [];
    try {
      for (const req of reqs.length > 0 ? reqs : [{}]) {
        const r = await this.client.call<RequestPoolResponse>('IpamDriver.RequestPool', {
          AddressSpace: space,
          Pool: req.subnet ?? '',
          SubPool: req.ipRange ?? '',
          Options: options,
          V6: false,
        });
        if (typeof r.PoolID !== 'string' || r.PoolID === '' || typeof r.Pool !== 'string') {
          throw this.fail('IpamDriver.RequestPool', 'answer has no "PoolID" or "Pool"');
        }
        const entry: PoolConfig = { subnet: r.Pool, poolId: r.PoolID };
        out.push(entry);
        let subnet;
        try {
          subnet = parseSubnet(r.Pool);
        } catch (e) {
          throw this.fail('IpamDriver.RequestPool', `invalid pool ${JSON.stringify(r.Pool)}: ${(e as Error).message}`);
        }
        if (subnet.family !== 4) throw this.fail('IpamDriver.RequestPool', `pool ${r.Pool} is not an IPv4 subnet`);
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
        // Pool checks that the gateway and range are inside the subnet
        let cfg: PoolConfig;
        try {
          cfg = new Pool({ subnet: r.Pool, gateway, ipRange: req.ipRange }).config;
        } catch (e) {
          throw this.fail('IpamDriver.RequestPool', (e as Error).message);
        }
        Object.assign(entry, cfg);
      }
    } catch (e) {
      await this.releasePools(out).catch(() => undefined);
      throw e;
    }
    return out;
  }

  /** Release the gateways we requested and the pools; every step is tried, the first error thrown. */
  async releasePools(config: PoolConfig[]): Promise<void> {
    let first: unknown;
    for (const c of config) {
      if (!c.poolId) continue;
      if (c.gatewayRequested && c.gateway) {
        await this.client.call('IpamDriver.ReleaseAddress', { PoolID: c.poolId, Address: c.gateway }).catch((e: unknown) => (first ??= e));
      }
      await this.client.call('IpamDriver.ReleasePool', { PoolID: c.poolId }).catch((e: unknown) => (first ??= e));
    }
    if (first !== undefined) throw first;
  }

  /**
   * An endpoint address: `staticIp` or any free one. Returns "addr/prefix" with the
   * prefix of the network's pool it is in.
   */
  async requestAddress(net: NetworkRecord, staticIp?: string): Promise<string> {
    if (staticIp !== undefined) {
      const ip = parseIp(staticIp, 'IP address');
      if (ip.family !== 4) throw invalid(`address ${staticIp} is not an IPv4 address`, staticIp);
    }
    const pools = net.ipam.config.filter((c) => c.poolId);
    const pool = staticIp === undefined ? pools[0] : pools.find((c) => contains(parseSubnet(c.subnet), parseIp(staticIp)));
    if (!pool) {
      throw invalid(`address ${staticIp ?? ''} is not inside the network's subnets (${pools.map((c) => c.subnet).join(', ') || 'none'})`, staticIp);
    }
    const a = await this.client.call<RequestAddressResponse>('IpamDriver.RequestAddress', { PoolID: pool.poolId, Address: staticIp ?? '', Options: {} });
    const ip = this.addressOf('IpamDriver.RequestAddress', a);
    const home = pools.find((c) => contains(parseSubnet(c.subnet), parseIp(ip)));
    if (!home) {
      await this.releaseAddress(net, ip).catch(() => undefined);
      throw this.fail('IpamDriver.RequestAddress', `address ${ip} is not inside the network's pools`);
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

/** Whether a network's addresses come from a remote IPAM driver (not the default IPAM). */
export function usesRemoteIpam(net: NetworkRecord): boolean {
  return net.ipam.driver !== 'default' && net.ipam.driver !== '';
}
