/**
 * Sandbox create and remove (libnetwork's sandbox.go). A sandbox is a named
 * netns (so `ip netns exec NAME` works): its own, the host's, or another
 * sandbox's. Create reserves the sandbox and its first endpoint in one
 * transaction, makes the netns, joins the network, and marks both done in one
 * more; remove deletes the netns (which takes the sandbox ends of its veths),
 * then takes each endpoint out and drops the records.
 */
import { CnmError, invalid, toCnmError } from '../errors.js';
import { fault } from '../fault.js';
import { log } from '../log.js';
import { native } from '../native.js';
import { netnsFileExists } from '../net/netns-file.js';
import type { SandboxCreateOptions } from '../options.js';
import { currentOwner } from '../owner.js';
import { endpointsOfSandbox, findSandbox, keys, sandboxUsers } from '../records.js';
import { needsGatewayBridge, attachGatewayBridge } from './gateway-bridge.js';
import { ensureLocalCopy, findAnyNetwork, whileHeld } from './global-networks.js';
import type { StoreTxn } from '../store/store.js';
import type { EndpointRecord, NetworkRecord, SandboxMode, SandboxRecord } from '../types.js';
import { checkName, newId } from '../validate.js';
import type { OpContext } from './context.js';
import type { Driver } from '../drivers/driver.js';
import { type InternalConnect, dropEndpointRecords, forgetEndpoint, markActive, planEndpoint, programEndpoint, releaseAddresses, releaserIn } from './endpoints.js';
import { Forward, Undo } from './undo.js';
import { checkSandboxDns } from '../dns/settings.js';
import { removeFilesOf, writeFilesOf } from './sandbox-files.js';
import { dropLinks, linkEntries, parseExpose, planLinks, reserveLinks, unreserveLinks } from './links.js';

