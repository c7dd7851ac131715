/**
 * The `macvlan` driver (Docker's): sandboxes straight on the host's LAN. Each
 * endpoint is a macvlan link of the network's parent interface, born inside the
 * sandbox netns under its final name, with an address of the LAN's subnet and
 * the LAN's gateway as default route. No bridge, no NAT, no published ports.
 * The host itself cannot reach its macvlan children through the parent (the
 * kernel hands frames between a parent and its macvlans to neither side), as
 * with Docker.
 *
 * `parent=eth0.10` asks for an 802.1q sub-interface: made with the network if
 * missing, removed with it when cnm made it.
 */
import { CnmError, invalid } from '../errors.js';
import { native } from '../native.js';
import type { LinkInfo, MacvlanInfo, MacvlanSpec, VlanInfo, VlanSpec } from '../native-api.js';
import type { EndpointRecord, NetworkRecord, SandboxRecord } from '../types.js';
import { parseMtu } from '../validate.js';
import { BridgeOptions, interfaceAddresses, macFor } from './bridge-options.js';
import { sandboxSideComplete } from './bridge-repair.js';
import type { Driver, DriverContext, RepairInput, RepairResult } from './driver.js';

/** Docker's option names. */
export const MacvlanOptions = {
  parent: 'parent',
  mode: 'macvlan_mode',
} as const;

export const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'] as const;
export type MacvlanMode = (typeof MACVLAN_MODES)[number];

/** The kernel calls the driver makes: the real ones, or a fake in unit tests. */
export interface MacvlanKernel {
  listLinks(netns: string | null): Promise<LinkInfo[]>;
  ensureVlan(spec: VlanSpec): Promise<VlanInfo>;
  attachMacvlan(spec: MacvlanSpec): Promise<MacvlanInfo>;
  deleteLink(netns: string | null, name: string): Promise<boolean>;
}

/** A parent of the 802.1q form IF.VLAN: the interface and the VLAN id; null for a plain one. */
export function parseVlanParent(parent: string): { base: string; id: number } | null {
  const m = /^(.+)\.(\d+)$/.exec(parent);
  if (!m) return null;
  const id = Number(m[2]);
  if (id < 1 || id > 4094) throw invalid(`VLAN id ${m[2]} of parent ${parent} out of range: 1 to 4094`, parent);
  return { base: m[1]!, id };
}

const modeOf = (net: NetworkRecord) => net.options[MacvlanOptions.mode] as MacvlanMode;
const parentOf = (net: NetworkRecord) => net.options[MacvlanOptions.parent]!;

export class MacvlanDriver implements Driver {
  readonly name = 'macvlan';
  readonly usesIpam = true;
  readonly ownNetns = true;
  readonly publishesPorts = false;
  readonly leavesBeforeNetnsDelete = true;

  constructor(
    private readonly ctx: DriverContext,
    private readonly kernel: MacvlanKernel = native,
  ) {}

  prepareNetwork(net: NetworkRecord): void {
    const parent = net.options[MacvlanOptions.parent];
    if (parent === undefined || parent === '') {
      throw invalid('a macvlan network needs its parent interface: -o parent=IF (an interface of the host, or IF.VLAN for an 802.1q sub-interface)', parent);
    }
    if (parent.length > 15 || /[\s/:]/.test(parent)) throw invalid(`invalid parent interface name ${JSON.stringify(parent)}`, parent);
    parseVlanParent(parent);
    const mode = net.options[MacvlanOptions.mode] ?? 'bridge';
    if (!(MACVLAN_MODES as readonly string[]).includes(mode)) throw invalid(`invalid macvlan_mode ${JSON.stringify(mode)}: expected bridge, private, vepa or passthru`, mode);
    // shown by inspect as Docker shows it once set
    net.options[MacvlanOptions.mode] = mode;
    const mtu = net.options[BridgeOptions.mtu];
    if (mtu !== undefined) net.mtu = parseMtu(mtu, BridgeOptions.mtu);
  }

