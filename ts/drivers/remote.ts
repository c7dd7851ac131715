/**
 * The `remote` driver: a network driver plugin reached over Docker's plugin
 * protocol (libnetwork's drivers/remote). Addresses come from cnm's default IPAM,
 * as libnetwork does for remote network drivers with the default IPAM; the plugin
 * makes a link in the host netns at Join, which is then moved into the sandbox,
 * renamed DstPrefix + index, addressed, brought up and given its routes.
 */
import { interfaceAddresses } from './bridge-options.js';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import { native } from '../native.js';
import type { StaticRoute as NativeRoute } from '../native-api.js';
import { parseIp } from '../net/ip.js';
import {
  type CapabilitiesResponse,
  type CreateEndpointResponse,
  type IPAMData,
  type JoinResponse,
  type PortBinding,
  PluginOptions,
} from '../plugin/api.js';
import type { PluginClient } from '../plugin/client.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { checkIfname } from '../validate.js';
import type { Driver, DriverContext, RepairResult } from './driver.js';

const PROTO: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

function ipamData(net: NetworkRecord, family: 4 | 6): IPAMData[] {
  return net.ipam.config
    .filter((c) => c.subnet.includes(':') === (family === 6))
    .map((c) => {
      const prefix = c.subnet.split('/')[1]!;
      const d: IPAMData = { AddressSpace: 'LocalDefault', Pool: c.subnet };
      if (c.gateway) d.Gateway = `${c.gateway}/${prefix}`;
      if (c.auxAddresses && Object.keys(c.auxAddresses).length > 0) {
        d.AuxAddresses = Object.fromEntries(Object.entries(c.auxAddresses).map(([k, v]) => [k, `${v}/${prefix}`]));
      }
      return d;
    });
}

/** A network driver served by a plugin. */
export class RemoteDriver implements Driver {
  readonly usesIpam = true;
  readonly ownNetns = true;

  constructor(
    readonly name: string,
    private readonly client: PluginClient,
    private readonly ctx: DriverContext,
    readonly capabilities: CapabilitiesResponse,
  ) {}

  private fail(method: string, message: string): CnmError {
    return new CnmError('ERR_PLUGIN', `plugin ${this.name}: ${method}: ${message}`, { value: this.name });
  }

  /** Options are the plugin's business: they go to it as they are. */
  prepareNetwork(): void {}

  async createNetwork(net: NetworkRecord): Promise<void> {
    const options: Record<string, unknown> = {
      [PluginOptions.generic]: { ...net.options },
      [PluginOptions.enableIPv6]: net.enableIPv6,
    };
    if (net.internal) options[PluginOptions.internal] = true;
    try {
      await this.client.call('NetworkDriver.CreateNetwork', {
        NetworkID: net.id,
        Options: options,
        IPv4Data: ipamData(net, 4),
        IPv6Data: ipamData(net, 6),
      });
    } catch (e) {
      // an answer that never came whole may hide a network the plugin made: it is
      // told to delete it (a plugin that refused, or is gone, says so: logged)
      await this.deleteNetwork(net).catch((err: unknown) => log.info('telling a plugin to delete a network it may not have made failed', { network: net.name, err }));
      throw e;
    }
  }

  async deleteNetwork(net: NetworkRecord): Promise<void> {
    await this.client.call('NetworkDriver.DeleteNetwork', { NetworkID: net.id });
  }

  /** The plugin may have made the network before its creator died: it is told to delete it. */
  async rollbackNetwork(net: NetworkRecord): Promise<void> {
    await this.deleteNetwork(net);
  }

  /** A plugin keeps its own kernel state; reconcile tells it of vanished sandboxes through leave. */
  async repair(): Promise<RepairResult> {
    return { changed: [], lost: [] };
  }

  /** No link of our own: the plugin names one at Join. */
  createEndpoint(_net: NetworkRecord, ep: EndpointRecord): void {
    ep.hostIfname = '';
  }

  async deleteEndpoint(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    await this.client.call('NetworkDriver.DeleteEndpoint', { NetworkID: net.id, EndpointID: ep.id });
  }

