/**
 * Network create and remove: reserve the name and pools in the store, program
 * the kernel through the driver, mark the record ready; undo both sides when a
 * step fails before that, carry on to the end when it fails after.
 */
import { CnmError } from '../errors.js';
import type { Driver } from '../drivers/driver.js';
import { fault } from '../fault.js';
import type { Ipam } from '../ipam/ipam-api.js';
import { log } from '../log.js';
import { native } from '../native.js';
import { type Cidr, overlaps, parseCidr, parseSubnet } from '../net/ip.js';
import { nameserverPrefixes } from '../ipam/default-pools.js';
import type { NetworkCreateOptions } from '../options.js';
import { currentOwner } from '../owner.js';
import { allNetworks, endpointsOfNetwork, findNetwork, keys } from '../records.js';
import type { StoreTxn } from '../store/store.js';
import type { NetworkRecord } from '../types.js';
import type { OpContext } from './context.js';
import { forgetEndpoint } from './endpoints.js';
import { planNetwork } from './network-plan.js';
import { appendEvent } from '../events.js';
import { Forward, Undo } from './undo.js';

/** Create a network. Nothing is left behind when it fails. */
export async function createNetwork(ctx: OpContext, req: NetworkCreateOptions, predefined = false): Promise<NetworkRecord> {
  const { rec, driver, requested } = await planNetwork(ctx, req, predefined);
  const ipam = driver.usesIpam ? await ctx.drivers.ipamOf(rec) : undefined;
  const exclude = () => excludedPrefixes(ctx);
  // another process may take an automatically chosen subnet between our look and our write
  for (let attempt = 0; ; attempt++) {
    if (ipam) rec.ipam.config = await ipam.requestPools({ network: rec, requested, exclude });
    try {
      await ctx.store.txn((tx) => reserveNetwork(tx, rec, driver));
      break;
    } catch (e) {
      if (ipam) await ipam.releasePools(rec).catch((u: unknown) => log.warn('giving back the pools of a network that was not created failed', { network: rec.name, err: u }));
      const retry = e instanceof CnmError && e.code === 'ERR_SUBNET_OVERLAP' && rec.ipam.config.some((c) => c.auto) && attempt < 3;
      if (!retry) throw e;
    }
  }
  const undo = new Undo();
  // as libnetwork: the pools go back to the IPAM last
  if (ipam) undo.push('give back the pools', () => ipam.releasePools(rec));
  undo.push('drop the network record', () => ctx.store.txn((tx) => unreserveNetwork(tx, rec)));
  try {
    fault('network.create.reserve');
    await driver.createNetwork(rec);
    undo.push('delete the network in the kernel', () => driver.deleteNetwork(rec));
    fault('network.create.kernel');
    rec.state = 'ready';
    delete rec.owner;
    await ctx.store.txn((tx) => {
      tx.put(keys.net(rec.id), rec);
      appendEvent(tx, 'create', rec.id, { name: rec.name, type: rec.driver });
    });
  } catch (e) {
    throw await undo.run(e, `create network ${rec.name}`);
  }
  fault('network.create.commit');
  return rec;
}

/** Remove a network; refused while endpoints exist or for predefined networks. */
export async function removeNetwork(ctx: OpContext, ref: string): Promise<void> {
  const rec = findNetwork(ctx.store, ref);
  if (rec.predefined) {
    throw new CnmError('ERR_PREDEFINED_NETWORK', `${rec.name} is a pre-defined network and cannot be removed`, { network: rec.name });
  }
  const inUse = () =>
    new CnmError('ERR_NETWORK_IN_USE', `error while removing network: network ${rec.name} id ${rec.id} has active endpoints`, { network: rec.name });
  if (endpointsOfNetwork(ctx.store, rec.id).length > 0) throw inUse();
  const driver = await ctx.drivers.resolve(rec.driver);
  await ctx.store.txn((tx) => {
    const cur = tx.get<NetworkRecord>(keys.net(rec.id));
    if (!cur) throw new CnmError('ERR_NETWORK_NOT_FOUND', `network ${ref} not found`, { value: ref });
    if (endpointsOfNetwork(tx, rec.id).length > 0) throw inUse();
    tx.put(keys.net(rec.id), { ...cur, state: 'deleting', owner: currentOwner() });
  });
  const undo = new Undo();
  undo.push('restore the network record', () => ctx.store.txn((tx) => tx.put(keys.net(rec.id), rec)));
  try {
    fault('network.rm.mark');
    await driver.deleteNetwork(rec);
  } catch (e) {
    throw await undo.run(e, `remove network ${rec.name}`);
  }
  // the kernel side is gone: from here on the removal only moves forward
  const fwd = new Forward(`remove network ${rec.name}`);
  await fwd.step('the step after the kernel work', () => fault('network.rm.kernel'));
  await dropNetwork(ctx, rec, driver, fwd, true);
  fwd.finish();
  fault('network.rm.commit');
}

