/**
 * The predefined networks, made when the host is set up: `none` (null driver),
 * `host` (host driver) and `bridge` (device cnm0, or Docker's -b/--bip/--mtu).
 * When the default bridge's settings change between runs it is made again, as
 * long as no sandbox uses it.
 */
import { BridgeOptions } from '../drivers/bridge-options.js';
import { CnmError } from '../errors.js';
import { native } from '../native.js';
import { formatCidr, parseCidr } from '../net/ip.js';
import type { ControllerOptions, NetworkCreateOptions } from '../options.js';
import { endpointsOfNetwork, keys } from '../records.js';
import type { NetworkRecord } from '../types.js';
import type { OpContext } from './context.js';
import { createNetwork, rollbackNetwork } from './networks.js';

export const DEFAULT_BRIDGE_DEVICE = 'cnm0';

export async function ensurePredefined(ctx: OpContext, opts: ControllerOptions): Promise<void> {
  for (const [name, driver] of [
    ['none', 'null'],
    ['host', 'host'],
  ] as const) {
    if (ctx.store.get(keys.netName(name)) === undefined) await createNetwork(ctx, { name, driver }, true);
  }
  const wanted = await defaultBridgeRequest(ctx, opts);
  const id = ctx.store.get<string>(keys.netName('bridge'));
  const cur = id === undefined ? undefined : ctx.store.get<NetworkRecord>(keys.net(id));
  if (cur && sameDefaultBridge(cur, wanted)) return;
  if (cur) {
    if (endpointsOfNetwork(ctx.store, cur.id).length > 0) {
      throw new CnmError('ERR_NETWORK_IN_USE', 'the default bridge settings (bip, bridge, mtu) changed but sandboxes still use the default bridge; remove them first', {
        network: 'bridge',
      });
    }
    await (await ctx.drivers.resolve(cur.driver)).deleteNetwork(cur);
    await rollbackNetwork(ctx, cur);
  }
  await createNetwork(ctx, wanted, true);
}

async function defaultBridgeRequest(ctx: OpContext, opts: ControllerOptions): Promise<NetworkCreateOptions> {
  const device = opts.bridge ?? DEFAULT_BRIDGE_DEVICE;
  const options: Record<string, string> = {
    [BridgeOptions.defaultBridge]: 'true',
    [BridgeOptions.icc]: String(opts.icc !== false),
    [BridgeOptions.masquerade]: 'true',
    [BridgeOptions.hostBinding]: opts.ip ?? '0.0.0.0',
    [BridgeOptions.name]: device,
  };
  if (opts.mtu !== undefined) options[BridgeOptions.mtu] = String(opts.mtu);
  const req: NetworkCreateOptions = { name: 'bridge', driver: 'bridge', options };
  if (opts.bip !== undefined) {
    const c = parseCidr(opts.bip, 'bip');
    req.ipam = [{ subnet: formatCidr(c), gateway: opts.bip.split('/')[0] }];
  } else if (opts.bridge !== undefined) {
    // an existing device: use the address it already has, as Docker does
    const link = (await native.listLinks(ctx.hostNetns)).find((l) => l.name === opts.bridge);
    if (!link) throw new CnmError('ERR_LINK_NOT_FOUND', `bridge device ${opts.bridge} does not exist; create it first or drop -b`, { ifname: opts.bridge });
    const v4 = link.addresses.find((a) => a.includes('.'));
    if (v4) req.ipam = [{ subnet: formatCidr(parseCidr(v4)), gateway: v4.split('/')[0] }];
  }
  return req;
}

const sortedOptions = (o: Record<string, string>) => JSON.stringify(Object.entries(o).sort());

function sameDefaultBridge(cur: NetworkRecord, wanted: NetworkCreateOptions): boolean {
  if (sortedOptions(cur.options) !== sortedOptions(wanted.options ?? {})) return false;
  const w = wanted.ipam?.[0];
  if (!w) return true;
  const c = cur.ipam.config[0];
  return c?.subnet === w.subnet && c?.gateway === w.gateway;
}