export async function createSandbox(ctx: OpContext, req: SandboxCreateOptions): Promise<SandboxRecord> {
  if (typeof req !== 'object' || req === null) throw invalid('sandbox create needs options', req);
  checkName('sandbox', req.name);
  const dns = checkSandboxDns(req);
  const expose = parseExpose(req.expose);
  const netRef = req.net ?? 'bridge';
  if (typeof netRef !== 'string' || netRef === '') throw invalid('--net must not be empty', netRef);
  let mode: SandboxMode = 'network';
  let shared: SandboxRecord | undefined;
  let net: NetworkRecord | undefined;
  if (netRef.startsWith('container:')) {
    mode = 'container';
    shared = findSandbox(ctx.store, netRef.slice('container:'.length));
    if (req.ip !== undefined) throw invalid('conflicting options: --ip and --net container:… cannot be used together', req.ip);
  } else {
    net = findAnyNetwork(ctx, netRef);
    if (net.driver === 'host') mode = 'host';
    else if (net.driver === 'null') mode = 'none';
    if (mode !== 'network' && (req.ip !== undefined || req.ip6 !== undefined)) {
      throw invalid(`conflicting options: --ip/--ip6 cannot be used with network mode ${mode}`, req.ip ?? req.ip6);
    }
  }
  const external = req.netnsPath;
  if (external !== undefined) {
    if (typeof external !== 'string' || !external.startsWith('/')) throw invalid('netnsPath must be an absolute path to a network namespace, such as /proc/PID/ns/net', external);
    if (mode === 'host' || mode === 'container') throw invalid(`netnsPath names the sandbox's own namespace: it cannot be used with network mode ${mode}`, external);
  }
  if (req.links !== undefined && mode !== 'network') throw invalid(`--link needs a network the two sandboxes share, not network mode ${mode}`, req.links);
  const links = net && mode === 'network' ? planLinks(ctx, req.links, req.name, net) : [];
  if (netnsFileExists(req.name)) {
    throw new CnmError('ERR_NAME_CONFLICT', `a network namespace named ${req.name} already exists`, { value: req.name, sandbox: req.name });
  }
  const sb: SandboxRecord = {
    id: newId(),
    name: req.name,
    netns: req.name,
    mode,
    ...(external !== undefined ? { external } : {}),
    created: new Date().toISOString(),
    state: 'creating',
    owner: currentOwner(),
  };
  if (shared) sb.sharedWith = shared.id;
  if (Object.keys(dns).length) sb.dns = dns;
  if (links.length) sb.links = links;
  if (expose.length) sb.expose = expose;
  // host-mode sandboxes publish nothing: they use the host's ports directly, as in Docker
  // on an overlay network, ports are published on the gateway bridge, joined once the sandbox is made
  const gateway = net !== undefined && needsGatewayBridge(net);
  const ports = mode === 'network' && !gateway ? req.ports : undefined;
  // a global network's keys are followed here, and its local copy kept, while this runs
  const letGo = net ? await ensureLocalCopy(ctx, net) : undefined;
  let committed = false;
  try {
    const plan = net ? await planEndpoint(ctx, net, sb, { ip: req.ip, ip6: req.ip6, aliases: req.aliases, ports, mac: req.mac, linkLocalIps: req.linkLocalIps, askedLinks: net.predefined ? undefined : req.links } as InternalConnect, true) : undefined;
    try {
      await ctx.store.txn((tx) => {
        if (tx.get(keys.sbName(sb.name)) !== undefined) {
          throw new CnmError('ERR_NAME_CONFLICT', `sandbox name ${sb.name} is already in use`, { value: sb.name, sandbox: sb.name });
        }
        tx.put(keys.sb(sb.id), sb);
        tx.put(keys.sbName(sb.name), sb.id);
        if (sb.sharedWith) tx.put(keys.sbUser(sb.sharedWith, sb.id), sb.id);
        reserveLinks(tx, sb.id, links);
        plan?.reserve(tx);
      });
    } catch (e) {
      await plan?.release();
      throw e;
    }
    // undone newest first: kernel, then records, then the addresses go back
    const undo = new Undo();
    if (plan) undo.push('give its addresses back', () => releaseAddresses(ctx, net, plan.ep));
    undo.push('drop the sandbox records', () =>
      ctx.store.txn((tx) => {
        if (plan) dropEndpointRecords(tx, plan.ep);
        dropSandboxRecords(tx, sb);
      }),
    );
    try {
      fault('sandbox.create.reserve');
      await makeNetns(ctx, sb, shared);
      undo.push('delete the netns', () => native.netnsDelete(sb.netns));
      fault('sandbox.create.netns');
      // its files are written beside the kernel work
      const files = writeFilesOf(ctx, sb, plan ? [plan.ep] : []).then(
        () => undefined,
        (e: unknown) => toCnmError(e),
      );
      undo.push('remove its hosts and resolv.conf', async () => {
        await files;
        await removeFilesOf(sb);
      });
      if (plan) await programEndpoint(plan, undo);
      const failed = await files;
      if (failed) throw failed;
      const fw = linkEntries(ctx, sb);
      if (fw.length) {
        await ctx.firewall.apply({ addLinks: fw });
        undo.push('withdraw its links', () => ctx.firewall.apply({ removeLinks: fw }));
      }
      fault('sandbox.create.join');
      sb.state = 'ready';
      delete sb.owner;
      await ctx.store.txn((tx) => {
        tx.put(keys.sb(sb.id), sb);
        if (plan) markActive(tx, plan.ep);
      });
    } catch (e) {
      throw await undo.run(e, `create sandbox ${sb.name}`);
    }
    fault('sandbox.create.commit');
    if (gateway) {
      try {
        await attachGatewayBridge(ctx, sb, req.ports);
      } catch (e) {
        await removeSandbox(ctx, sb.id).catch((u: unknown) => log.warn('removing a sandbox whose gateway bridge join failed failed', { sandbox: sb.name, err: u }));
        throw e;
      }
    }
    committed = true;
    return sb;
  } finally {
    await letGo?.(committed);
  }
}