  /**
   * CreateEndpoint (the Driver's createEndpoint runs inside a store transaction
   * and cannot wait for a plugin, so the call is made here), then Join, then the
   * plugin's link is adopted into the sandbox. Undone on failure.
   */
  async join(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<{ mac?: string }> {
    const ids = { NetworkID: net.id, EndpointID: ep.id };
    const created = await this.client.call<CreateEndpointResponse>('NetworkDriver.CreateEndpoint', {
      ...ids,
      Interface: { Address: ep.ipv4, AddressIPv6: ep.ipv6, MacAddress: ep.mac },
      // the endpoint's driver options (Docker's EndpointConfig.DriverOpts) are the plugin's business
      Options: { ...ep.driverOpts },
    });
    let joined = false;
    try {
      const iface = created.Interface ?? {};
      for (const [field, ours] of [
        ['Address', ep.ipv4],
        ['AddressIPv6', ep.ipv6],
      ] as const) {
        const theirs = iface[field];
        if (theirs && ours && theirs !== ours) throw this.fail('CreateEndpoint', `${field} ${theirs} differs from the allocated ${ours}`);
        if (theirs && !ours) throw this.fail('CreateEndpoint', `${field} ${theirs} given, but cnm's IPAM allocates addresses`);
      }
      if (iface.MacAddress && !ep.mac) ep.mac = iface.MacAddress;
      const r = await this.client.call<JoinResponse>('NetworkDriver.Join', { ...ids, SandboxKey: `/run/netns/${sb.netns}`, Options: {} });
      joined = true;
      const names = r.InterfaceName;
      if (!names || typeof names.SrcName !== 'string' || names.SrcName === '') throw this.fail('Join', 'no InterfaceName.SrcName in the answer');
      checkIfname(names.SrcName, 'plugin interface SrcName');
      const newName = await this.sandboxName(ep, sb, names.DstPrefix, names.DstName);
      const gateway = r.Gateway ? parseIp(r.Gateway, 'plugin Gateway') : undefined;
      const gateway6 = r.GatewayIPv6 ? parseIp(r.GatewayIPv6, 'plugin GatewayIPv6') : undefined;
      if (gateway && gateway.family !== 4) throw this.fail('Join', `Gateway ${r.Gateway} is not IPv4`);
      if (gateway6 && gateway6.family !== 6) throw this.fail('Join', `GatewayIPv6 ${r.GatewayIPv6} is not IPv6`);
      const routes: NativeRoute[] = (r.StaticRoutes ?? []).map((s) => {
        if (s.RouteType === 0 && !s.NextHop) throw this.fail('Join', `static route to ${s.Destination} has no NextHop`);
        return s.RouteType === 0 ? { dst: s.Destination, gateway: s.NextHop! } : { dst: s.Destination };
      });
      const info = await native.adoptLink({
        hostNetns: this.ctx.hostNetns,
        ifname: names.SrcName,
        sandboxNetns: sb.netns,
        newName,
        mtu: net.mtu ?? null,
        mac: ep.mac || null,
        addresses: interfaceAddresses(ep),
        gateway: ep.defaultGateway && r.Gateway ? r.Gateway : null,
        gateway6: ep.defaultGateway && r.GatewayIPv6 ? r.GatewayIPv6 : null,
        routes,
      });
      // the record follows what the sandbox really has
      ep.ifname = newName;
      ep.gateway = r.Gateway ?? '';
      ep.gateway6 = r.GatewayIPv6 ?? '';
      if (!r.Gateway) ep.defaultGateway = false;
      return { mac: info.mac };
    } catch (e) {
      const undo = (method: string) => (u: unknown) => log.warn(`undoing a failed join: ${method} failed`, { plugin: this.name, endpoint: ep.id, err: u });
      if (joined) await this.client.call('NetworkDriver.Leave', ids).catch(undo('NetworkDriver.Leave'));
      await this.client.call('NetworkDriver.DeleteEndpoint', ids).catch(undo('NetworkDriver.DeleteEndpoint'));
      throw e;
    }
  }

  /** DstName as given, else DstPrefix + the first index free in the sandbox. */
  private async sandboxName(ep: EndpointRecord, sb: SandboxRecord, prefix?: string, exact?: string): Promise<string> {
    if (exact) return checkIfname(exact, 'plugin interface DstName');
    if (!prefix) throw this.fail('Join', 'InterfaceName has neither DstPrefix nor DstName');
    checkIfname(`${prefix}99`, 'plugin interface DstPrefix');
    // the controller chose the first free index of its own prefix; keep it when the prefixes agree
    if (ep.ifname.startsWith(prefix) && /^\d+$/.test(ep.ifname.slice(prefix.length))) return ep.ifname;
    const used = new Set((await native.listLinks(sb.netns)).map((l) => l.name));
    let i = 0;
    while (used.has(`${prefix}${i}`)) i++;
    return `${prefix}${i}`;
  }

  /** The plugin's side of a join cannot be seen from here: such an endpoint is rolled back. */
  async endpointComplete(): Promise<boolean> {
    return false;
  }

  /** Leave, then the link goes from the sandbox (if it is still there), then DeleteEndpoint. */
  async leave(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
    const ids = { NetworkID: net.id, EndpointID: ep.id };
    await this.client.call('NetworkDriver.Leave', ids);
    if (ep.ifname) {
      try {
        await native.deleteLink(sb.netns, ep.ifname);
      } catch (e) {
        // the sandbox went first (sandbox rm): its links went with it
        if (!(e instanceof CnmError && e.code === 'ERR_NETNS_NOT_FOUND')) throw e;
      }
    }
    await this.client.call('NetworkDriver.DeleteEndpoint', ids);
  }

  async programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    const ip = ep.ipv4.split('/')[0] ?? '';
    const portmap: PortBinding[] = (ep.ports ?? []).map((p) => ({
      Proto: PROTO[p.proto] ?? 6,
      IP: ip,
      Port: p.containerPort,
      HostIP: p.hostIp,
      HostPort: p.hostPort,
      HostPortEnd: p.hostPort,
    }));
    await this.client.call(
      'NetworkDriver.ProgramExternalConnectivity',
      {
        NetworkID: net.id,
        EndpointID: ep.id,
        Options: {
          [PluginOptions.portMap]: portmap,
          [PluginOptions.exposedPorts]: (ep.ports ?? []).map((p) => ({ Proto: PROTO[p.proto] ?? 6, Port: p.containerPort })),
        },
      },
      { optional: true },
    );
  }

  async revokeExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    await this.client.call('NetworkDriver.RevokeExternalConnectivity', { NetworkID: net.id, EndpointID: ep.id }, { optional: true });
  }
}
