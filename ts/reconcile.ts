/**
 * Reconcile: bring store and kernel into agreement after a crash or a reboot.
 * Half-made work of dead processes is rolled back, sandboxes whose netns vanished
 * are released, missing bridges are made again, and veths on our bridges that
 * belong to no endpoint are removed. Work owned by live processes is left alone.
 */
import type { NetworkController } from './controller.js';
import { Firewall } from './firewall.js';
import { usesRemoteIpam } from './ipam/remote.js';
import { native } from './native.js';
import type { FirewallNetwork, PortMapping } from './native-api.js';
import { isAlive } from './owner.js';
import { allNetworks, allSandboxes, endpointsOfNetwork, endpointsOfSandbox, keys } from './records.js';
import type { AllocationRecord, EndpointRecord, NetworkRecord, SandboxRecord } from './types.js';

export interface ReconcileReport {
  /** what was done (or, in a dry run, would be done) */
  actions: string[];
  /** steps that failed; reconcile carries on past them */
  errors: string[];
}

export async function reconcile(ctl: NetworkController, opts: { dryRun?: boolean } = {}): Promise<ReconcileReport> {
  const report: ReconcileReport = { actions: [], errors: [] };
  const dry = opts.dryRun === true;
  const host = ctl.hostNetns;
  const store = ctl.store;

  const step = async (what: string, fn: () => Promise<unknown> | unknown): Promise<void> => {
    report.actions.push(what);
    if (dry) return;
    try {
      await fn();
    } catch (e) {
      report.errors.push(`${what}: ${(e as Error).message}`);
    }
  };
  const dropEndpoint = async (ep: EndpointRecord) => {
    const net = store.get<NetworkRecord>(keys.net(ep.networkId));
    store.txn((tx) => ctl.forgetEndpoint(tx, ep));
    // an IPAM plugin's address goes back to it
    await ctl.releaseRemoteAddress(net, ep);
  };

  const namespaces = new Set(await native.netnsList());

  // endpoints a dead process left half-made
  for (const net of allNetworks(store)) {
    for (const ep of endpointsOfNetwork(store, net.id)) {
      if (ep.state === 'pending' && !isAlive(ep.owner)) {
        await step(`roll back half-made endpoint ${ep.id.slice(0, 12)} on ${net.name}`, async () => {
          if (ep.hostIfname) await native.detachVeth(host, ep.hostIfname);
          await dropEndpoint(ep);
        });
      }
    }
  }

  // sandboxes half-made by a dead process, or whose netns is gone
  for (const sb of allSandboxes(store)) {
    const halfDone = sb.state !== 'ready' && !isAlive(sb.owner);
    // the list is a snapshot: a sandbox another process finished since is not gone
    const gone = sb.state === 'ready' && !namespaces.has(sb.netns) && !(await native.netnsExists(sb.netns));
    if (!halfDone && !gone) continue;
    const why = gone ? 'release sandbox whose netns is gone' : `roll back half-made sandbox (owner pid ${sb.owner?.pid ?? '?'} is gone)`;
    await step(`${why} ${sb.name}`, async () => {
      if (halfDone && namespaces.has(sb.netns)) await native.netnsDelete(sb.netns);
      // a cached socket would keep a netns deleted behind our back alive
      if (gone) native.releaseNetns(sb.netns);
      await removeSandboxRecords(ctl, sb);
    });
  }

  // networks half-made or half-removed by a dead process; bridges missing after reboot
  const links = await native.listLinks(host);
  const linkByName = new Map(links.map((l) => [l.name, l]));
  for (const net of allNetworks(store)) {
    if (net.state !== 'ready' && !isAlive(net.owner)) {
      await step(`roll back half-${net.state === 'creating' ? 'made' : 'removed'} network ${net.name}`, async () => {
        if (net.bridge && (net.bridgeCreated || net.bridge === `br-${net.id.slice(0, 12)}`)) {
          await native.deleteLink(host, net.bridge);
        }
        // a remote driver may have made the network on its side before the crash
        if (!BUILTIN.has(net.driver)) await (await ctl.drivers.resolve(net.driver)).deleteNetwork(net).catch(() => undefined);
        for (const ep of endpointsOfNetwork(store, net.id)) await dropEndpoint(ep);
        store.txn((tx) => ctl.unreserveNetwork(tx, net));
        // the pools a remote IPAM network got from its plugin go back too
        await ctl.releaseRemotePools(net);
      });
    } else if (net.state === 'ready' && net.driver === 'bridge' && net.bridge && !linkByName.has(net.bridge)) {
      await step(`recreate missing bridge ${net.bridge} of network ${net.name}`, async () => {
        await ctl.drivers.get('bridge').createNetwork(net);
        store.txn((tx) => tx.put(keys.net(net.id), net));
      });
    }
  }

  // endpoints whose link is gone (a crash between a disconnect's kernel work and its
  // commit): the user asked for them to go, so the records follow the kernel
  // read the endpoints first and the links after: an endpoint active at the read
  // had its link before it, so only a really lost link is missing from the list
  const active = allNetworks(store)
    .filter((n) => n.driver === 'bridge')
    .flatMap((n) => endpointsOfNetwork(store, n.id).map((ep) => ({ ep, net: n })))
    .filter(({ ep }) => ep.state === 'active' && ep.hostIfname !== '');
  const inSnapshot = new Set(links.map((l) => l.name));
  if (active.some(({ ep }) => !inSnapshot.has(ep.hostIfname))) {
    const fresh = new Set((await native.listLinks(host)).map((l) => l.name));
    for (const { ep, net } of active) {
      if (fresh.has(ep.hostIfname)) continue;
      await step(`drop endpoint ${ep.id.slice(0, 12)} on ${net.name} whose link is gone`, () => dropEndpoint(ep));
    }
  }

  // veths on our bridges that no endpoint accounts for
  const ours = new Map<number, NetworkRecord>();
  for (const net of allNetworks(store)) {
    const l = net.bridge ? linkByName.get(net.bridge) : undefined;
    if (l) ours.set(l.index, net);
  }
  const known = new Set<string>();
  for (const net of allNetworks(store)) for (const ep of endpointsOfNetwork(store, net.id)) known.add(ep.hostIfname);
  for (const l of links) {
    if (l.kind === 'veth' && l.master != null && ours.has(l.master) && !known.has(l.name)) {
      await step(`remove orphan veth ${l.name} on bridge ${ours.get(l.master)!.bridge}`, () => native.deleteLink(host, l.name));
    }
  }

  // firewall entries: every ready bridge network and published port present, nothing else
  if (ctl.firewall.enabled) {
    const state = await ctl.firewall.state();
    const wantNets = allNetworks(store)
      .filter((n) => n.state === 'ready' && n.driver === 'bridge' && n.bridge)
      .map((n) => Firewall.network(n));
    const wantPorts = allNetworks(store).flatMap((n) =>
      n.driver === 'bridge' ? endpointsOfNetwork(store, n.id).flatMap((ep) => Firewall.ports(n, ep)) : [],
    );
    // nftables keeps no subnets (its sets are keyed by bridge), iptables rules carry them
    const subnets = ctl.firewall.backend === 'iptables';
    const netKey = (n: FirewallNetwork) => `${n.bridge}|${n.masquerade}|${n.icc}|${n.internal}|${subnets ? (n.subnet6 ?? '') : ''}`;
    const portKey = (p: PortMapping) =>
      `${p.proto}|${p.hostIp ?? '0.0.0.0'}|${p.hostPort}|${p.containerIp}|${p.containerPort}|${p.containerIp6 ?? ''}`;
    const haveNets = new Set(state.networks.map(netKey));
    const haveBridges = new Set(state.networks.map((n) => n.bridge));
    const wantBridges = new Set(wantNets.map((n) => n.bridge));
    const havePorts = new Set(state.ports.map(portKey));
    const wantPortKeys = new Set(wantPorts.map(portKey));
    const addNetworks = wantNets.filter((n) => !haveNets.has(netKey(n)));
    const removeNetworks = state.networks.filter((n) => !wantBridges.has(n.bridge) || !wantNets.some((w) => netKey(w) === netKey(n)));
    const addPorts = wantPorts.filter((p) => !havePorts.has(portKey(p)));
    const removePorts = state.ports.filter((p) => !wantPortKeys.has(portKey(p)));
    for (const n of removeNetworks) report.actions.push(`remove firewall entries of bridge ${n.bridge}`);
    for (const n of addNetworks) report.actions.push(`${haveBridges.has(n.bridge) ? 'update' : 'restore'} firewall entries of bridge ${n.bridge}`);
    for (const p of removePorts) report.actions.push(`remove stale port mapping ${p.proto}/${p.hostPort}`);
    for (const p of addPorts) report.actions.push(`restore port mapping ${p.proto}/${p.hostPort} -> ${p.containerIp}:${p.containerPort}`);
    if (!dry && (addNetworks.length || removeNetworks.length || addPorts.length || removePorts.length)) {
      try {
        // removals first, in their own batch, so that an updated entry is re-added cleanly
        await ctl.firewall.apply({ removeNetworks, removePorts });
        await ctl.firewall.apply({ addNetworks, addPorts });
      } catch (e) {
        report.errors.push(`firewall: ${(e as Error).message}`);
      }
    }
  }

  // addresses held by endpoints that no longer exist; a remote IPAM network's
  // addresses are its plugin's business, the default IPAM holds none of them
  for (const net of allNetworks(store)) {
    if (usesRemoteIpam(net)) continue;
    for (const [key, rec] of store.range<AllocationRecord>(`ipam/${net.id}/`)) {
      if (!key.includes('/a/')) continue;
      if (store.get(keys.ep(net.id, rec.endpointId)) === undefined) {
        const ip = key.slice(key.lastIndexOf('/a/') + 3);
        await step(`free leaked address ${ip} on ${net.name}`, () => store.txn((tx) => ctl.ipam.release(tx, net, ip)));
      }
    }
  }
  return report;
}