async function makeNetns(ctx: OpContext, sb: SandboxRecord, shared: SandboxRecord | undefined): Promise<void> {
  if (sb.external !== undefined) await native.netnsBindPath(sb.netns, sb.external);
  else if (sb.mode === 'host') await native.netnsBind(sb.netns, ctx.hostNetns);
  else if (sb.mode === 'container') await native.netnsBind(sb.netns, shared!.netns);
  else await native.netnsCreate(sb.netns);
}

/** Remove a sandbox: its netns, its endpoints and their addresses. */
export async function removeSandbox(ctx: OpContext, ref: string): Promise<void> {
  const sb = findSandbox(ctx.store, ref);
  const users = sandboxUsers(ctx.store, sb.id);
  if (users.length > 0) {
    throw new CnmError('ERR_SANDBOX_IN_USE', `sandbox ${sb.name} is shared by ${users.map((u) => u.name).join(', ')} (container:${sb.name}); remove those first`, {
      sandbox: sb.name,
    });
  }
  await ctx.store.txn((tx) => tx.put(keys.sb(sb.id), { ...sb, state: 'deleting', owner: currentOwner() }));
  // deleting the netns takes the sandbox ends of all veths with it; the host ends
  // are then deleted explicitly, all in flight together
  const undo = new Undo();
  undo.push('restore the sandbox record', () => ctx.store.txn((tx) => tx.put(keys.sb(sb.id), sb)));
  // its files go beside the kernel work (several file system calls off the JS
  // thread, about as long as the kernel work); the record says `deleting` from here on
  const files = removeFilesOf(sb);
  undo.push('write its files again', async () => {
    await files;
    await writeFilesOf(ctx, sb);
  });
  try {
    fault('sandbox.rm.mark');
    await leaveFirst(ctx, sb);
    await native.netnsDelete(sb.netns);
  } catch (e) {
    throw await undo.run(e, `remove sandbox ${sb.name}`);
  }
  // the netns is gone: from here on the removal only moves forward
  const fwd = new Forward(`remove sandbox ${sb.name}`);
  await fwd.step('the step after the netns delete', () => fault('sandbox.rm.netns'));
  await fwd.step('take its links out', () => dropLinks(ctx, sb));
  const eps = endpointsOfSandbox(ctx.store, sb.id);
  await leaveAll(ctx, sb, eps, fwd, true);
  await fwd.step('the step after the leaves', () => fault('sandbox.rm.leave'));
  // gone before the records are: a crash in between leaves a sandbox that reconcile
  // finishes, never files that belong to no sandbox
  await files;
  await dropSandbox(ctx, sb, eps, fwd);
  fwd.finish();
  fault('sandbox.rm.commit');
}

/**
 * Finish a sandbox whose netns is gone, or roll back one a dead process left
 * half-made (reconcile): its endpoints are taken out, its records dropped.
 */
export async function releaseSandbox(ctx: OpContext, sb: SandboxRecord): Promise<void> {
  const fwd = new Forward(`release sandbox ${sb.name}`);
  await removeFilesOf(sb);
  await fwd.step('take its links out', () => dropLinks(ctx, sb));
  const eps = endpointsOfSandbox(ctx.store, sb.id);
  await leaveAll(ctx, sb, eps, fwd);
  await dropSandbox(ctx, sb, eps, fwd);
  fwd.finish();
}

/**
 * Before the netns goes: a deleted netns lingers in the kernel for a while with
 * its links up, and they would keep answering for their addresses. The endpoints
 * whose links live in the sandbox alone (macvlan) leave first; the veth ones are
 * quiesced (their sandbox end without its addresses), which costs well under a
 * millisecond where deleting the pair costs an RCU wait: the netns delete then
 * takes the sandbox ends, the reaper what is left. A namespace the sandbox was
 * given (a runtime's) stays: there every endpoint leaves first.
 */
/** Whether leaveFirst quiesces the endpoint (else it leaves in full). */
function quiescedBy(driver: Driver, sb: SandboxRecord): boolean {
  return driver.quiesce !== undefined && !driver.leavesBeforeNetnsDelete && !sb.external;
}