  /**
   * Docker's rules for one parent: a passthru network has it alone, and
   * networks sharing it share a mode (the kernel puts all macvlans of a parent
   * in one forwarding model). Checked in the create's transaction.
   */
  checkConflict(net: NetworkRecord, other: NetworkRecord): void {
    if (other.driver !== this.name || other.id === net.id || parentOf(other) !== parentOf(net)) return;
    const why =
      modeOf(net) === 'passthru' || modeOf(other) === 'passthru'
        ? `a passthru macvlan network has its parent alone: network ${other.name} already uses ${parentOf(net)}${modeOf(other) === 'passthru' ? ' in passthru mode' : ''}`
        : modeOf(other) !== modeOf(net)
          ? `parent ${parentOf(net)} is used by macvlan network ${other.name} in mode ${modeOf(other)}: a second network on it must use that mode too`
          : undefined;
    if (why) throw new CnmError('ERR_PARENT_IN_USE', why, { value: parentOf(net), network: other.name });
  }

  /** passthru hands the parent itself to one sandbox: a second endpoint is refused. */
  checkEndpoint(net: NetworkRecord, others: readonly EndpointRecord[]): void {
    if (modeOf(net) === 'passthru' && others.length > 0) {
      throw new CnmError('ERR_PARENT_IN_USE', `macvlan network ${net.name} is in passthru mode: its parent ${parentOf(net)} already serves one endpoint, and passthru takes only one`, {
        network: net.name,
      });
    }
  }

  /** The parent must exist; an IF.VLAN one is made when missing (and recorded as ours). */
  async createNetwork(net: NetworkRecord): Promise<void> {
    const parent = parentOf(net);
    const vlan = parseVlanParent(parent);
    const links = await this.kernel.listLinks(this.ctx.hostNetns);
    if (vlan && !links.some((l) => l.name === parent)) {
      if (!links.some((l) => l.name === vlan.base)) throw this.noParent(vlan.base, this.ctx.hostNetns);
      const made = await this.kernel.ensureVlan({ netns: this.ctx.hostNetns, name: parent, parent: vlan.base, id: vlan.id, mtu: null });
      net.vlanCreated = made.created;
      return;
    }
    if (!links.some((l) => l.name === parent)) throw this.noParent(parent, this.ctx.hostNetns);
  }

  private noParent(name: string, netns: string | null): CnmError {
    return new CnmError('ERR_LINK_NOT_FOUND', `the macvlan parent interface ${name} does not exist in ${netns ? `netns ${netns}` : 'the host netns'}`, { ifname: name, value: name });
  }

  /** A sub-interface cnm made goes with the network (its macvlans are gone by then). */
  async deleteNetwork(net: NetworkRecord): Promise<void> {
    if (net.vlanCreated) await this.kernel.deleteLink(this.ctx.hostNetns, parentOf(net));
  }

  async rollbackNetwork(net: NetworkRecord): Promise<void> {
    await this.deleteNetwork(net);
  }

  createEndpoint(_net: NetworkRecord, ep: EndpointRecord): void {
    ep.hostIfname = '';
    if (!ep.staticMac) ep.mac = macFor(ep.ipv4, ep.id);
  }

  async deleteEndpoint(): Promise<void> {}

