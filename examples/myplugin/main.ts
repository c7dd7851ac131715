/**
 * myplugin: a remote network driver plugin written with cnm's plugin SDK that
 * behaves like the built-in bridge driver: one Linux bridge per network, one
 * veth pair per endpoint with one end on the bridge and the other handed to
 * Docker / cnm, which moves it into the container as eth0, eth1, …
 *
 *   node --import tsx examples/myplugin/main.ts [--socket PATH] [--host-netns NS]
 *
 * --socket      default /run/docker/plugins/myplugin.sock (Docker finds the plugin by it)
 * --host-netns  the named netns the bridges and veths go in (env CNM_HOST_NETNS);
 *               default: the plugin's own netns, i.e. the host
 */
import { execFile } from 'node:child_process';
import { parseArgs, promisify } from 'node:util';
import { native } from 'cnm';
import { type IPAMData, type NetworkDriverPlugin, PluginOptions, servePlugin } from 'cnm/plugin';

const run = promisify(execFile);

const { values } = parseArgs({
  options: {
    socket: { type: 'string', default: '/run/docker/plugins/myplugin.sock' },
    'host-netns': { type: 'string' },
  },
});
const hostNetns = values['host-netns'] ?? process.env.CNM_HOST_NETNS ?? null;

/** `ip` in the host netns; arguments are passed as a list, never through a shell. */
async function ip(...args: string[]): Promise<void> {
  await run('ip', [...(hostNetns ? ['-n', hostNetns] : []), ...args]);
}

interface Net {
  bridge: string;
  created: boolean;
  gateway?: string;
  gateway6?: string;
  mtu?: number;
}
interface Ep {
  networkId: string;
  /** the end that stays on the bridge */
  hostIf: string;
  /** the end handed over at Join */
  srcIf: string;
}

const networks = new Map<string, Net>();
const endpoints = new Map<string, Ep>();

const noPrefix = (cidr?: string) => cidr?.split('/')[0];
const gatewayOf = (data: IPAMData[]) => noPrefix(data.find((d) => d.Gateway)?.Gateway);

const driver: NetworkDriverPlugin = {
  getCapabilities: () => ({ Scope: 'local', ConnectivityScope: 'local' }),

  async createNetwork(req) {
    const generic = (req.Options[PluginOptions.generic] ?? {}) as Record<string, string>;
    const bridge = generic['com.docker.network.bridge.name'] ?? `mp-${req.NetworkID.slice(0, 12)}`;
    const mtuOpt = generic['com.docker.network.driver.mtu'];
    const mtu = mtuOpt ? Number(mtuOpt) : undefined;
    const addresses = [...req.IPv4Data, ...req.IPv6Data].flatMap((d) => (d.Gateway ? [d.Gateway] : []));
    const info = await native.ensureBridge({ netns: hostNetns, name: bridge, mtu: mtu ?? null, addresses, up: true });
    networks.set(req.NetworkID, { bridge, created: info.created, gateway: gatewayOf(req.IPv4Data), gateway6: gatewayOf(req.IPv6Data), mtu });
  },

  async deleteNetwork(req) {
    const n = networks.get(req.NetworkID);
    if (!n) return;
    if (n.created) await native.deleteLink(hostNetns, n.bridge);
    networks.delete(req.NetworkID);
  },

  createEndpoint(req) {
    if (!networks.has(req.NetworkID)) throw new Error(`network ${req.NetworkID} not found`);
    const short = req.EndpointID.slice(0, 10);
    endpoints.set(req.EndpointID, { networkId: req.NetworkID, hostIf: `mph${short}`, srcIf: `mpc${short}` });
    // the addresses come from the caller's IPAM; the MAC is left to the kernel
    return {};
  },

  async deleteEndpoint(req) {
    endpoints.delete(req.EndpointID);
  },

  endpointOperInfo(req) {
    const ep = endpoints.get(req.EndpointID);
    return { Value: ep ? { hostInterface: ep.hostIf } : {} };
  },

  async join(req) {
    const ep = endpoints.get(req.EndpointID);
    const net = networks.get(req.NetworkID);
    if (!ep || !net) throw new Error(`endpoint ${req.EndpointID} not found`);
    const mtu = net.mtu ? ['mtu', String(net.mtu)] : [];
    await ip('link', 'add', ep.hostIf, ...mtu, 'type', 'veth', 'peer', 'name', ep.srcIf, ...mtu);
    try {
      await ip('link', 'set', ep.hostIf, 'master', net.bridge, 'up');
    } catch (e) {
      await native.deleteLink(hostNetns, ep.hostIf).catch(() => undefined);
      throw e;
    }
    return {
      InterfaceName: { SrcName: ep.srcIf, DstPrefix: 'eth' },
      Gateway: net.gateway ?? '',
      GatewayIPv6: net.gateway6 ?? '',
    };
  },

  async leave(req) {
    const ep = endpoints.get(req.EndpointID);
    // deleting either end removes the pair; it may be gone already with its sandbox
    if (ep) await native.deleteLink(hostNetns, ep.hostIf);
  },
};

const server = await servePlugin({ socket: values.socket!, driver });
console.log(`myplugin listening on ${server.socket}${hostNetns ? ` (host netns ${hostNetns})` : ''}`);
const stop = () => {
  void server.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