async function leaveFirst(ctx: OpContext, sb: SandboxRecord): Promise<void> {
  await Promise.all(
    endpointsOfSandbox(ctx.store, sb.id).map(async (ep) => {
      const net = ctx.store.get<NetworkRecord>(keys.net(ep.networkId));
      if (!net) return;
      const driver = await ctx.drivers.resolve(net.driver);
      // a namespace someone else made outlives the sandbox: its links must go now
      if (driver.leavesBeforeNetnsDelete || sb.external) await driver.leave(net, ep, sb);
      else await driver.quiesce?.(net, ep, sb);
    }),
  );
}

/**
 * Each endpoint out of the sandbox (ports withdrawn, link gone), all in flight
 * together. `afterQuiesce`: leaveFirst quiesced the links and the netns is
 * deleted, so a quiesced endpoint's links need nothing more.
 */
async function leaveAll(ctx: OpContext, sb: SandboxRecord, eps: EndpointRecord[], fwd: Forward, afterQuiesce = false): Promise<void> {
  await Promise.all(
    eps.map((ep) =>
      fwd.step(`take endpoint ${ep.id.slice(0, 12)} out`, async () => {
        const net = ctx.store.get<NetworkRecord>(keys.net(ep.networkId));
        if (!net) return;
        const driver = await ctx.drivers.resolve(net.driver);
        if (ep.ports?.length) await driver.revokeExternalConnectivity(net, ep);
        await driver.leave(net, ep, sb, afterQuiesce && quiescedBy(driver, sb));
      }),
    ),
  );
}

/** The records of the sandbox and its endpoints in one transaction, then the addresses go back. */
async function dropSandbox(ctx: OpContext, sb: SandboxRecord, eps: EndpointRecord[], fwd: Forward): Promise<void> {
  const nets = new Map(eps.map((ep) => [ep.id, ctx.store.get<NetworkRecord>(keys.net(ep.networkId))]));
  // addresses kept in the local store go back in the commit that drops the records
  const inTxn = new Map(await Promise.all(eps.map(async (ep) => [ep.id, await releaserIn(ctx, nets.get(ep.id))] as const)));
  // this host's last endpoint on a global network: its copy goes after, and the host stops following it
  await whileHeld(ctx, [...nets.values()], async () => {
    const dropped = await fwd.step('drop the records', () =>
      ctx.store.txn((tx) => {
        for (const ep of eps) {
          dropEndpointRecords(tx, ep);
          inTxn.get(ep.id)?.(tx, ep);
        }
        dropSandboxRecords(tx, sb);
        // its links retired on the way out wait for the reaper
        if (eps.length > 0) ctx.reaper.note(tx);
      }),
    );
    if (dropped) await Promise.all(eps.filter((ep) => !inTxn.get(ep.id)).map((ep) => releaseAddresses(ctx, nets.get(ep.id), ep)));
  });
}

function dropSandboxRecords(tx: StoreTxn, sb: SandboxRecord): void {
  unreserveLinks(tx, sb.id, sb.links ?? []);
  tx.del(keys.sb(sb.id));
  if (tx.get(keys.sbName(sb.name)) === sb.id) tx.del(keys.sbName(sb.name));
  if (sb.sharedWith) tx.del(keys.sbUser(sb.sharedWith, sb.id));
}

/** A half-made endpoint of a dead process: out of the kernel (best effort), then forgotten. */
export async function rollbackEndpoint(ctx: OpContext, net: NetworkRecord, ep: EndpointRecord): Promise<void> {
  const fwd = new Forward(`roll back endpoint ${ep.id.slice(0, 12)}`);
  const sb = ctx.store.get<SandboxRecord>(keys.sb(ep.sandboxId)) ?? { id: ep.sandboxId, name: '', netns: '', mode: 'network', created: '', state: 'deleting' };
  await fwd.step('take it out of the kernel', async () => (await ctx.drivers.resolve(net.driver)).leave(net, ep, sb));
  await fwd.step('drop its records', () => forgetEndpoint(ctx, net, ep));
  fwd.finish();
}
