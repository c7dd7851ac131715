/** A network as users see it, with Docker's `network inspect` shape, and what one does with it. */
import type { NetworkController } from './controller.js';
import type { Endpoint } from './endpoint.js';
import type { ConnectOptions } from './options.js';
import { isAlive } from './owner.js';
import { dockerPorts } from './ports.js';
import { keys } from './records.js';
import type { Sandbox } from './sandbox.js';
import type { NetworkRecord, SandboxRecord } from './types.js';

/** One entry of `Containers` in Docker's network inspect. */
export interface NetworkContainer {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
  /** published ports of this endpoint, in Docker's port-map shape (cnm addition) */
  Ports?: Record<string, Array<{ HostIp: string; HostPort: string }>>;
}

/** Docker's network inspect JSON. */
export interface NetworkInspect {
  Name: string;
  Id: string;
  Created: string;
  Scope: string;
  Driver: string;
  EnableIPv4: boolean;
  EnableIPv6: boolean;
  IPAM: {
    Driver: string;
    Options: Record<string, string> | null;
    Config: Array<{ Subnet: string; Gateway?: string; IPRange?: string; AuxiliaryAddresses?: Record<string, string> }>;
  };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, NetworkContainer>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** global networks: the hosts with endpoints on it (Docker's overlay inspect) */
  Peers?: Array<{ Name: string; IP: string }>;
}

export class Network {
  /** @internal */
  constructor(
    private readonly ctl: NetworkController,
    /** the stored record; treat as read-only */
    readonly record: NetworkRecord,
  ) {}

  get id(): string {
    return this.record.id;
  }
  get name(): string {
    return this.record.name;
  }
  get driver(): string {
    return this.record.driver;
  }
  /** the bridge device, for bridge networks */
  get bridge(): string | undefined {
    return this.record.bridge;
  }
  /** IPv4 subnets, e.g. ["10.1.0.0/24"] */
  get subnets(): string[] {
    return this.record.ipam.config.map((c) => c.subnet);
  }
  get gateways(): string[] {
    return this.record.ipam.config.map((c) => c.gateway ?? '');
  }

  /** Connect a sandbox (by name, id or object) to this network. */
  connect(sandbox: string | Sandbox, opts: ConnectOptions = {}): Promise<Endpoint> {
    return this.ctl.connect(this.id, typeof sandbox === 'string' ? sandbox : sandbox.id, opts);
  }

  /** Disconnect a sandbox from this network. */
  disconnect(sandbox: string | Sandbox): Promise<void> {
    return this.ctl.disconnect(this.id, typeof sandbox === 'string' ? sandbox : sandbox.id);
  }

  /** Remove this network (refused while it has endpoints). */
  remove(): Promise<void> {
    return this.ctl.removeNetwork(this.id);
  }

  inspect(): NetworkInspect {
    const r = this.record;
    const containers: Record<string, NetworkContainer> = {};
    for (const ep of this.ctl.endpointsOf(r.id)) {
      // an endpoint whose commit mark is still being written by a live process is shown
      if (ep.state !== 'active' && !isAlive(ep.owner)) continue;
      const sb = this.ctl.store.get<SandboxRecord>(keys.sb(ep.sandboxId));
      if (!sb) continue;
      containers[sb.id] = {
        Name: sb.name,
        EndpointID: ep.id,
        MacAddress: ep.mac,
        IPv4Address: ep.ipv4,
        IPv6Address: ep.ipv6,
      };
      if (ep.ports?.length) containers[sb.id]!.Ports = dockerPorts(ep.ports);
    }
    return {
      Name: r.name,
      Id: r.id,
      Created: r.created,
      Scope: r.scope,
      Driver: r.driver,
      EnableIPv4: r.enableIPv4 !== false,
      EnableIPv6: r.enableIPv6,
      IPAM: {
        Driver: r.ipam.driver,
        Options: Object.keys(r.ipam.options).length || r.ipam.optionsGiven ? r.ipam.options : null,
        // Docker lists the IPv4 pools first, then the IPv6 ones
        Config: [...r.ipam.config.filter((c) => !c.subnet.includes(':')), ...r.ipam.config.filter((c) => c.subnet.includes(':'))].map((c) => {
          const out: NetworkInspect['IPAM']['Config'][number] = { Subnet: c.subnet };
          if (!c.gatewayAuto) out.Gateway = c.gateway;
          if (c.ipRange) out.IPRange = c.ipRange;
          if (c.auxAddresses && Object.keys(c.auxAddresses).length) out.AuxiliaryAddresses = c.auxAddresses;
          return out;
        }),
      },
      Internal: r.internal,
      Attachable: r.attachable,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: containers,
      Options: r.options,
      Labels: r.labels,
      ...(r.scope === 'global' ? { Peers: this.ctl.peersOf(r.id) } : {}),
    };
  }
}