  async join(net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<{ mac?: string }> {
    if (ep.ports?.length) throw this.noPorts(net);
    const info = await this.kernel.attachMacvlan({
      hostNetns: this.ctx.hostNetns,
      sandboxNetns: sb.netns,
      parent: parentOf(net),
      ifname: ep.ifname,
      mode: modeOf(net),
      mtu: net.mtu ?? null,
      mac: ep.mac,
      addresses: interfaceAddresses(ep),
      gateway: ep.defaultGateway && ep.ipv4 ? ep.gateway : null,
      gateway6: ep.defaultGateway && ep.ipv6 ? (ep.gateway6 ?? null) : null,
    });
    return { mac: info.mac };
  }

  async endpointComplete(_net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<boolean> {
    return sandboxSideComplete(sb.netns, ep, 'macvlan');
  }

  /** The link lives in the sandbox only: delete it there; a sandbox already gone took it. */
  async leave(_net: NetworkRecord, ep: EndpointRecord, sb: SandboxRecord): Promise<void> {
    if (!ep.ifname) return;
    try {
      await this.kernel.deleteLink(sb.netns, ep.ifname);
    } catch (e) {
      if (!(e instanceof CnmError && e.code === 'ERR_NETNS_NOT_FOUND')) throw e;
    }
  }

  private noPorts(net: NetworkRecord): CnmError {
    return invalid(`network ${net.name} is a macvlan network: its sandboxes are on the LAN with their own addresses, so ports are not published (reach them at their address)`, net.name);
  }

  async programExternalConnectivity(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    if (ep.ports?.length) throw this.noPorts(net);
  }

  async revokeExternalConnectivity(): Promise<void> {}

  /**
   * Sub-interfaces cnm made come back (a reboot); endpoints whose link is gone
   * from their sandbox are reported lost; macvlan links in sandboxes that no
   * endpoint accounts for are removed.
   */
  async repair(input: RepairInput): Promise<RepairResult> {
    const host = await this.kernel.listLinks(this.ctx.hostNetns);
    for (const net of input.networks) {
      if (!net.vlanCreated || host.some((l) => l.name === parentOf(net))) continue;
      const vlan = parseVlanParent(parentOf(net))!;
      await input.step(`make the VLAN sub-interface ${parentOf(net)} of macvlan network ${net.name} again`, () =>
        this.kernel.ensureVlan({ netns: this.ctx.hostNetns, name: parentOf(net), parent: vlan.base, id: vlan.id, mtu: null }),
      );
    }
    // read before the links: an endpoint recorded by now has its link in the listing
    const before = input.endpoints();
    // only sandboxes with an endpoint on these networks: the others never had a macvlan of ours
    const mine = new Set(before.map((e) => e.sandboxId));
    const sandboxes = (input.sandboxes?.() ?? []).filter((s) => mine.has(s.sandbox.id));
    const netnsOf = new Map(sandboxes.map((s) => [s.sandbox.id, s.sandbox.netns]));
    const listed = new Map<string, LinkInfo[] | null>();
    const linksIn = async (netns: string): Promise<LinkInfo[] | null> => {
      if (!listed.has(netns)) {
        listed.set(
          netns,
          await this.kernel.listLinks(netns).catch((e: unknown) => {
            if (e instanceof CnmError && e.code === 'ERR_NETNS_NOT_FOUND') return null;
            throw e;
          }),
        );
      }
      return listed.get(netns)!;
    };
    const lost: EndpointRecord[] = [];
    for (const ep of before.filter((e) => e.state === 'active')) {
      const netns = netnsOf.get(ep.sandboxId);
      if (netns === undefined) continue;
      const links = await linksIn(netns);
      if (!links?.some((l) => l.name === ep.ifname && l.kind === 'macvlan')) lost.push(ep);
    }
    // read after the links: a link in a listing had its endpoint recorded before it was made;
    // any endpoint of the sandbox (a plugin's adopted link may be a macvlan too) accounts for its name
    for (const { sandbox: sb, ifnames } of input.sandboxes?.() ?? []) {
      if (!mine.has(sb.id)) continue;
      const claimed = new Set(ifnames());
      for (const l of (await linksIn(sb.netns)) ?? []) {
        if (l.kind === 'macvlan' && !claimed.has(l.name)) {
          await input.step(`remove orphan macvlan link ${l.name} in sandbox ${sb.name}`, () => this.kernel.deleteLink(sb.netns, l.name));
        }
      }
    }
    return { changed: [], lost };
  }
}