/** Built-in drivers keep their state in the kernel only; plugins must be told. */
const BUILTIN = new Set(['bridge', 'host', 'null']);

async function removeSandboxRecords(ctl: NetworkController, sb: SandboxRecord): Promise<void> {
  const eps = endpointsOfSandbox(ctl.store, sb.id);
  await Promise.allSettled(eps.filter((e) => e.hostIfname).map((e) => native.detachVeth(ctl.hostNetns, e.hostIfname)));
  const nets = new Map(eps.map((ep) => [ep.id, ctl.store.get<NetworkRecord>(keys.net(ep.networkId))]));
  // a remote driver gets Leave and DeleteEndpoint, best effort: the records go anyway,
  // and a plugin that cannot be reached must not keep the store from agreeing with the kernel
  await Promise.allSettled(
    eps.map(async (ep) => {
      const net = nets.get(ep.id);
      if (net && !BUILTIN.has(net.driver)) await (await ctl.drivers.resolve(net.driver)).leave(net, ep, sb);
    }),
  );
  ctl.store.txn((tx) => {
    for (const ep of eps) ctl.forgetEndpoint(tx, ep);
    tx.del(keys.sb(sb.id));
    if (tx.get(keys.sbName(sb.name)) === sb.id) tx.del(keys.sbName(sb.name));
  });
  await Promise.all(eps.map((ep) => ctl.releaseRemoteAddress(nets.get(ep.id), ep)));
}
