/** An endpoint: one attachment of one sandbox to one network. */
import type { NetworkController } from './controller.js';
import type { EndpointRecord } from './types.js';

/** Docker's EndpointSettings, as `network connect` and container inspect show it. */
export interface EndpointInspect {
  EndpointID: string;
  NetworkID: string;
  SandboxID: string;
  InterfaceName: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
  Gateway: string;
  Aliases: string[];
}

export class Endpoint {
  /** @internal */
  constructor(
    private readonly ctl: NetworkController,
    /** the stored record; treat as read-only */
    readonly record: EndpointRecord,
  ) {}

  get id(): string {
    return this.record.id;
  }
  get networkId(): string {
    return this.record.networkId;
  }
  get sandboxId(): string {
    return this.record.sandboxId;
  }
  /** interface name inside the sandbox, e.g. eth1 */
  get ifname(): string {
    return this.record.ifname;
  }
  /** IPv4 address in CIDR form, e.g. "10.1.0.2/24" ("" on host/none networks) */
  get ipv4(): string {
    return this.record.ipv4;
  }
  get mac(): string {
    return this.record.mac;
  }

  /** IPv6 address in CIDR form ("" when the network has no IPv6) */
  get ipv6(): string {
    return this.record.ipv6;
  }

  /** Take this endpoint's sandbox off its network (Docker's `network disconnect`). */
  disconnect(): Promise<void> {
    return this.ctl.disconnect(this.networkId, this.sandboxId);
  }

  inspect(): EndpointInspect {
    const r = this.record;
    return {
      EndpointID: r.id,
      NetworkID: r.networkId,
      SandboxID: r.sandboxId,
      InterfaceName: r.ifname,
      MacAddress: r.mac,
      IPv4Address: r.ipv4,
      IPv6Address: r.ipv6,
      Gateway: r.gateway,
      Aliases: r.aliases,
    };
  }
}
