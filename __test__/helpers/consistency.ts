/**
 * Store ↔ kernel agreement, checked from a fresh controller: every bridge
 * exists, the veths on our bridges are exactly the endpoints, sandbox namespaces
 * are exactly the sandboxes, firewall entries are exactly the networks and
 * published ports, IPAM holds exactly the endpoints' addresses, and nothing is
 * left half-made. Opening a controller changes nothing, so this sees what the
 * last operation left; with `reconcile` it first runs reconcile (after a crash,
 * that is how state is repaired).
 */
import { existsSync, readdirSync } from 'node:fs';
import { NetworkController } from '../../ts/controller.js';
import { AddressAllocator } from '../../ts/ipam/allocator.js';
import { native } from '../../ts/native.js';
import type { IsolatedHost } from './host.js';

export interface Summary {
  networks: string[];
  sandboxes: Record<string, Record<string, string>>;
  ports: string[];
}

export async function checkConsistency(host: IsolatedHost, opts: { reconcile?: boolean } = {}): Promise<{ problems: string[]; summary: Summary }> {
  const ctl = await NetworkController.open({ hostNetns: host.ns, stateDir: host.stateDir });
  const problems: string[] = [];
  try {
    if (opts.reconcile) {
      const r = await ctl.reconcile();
      for (const e of r.errors) problems.push(`reconcile: ${e}`);
    }
    const store = ctl.store;
    const nets = store.range<{ id: string; name: string; state: string; driver: string; bridge?: string }>('net/').map(([, n]) => n);
    for (const n of nets) if (n.state !== 'ready') problems.push(`network ${n.name} is ${n.state}`);
    const links = await native.listLinks(host.ns);
    const byName = new Map(links.map((l) => [l.name, l]));
    const ourBridges = new Map<number, string>();
    for (const n of nets.filter((x) => x.driver === 'bridge')) {
      const l = byName.get(n.bridge!);
      if (!l) problems.push(`bridge ${n.bridge} of ${n.name} is missing`);
      else ourBridges.set(l.index, n.name);
    }
    const eps = ctl.listNetworks().flatMap((n) => ctl.endpointsOf(n.id).map((e) => ({ ...e, net: n })));
    for (const e of eps) if (e.state !== 'active') problems.push(`endpoint ${e.id.slice(0, 12)} is ${e.state}`);
    const wantVeths = new Set(eps.filter((e) => e.hostIfname).map((e) => e.hostIfname));
    const haveVeths = new Set(links.filter((l) => l.kind === 'veth' && l.master != null && ourBridges.has(l.master)).map((l) => l.name));
    for (const v of wantVeths) if (!haveVeths.has(v)) problems.push(`veth ${v} of an endpoint is missing`);
    for (const v of haveVeths) if (!wantVeths.has(v)) problems.push(`veth ${v} belongs to no endpoint`);
    const sbs = store.range<{ id: string; name: string; netns: string; state: string }>('sb/').map(([, s]) => s);
    for (const s of sbs) if (s.state !== 'ready') problems.push(`sandbox ${s.name} is ${s.state}`);
    const nsMine = (await native.netnsList()).filter((n) => n.startsWith(host.name('')) && n !== host.ns);
    const nsWant = new Set(sbs.map((s) => s.netns));
    for (const n of nsMine) if (!nsWant.has(n) && !n.endsWith('-outside')) problems.push(`netns ${n} belongs to no sandbox`);
    for (const n of nsWant) if (!nsMine.includes(n)) problems.push(`netns ${n} of a sandbox is missing`);
    // the files `ip netns exec` shows: exactly those of sandboxes with a netns of their own
    const etcMine = existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((n) => n.startsWith(host.name('')) && n !== host.ns) : [];
    const etcWant = new Set(store.range<{ netns: string; mode: string }>('sb/').filter(([, s]) => s.mode === 'network' || s.mode === 'none').map(([, s]) => s.netns));
    for (const n of etcMine) if (!etcWant.has(n)) problems.push(`/etc/netns/${n} belongs to no sandbox`);
    for (const n of etcWant) if (!etcMine.includes(n)) problems.push(`/etc/netns/${n} of a sandbox is missing`);
    const fw = await native.firewallState('nftables', host.ns);
    const portKey = (p: { proto: string; hostPort: number; containerIp: string; containerPort: number }) =>
      `${p.proto}/${p.hostPort}->${p.containerIp}:${p.containerPort}`;
    const wantPorts = eps.flatMap((e) => (e.ports ?? []).map((p) => portKey({ ...p, containerIp: e.ipv4.split('/')[0]! })));
    const havePorts = fw.ports.map(portKey);
    if (JSON.stringify([...wantPorts].sort()) !== JSON.stringify([...havePorts].sort())) {
      problems.push(`firewall ports ${havePorts.sort().join(' ')} != endpoints' ${wantPorts.sort().join(' ')}`);
    }
    const fwBridges = fw.networks.map((n) => n.bridge).sort();
    const wantBridges = nets.filter((n) => n.driver === 'bridge').map((n) => n.bridge!).sort();
    if (JSON.stringify(fwBridges) !== JSON.stringify(wantBridges)) problems.push(`firewall bridges ${fwBridges} != ${wantBridges}`);
    const allocator = new AddressAllocator(store);
    for (const n of ctl.listNetworks()) {
      const alloc = [...allocator.allocations(n.record).entries()].map(([ip, ep]) => `${ip}=${ep}`).sort();
      const want = ctl
        .endpointsOf(n.id)
        .flatMap((e) => [e.ipv4, e.ipv6].filter(Boolean).map((a) => `${a.split('/')[0]}=${e.id}`))
        .sort();
      if (JSON.stringify(alloc) !== JSON.stringify(want)) problems.push(`IPAM of ${n.name} holds ${alloc} but endpoints have ${want}`);
    }
    const summary: Summary = {
      networks: ctl.listNetworks().map((n) => n.name).sort(),
      sandboxes: Object.fromEntries(
        ctl.listSandboxes().map((s) => [s.name, Object.fromEntries(Object.entries(s.inspect().Networks).map(([k, v]) => [k, v.IPAddress]))]),
      ),
      ports: havePorts.sort(),
    };
    return { problems, summary };
  } finally {
    await ctl.close();
  }
}