/**
 * Roll back a network that a dead process left half-made or half-removed: its
 * kernel side, its endpoints, its pools and its records (reconcile).
 */
export async function rollbackNetwork(ctx: OpContext, net: NetworkRecord): Promise<void> {
  const fwd = new Forward(`roll back network ${net.name}`);
  let driver: Driver | undefined;
  await fwd.step('find its driver', async () => (driver = await ctx.drivers.resolve(net.driver)));
  if (driver) await fwd.step('undo its kernel side', () => driver!.rollbackNetwork(net));
  for (const ep of endpointsOfNetwork(ctx.store, net.id)) await fwd.step(`drop endpoint ${ep.id.slice(0, 12)}`, () => forgetEndpoint(ctx, net, ep));
  await dropNetwork(ctx, net, driver, fwd);
  fwd.finish();
}

/** The pools go back to the network's IPAM, then the records go. */
async function dropNetwork(ctx: OpContext, rec: NetworkRecord, driver: Driver | undefined, fwd: Forward, removed = false): Promise<void> {
  if (driver === undefined || driver.usesIpam) {
    let ipam: Ipam | undefined;
    await fwd.step('find its IPAM driver', async () => (ipam = await ctx.drivers.ipamOf(rec)));
    if (ipam) await fwd.step('give back its pools', () => ipam!.releasePools(rec));
  }
  await fwd.step('drop its records', () =>
    ctx.store.txn((tx) => {
      unreserveNetwork(tx, rec);
      // its devices, retired by the driver, wait for the reaper
      ctx.reaper.note(tx);
      // a removal the user asked for (a half-made network rolled back was never reported made)
      if (removed) appendEvent(tx, 'destroy', rec.id, { name: rec.name, type: rec.driver });
    }),
  );
}

/** The name, the bridge device and the subnets must be free; then the record goes in. */
export function reserveNetwork(tx: StoreTxn, rec: NetworkRecord, driver?: Pick<Driver, 'checkConflict'>): void {
  if (tx.get(keys.netName(rec.name)) !== undefined) {
    throw new CnmError('ERR_NAME_CONFLICT', `network with name ${rec.name} already exists`, { value: rec.name, network: rec.name });
  }
  for (const other of allNetworks(tx)) {
    driver?.checkConflict?.(rec, other);
    if (rec.bridge && other.bridge === rec.bridge) {
      throw new CnmError('ERR_NAME_CONFLICT', `bridge device ${rec.bridge} is already used by network ${other.name}`, { value: rec.bridge });
    }
    for (const a of rec.ipam.config) {
      for (const b of other.ipam.config) {
        if (overlaps(parseSubnet(a.subnet), parseSubnet(b.subnet))) {
          throw new CnmError('ERR_SUBNET_OVERLAP', `Pool overlaps with other one on this address space: ${a.subnet} overlaps ${b.subnet} of network ${other.name}`, {
            subnet: a.subnet,
            network: other.name,
          });
        }
      }
    }
  }
  tx.put(keys.net(rec.id), rec);
  tx.put(keys.netName(rec.name), rec.id);
}

export function unreserveNetwork(tx: StoreTxn, rec: NetworkRecord): void {
  tx.del(keys.net(rec.id));
  if (tx.get(keys.netName(rec.name)) === rec.id) tx.del(keys.netName(rec.name));
}

/** Prefixes automatic subnet choice must avoid: host routes, nameservers and other networks. */
async function excludedPrefixes(ctx: OpContext): Promise<Cidr[]> {
  const out: Cidr[] = nameserverPrefixes();
  for (const r of await native.listRoutes(ctx.hostNetns, null)) {
    try {
      const c = parseCidr(r.dst, 'route');
      if (c.prefix > 0) out.push(c);
    } catch (e) {
      // a route we cannot parse cannot be compared; say so rather than guess
      log.debug('a host route was skipped in automatic subnet choice', { route: r.dst, err: e });
    }
  }
  for (const n of allNetworks(ctx.store)) for (const c of n.ipam.config) out.push(parseSubnet(c.subnet));
  return out;
}
