/**
 * Docker's docker_gwbridge: a sandbox on an overlay network reaches the outside
 * world (and has its published ports) through a second interface, on a local
 * bridge network of each host, `cnm_gwbridge` (masqueraded, no traffic between
 * its sandboxes). It is made on first need, joined by a sandbox that has no
 * default route yet when it connects to a non-internal global network, and left
 * with the sandbox's last such network. Internal overlays reach nothing outside.
 */
import { BridgeOptions } from '../drivers/bridge-options.js';
import { CnmError } from '../errors.js';
import { log } from '../log.js';
import type { PortBinding } from '../ports.js';
import { allNetworks, endpointsOfSandbox, keys } from '../records.js';
import type { NetworkRecord, SandboxRecord } from '../types.js';
import type { OpContext } from './context.js';
import { connect, disconnect } from './endpoints.js';
import { createNetwork } from './networks.js';

export const GATEWAY_BRIDGE = 'cnm_gwbridge';

/** Whether joining `net` brings the gateway bridge along. */
export function needsGatewayBridge(net: NetworkRecord): boolean {
  return net.scope === 'global' && !net.internal;
}

/** Gateway bridges being made by this process, per host: concurrent connects share one. */
const making = new WeakMap<OpContext, Promise<NetworkRecord>>();

/** The gateway bridge network, made if this host has none yet. */
async function ensureGatewayBridge(ctx: OpContext): Promise<NetworkRecord> {
  const find = () => allNetworks(ctx.store).find((n) => n.name === GATEWAY_BRIDGE && n.state === 'ready');
  const have = find();
  if (have) return have;
  let p = making.get(ctx);
  if (!p) {
    p = makeGatewayBridge(ctx, find);
    making.set(ctx, p);
    const mine = p;
    const done = () => {
      if (making.get(ctx) === mine) making.delete(ctx);
    };
    mine.then(done, done);
  }
  return p;
}

async function makeGatewayBridge(ctx: OpContext, find: () => NetworkRecord | undefined): Promise<NetworkRecord> {
  try {
    return await createNetwork(ctx, {
      name: GATEWAY_BRIDGE,
      options: { [BridgeOptions.name]: GATEWAY_BRIDGE, [BridgeOptions.icc]: 'false', [BridgeOptions.masquerade]: 'true' },
    });
  } catch (e) {
    if (!(e instanceof CnmError) || e.code !== 'ERR_NAME_CONFLICT') throw e;
    // made by another process meanwhile: wait (bounded) until it is ready
    for (let i = 0; i < 100; i++) {
      const made = find();
      if (made) return made;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw e;
  }
}

/** Join the gateway bridge if the sandbox has no default route yet (with `ports` published on it). */
export async function attachGatewayBridge(ctx: OpContext, sb: SandboxRecord, ports: PortBinding[] | undefined): Promise<void> {
  const mine = endpointsOfSandbox(ctx.store, sb.id);
  if (mine.some((e) => e.defaultGateway)) {
    if (ports?.length) throw new CnmError('ERR_INVALID_ARGUMENT', `sandbox ${sb.name} already reaches the outside through another network: publish its ports there`, { sandbox: sb.name });
    return;
  }
  const gw = await ensureGatewayBridge(ctx);
  if (mine.some((e) => e.networkId === gw.id)) return;
  await connect(ctx, gw.id, sb.id, { ports });
}

/** Leave the gateway bridge when the sandbox has no non-internal global network left. */
export async function detachGatewayBridge(ctx: OpContext, sb: SandboxRecord): Promise<void> {
  const mine = endpointsOfSandbox(ctx.store, sb.id);
  const nets = mine.map((e) => ctx.store.get<NetworkRecord>(keys.net(e.networkId)));
  if (nets.some((n) => n && needsGatewayBridge(n))) return;
  const gw = nets.find((n) => n?.name === GATEWAY_BRIDGE);
  if (!gw) return;
  await disconnect(ctx, gw.id, sb.id).catch((e: unknown) => log.warn('leaving the gateway bridge failed', { sandbox: sb.name, err: e }));
}
