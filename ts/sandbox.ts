/** A sandbox (a container, as far as networking goes), its inspect shape, and what one does with it. */
import type { NetworkController } from './controller.js';
import type { Network } from './network.js';
import type { ConnectOptions } from './options.js';
import { keys } from './records.js';
import { Endpoint } from './endpoint.js';
import { type PortMappingRecord, dockerPorts } from './ports.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';
import { hasDns } from './dns/names.js';
import { inspectLinks, linkEnv } from './ops/links.js';
import { natural } from './compare.js';

/** Per-network settings, as in Docker's NetworkSettings.Networks. */
export interface SandboxNetwork {
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  MacAddress: string;
  Aliases: string[] | null;
  /** what was asked for: static addresses and link-local ones (Docker's EndpointSettings.IPAMConfig) */
  IPAMConfig: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
  /** legacy links asked for on this network, "NAME[:ALIAS]" */
  Links: string[] | null;
  DriverOpts: Record<string, string> | null;
  /** the names it answers to on this network's DNS (API 1.44) */
  DNSNames: string[] | null;
  /** the interface name inside the sandbox (cnm addition) */
  InterfaceName: string;
}

export interface SandboxInspect {
  Id: string;
  Name: string;
  Created: string;
  /** path of the netns, usable with nsenter --net=… */
  SandboxKey: string;
  NetworkMode: string;
  Networks: Record<string, SandboxNetwork>;
  /** published ports, Docker's NetworkSettings.Ports shape */
  Ports: Record<string, Array<{ HostIp: string; HostPort: string }>>;
  /** its host name (its hosts and hostname files) */
  Hostname: string;
  /** Docker's HostConfig name-resolution fields */
  Dns: string[];
  DnsSearch: string[];
  DnsOptions: string[];
  /** "NAME:IP" entries of its hosts file */
  ExtraHosts: string[] | null;
  /** legacy links, Docker's HostConfig.Links: "/linked:/linking/alias" */
  Links: string[] | null;
  /** ports exposed without publishing ("80/tcp": {}) */
  ExposedPorts: Record<string, Record<string, never>> | null;
}

/** Docker's EndpointSettings.IPAMConfig: the static addresses and link-local ones asked for. */
function ipamConfigOf(ep: EndpointRecord): SandboxNetwork['IPAMConfig'] {
  const c: NonNullable<SandboxNetwork['IPAMConfig']> = {};
  if (ep.staticIp && ep.ipv4) c.IPv4Address = ep.ipv4.split('/')[0]!;
  if (ep.staticIp6 && ep.ipv6) c.IPv6Address = ep.ipv6.split('/')[0]!;
  if (ep.linkLocal?.length) c.LinkLocalIPs = ep.linkLocal.map((a) => a.split('/')[0]!);
  return Object.keys(c).length ? c : null;
}

export class Sandbox {
  /** @internal */
  constructor(
    private readonly ctl: NetworkController,
    readonly record: SandboxRecord,
  ) {}

  get id(): string {
    return this.record.id;
  }
  get name(): string {
    return this.record.name;
  }
  /** name of the netns under /run/netns */
  get netns(): string {
    return this.record.netns;
  }

  /** the sandbox's endpoints, in interface order (eth0, eth1, …) */
  endpoints(): Endpoint[] {
    return this.ctl
      .sandboxEndpoints(this.record.id)
      .sort((a, b) => natural(a.ifname, b.ifname))
      .map((r) => new Endpoint(this.ctl, r));
  }

  /** Connect this sandbox to a network (by name, id or object). */
  connect(network: string | Network, opts: ConnectOptions = {}): Promise<Endpoint> {
    return this.ctl.connect(typeof network === 'string' ? network : network.id, this.id, opts);
  }

  /** Disconnect this sandbox from a network. */
  disconnect(network: string | Network): Promise<void> {
    return this.ctl.disconnect(typeof network === 'string' ? network : network.id, this.id);
  }

  /** Remove this sandbox: its endpoints, their addresses and its netns. */
  remove(): Promise<void> {
    return this.ctl.removeSandbox(this.id);
  }

  /** Docker's link environment variables (ALIAS_PORT_80_TCP_ADDR…) for a command run in it. */
  linkEnvironment(): Record<string, string> {
    return linkEnv(this.ctl.ctx, this.record);
  }

  inspect(): SandboxInspect {
    const r = this.record;
    const networks: Record<string, SandboxNetwork> = {};
    const ports: PortMappingRecord[] = [];
    let mode: string = r.mode;
    for (const { record: ep } of this.endpoints()) {
      const net = this.ctl.store.get<NetworkRecord>(keys.net(ep.networkId));
      if (!net) continue;
      const [ip, len] = ep.ipv4 ? ep.ipv4.split('/') : ['', '0'];
      const [ip6, len6] = ep.ipv6 ? ep.ipv6.split('/') : ['', '0'];
      networks[net.name] = {
        NetworkID: net.id,
        EndpointID: ep.id,
        Gateway: ep.gateway,
        IPAddress: ip!,
        IPPrefixLen: Number(len),
        IPv6Gateway: ep.ipv6 ? (ep.gateway6 ?? '') : '',
        GlobalIPv6Address: ip6!,
        GlobalIPv6PrefixLen: Number(len6),
        MacAddress: ep.mac,
        Aliases: ep.aliases.length ? ep.aliases : null,
        IPAMConfig: ipamConfigOf(ep),
        Links: ep.links?.length ? ep.links : null,
        DriverOpts: ep.driverOpts ?? null,
        DNSNames: hasDns(net) ? [...new Set([r.name, ...ep.aliases, r.id.slice(0, 12)])] : null,
        InterfaceName: ep.ifname,
      };
      if (mode === 'network') mode = net.name === 'bridge' ? 'default' : net.name;
      ports.push(...(ep.ports ?? []));
    }
    if (r.mode === 'container') {
      const other = this.ctl.store.get<SandboxRecord>(keys.sb(r.sharedWith ?? ''));
      mode = `container:${other?.name ?? r.sharedWith}`;
    }
    return {
      Id: r.id,
      Name: r.name,
      Created: r.created,
      SandboxKey: `/run/netns/${r.netns}`,
      NetworkMode: mode,
      Networks: networks,
      Ports: dockerPorts(ports),
      Hostname: r.dns?.hostname ?? r.name,
      Dns: r.dns?.dns ?? [],
      DnsSearch: r.dns?.dnsSearch ?? [],
      DnsOptions: r.dns?.dnsOptions ?? [],
      ExtraHosts: r.dns?.extraHosts?.map(([n, ip]) => `${n}:${ip}`) ?? null,
      Links: inspectLinks(this.ctl.ctx, r),
      ExposedPorts: r.expose?.length ? Object.fromEntries(r.expose.map((p) => [`${p.port}/${p.proto}`, {}])) : null,
    };
  }
}
