// Someone else changed the kernel under cnm: a bridge deleted, a veth moved
// (off its bridge, to another netns, from either end), an address taken away or
// added by hand, the firewall table flushed or deleted. For each: `system
// check` (the library's checkState) reports it and changes nothing, reconcile
// restores it (or, for an address added by hand, reports it and leaves it),
// traffic flows again (ping between sandboxes, a published port from outside),
// and the check is clean afterwards.
import { execFileSync } from 'node:child_process';
import test, { type ExecutionContext } from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { native } from '../ts/native.js';
import type { Sandbox } from '../ts/sandbox.js';
import { cnm } from './helpers/cli.js';
import { type IsolatedHost, eventually, inNs, ipj, isolatedHost, pings, sysbin } from './helpers/host.js';
import { HOST_IP, wireOutside } from './helpers/outside.js';
import { startEchoServer, tcpTry } from './helpers/tcp.js';
import { backendsHere } from './helpers/tools.js';

const BRIDGE = 'brdrift';
const PORT = 30811;

interface World {
  host: IsolatedHost;
  ctl: NetworkController;
  outside: string;
  a: Sandbox;
  b: Sandbox;
  backend: 'nftables' | 'iptables';
  stop(): Promise<void>;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** A host with one network, two sandboxes, b publishing PORT to an echo server. */
async function world(tag: string, backend: 'nftables' | 'iptables' = 'nftables'): Promise<World> {
  const host = await isolatedHost(tag);
  const outside = host.name('out');
  await wireOutside(host.ns, outside);
  const ctl = await host.open({ firewall: backend });
  await ctl.createNetwork({ name: 'dnet', ipam: [{ subnet: '10.64.0.0/24' }], options: { 'com.docker.network.bridge.name': BRIDGE } });
  const a = await ctl.createSandbox({ name: host.name('a'), net: 'dnet', ip: '10.64.0.10' });
  const b = await ctl.createSandbox({ name: host.name('b'), net: 'dnet', ip: '10.64.0.11', ports: [{ containerPort: 80, hostPort: PORT }] });
  const server = await startEchoServer(b.netns, '0.0.0.0', 80);
  return {
    host,
    ctl,
    outside,
    a,
    b,
    backend,
    async stop() {
      server.kill();
      await host.cleanup();
    },
  };
}

/** Everything the world promises: a reaches b and its gateway, the published port answers from outside. */
function flows(w: World): { ping: boolean; gateway: boolean; port: boolean } {
  return {
    ping: pings(w.a.netns, '10.64.0.11'),
    gateway: pings(w.a.netns, '10.64.0.1'),
    port: tcpTry(w.outside, HOST_IP, PORT, 'drift', 1500) === 'drift',
  };
}

const ALL = { ping: true, gateway: true, port: true };

/** The host's view of a sandbox's endpoint: its host-side veth name and sandbox interface. */
function endpointOf(w: World, sb: Sandbox): { hostIfname: string; ifname: string } {
  const ep = sb.endpoints()[0]!.record;
  return { hostIfname: ep.hostIfname, ifname: ep.ifname };
}

/**
 * The host's links as a change would show: name, MAC, master, MTU, set up or not.
 * Carrier and operstate are left out: the kernel updates them on its own, up to
 * a second late (an empty bridge made at set-up loses its carrier meanwhile).
 */
function hostLinks(w: World): unknown[] {
  return ipj(w.host.ns, 'link', 'show').map((l) => ({
    ifname: l.ifname,
    address: l.address,
    master: l.master,
    mtu: l.mtu,
    up: (l.flags as string[]).includes('UP'),
  }));
}

/**
 * The check reports the drift (matching `finding`) and changes nothing; reconcile
 * restores everything; the check is clean after.
 */
async function checkThenRepair(t: ExecutionContext, w: World, finding: RegExp, opts: { notice?: boolean } = {}): Promise<void> {
  const linksBefore = hostLinks(w);
  const check = await w.ctl.checkState();
  const found = [...check.kernel, ...check.notices];
  t.false(check.clean, 'the check finds the drift');
  t.true(
    found.some((f) => finding.test(f)),
    `the check names it: ${JSON.stringify(found)}`,
  );
  t.deepEqual(hostLinks(w), linksBefore, 'the check changed no link');
  const r = await w.ctl.reconcile();
  t.deepEqual(r.errors, [], 'reconcile had no failure');
  const again = await w.ctl.checkState();
  if (opts.notice) {
    t.deepEqual(again.kernel, [], `nothing left to repair: ${JSON.stringify(again.kernel)}`);
    t.true(
      again.notices.some((n) => finding.test(n)),
      'what is left as it is stays reported',
    );
  } else {
    t.true(again.clean, `clean after reconcile: ${JSON.stringify(again)}`);
  }
}

test.serial('a bridge deleted by hand: check reports it, reconcile makes it again with its ports and traffic flows', async (t) => {
  const w = await world('drbr');
  try {
    t.deepEqual(flows(w), ALL, 'before');
    t.true((await w.ctl.checkState()).clean, 'clean at the start');
    ip('-n', w.host.ns, 'link', 'del', BRIDGE);
    t.false(flows(w).ping, 'the deletion cut the sandboxes apart');
    await checkThenRepair(t, w, /recreate missing bridge brdrift/);
    t.is(ipj<Array<{ master?: string }>>(w.host.ns, 'link', 'show', 'master', BRIDGE).length, 2, 'both veths are ports of the new bridge');
    t.deepEqual(flows(w), ALL, 'after');
  } finally {
    await w.stop();
  }
});

test.serial('a host veth taken off its bridge, and one moved to another netns: each restored', async (t) => {
  const w = await world('drveth');
  try {
    const ea = endpointOf(w, w.a);
    ip('-n', w.host.ns, 'link', 'set', ea.hostIfname, 'nomaster');
    t.false(flows(w).ping);
    await checkThenRepair(t, w, new RegExp(`${ea.hostIfname} is not on bridge ${BRIDGE}`));
    t.deepEqual(flows(w), ALL);

    // the host end moved away: the pair is made again, the moved end goes with the old pair
    const elsewhere = w.host.name('else');
    await native.netnsCreate(elsewhere);
    ip('-n', w.host.ns, 'link', 'set', ea.hostIfname, 'netns', elsewhere);
    t.false(flows(w).ping);
    await checkThenRepair(t, w, /host end .* is gone from the host/);
    t.deepEqual(flows(w), ALL);
    t.deepEqual(
      ipj<Array<{ ifname: string }>>(elsewhere, 'link', 'show').map((l) => l.ifname),
      ['lo'],
      'the moved end went with its old pair',
    );

    // the sandbox end moved away
    const eb = endpointOf(w, w.b);
    ip('-n', w.b.netns, 'link', 'set', eb.ifname, 'netns', elsewhere);
    t.false(flows(w).port);
    await checkThenRepair(t, w, new RegExp(`${eb.ifname} is gone from the sandbox`));
    t.deepEqual(flows(w), ALL);
    const mac = ipj<Array<{ address: string }>>(w.b.netns, 'link', 'show', 'dev', eb.ifname)[0]!.address;
    t.is(mac, w.b.endpoints()[0]!.mac, 'made again with the MAC of its record');
  } finally {
    await w.stop();
  }
});

test.serial('addresses: one taken away is put back; one added by hand is reported and left', async (t) => {
  const w = await world('draddr');
  try {
    const ea = endpointOf(w, w.a);
    ip('-n', w.a.netns, 'addr', 'del', '10.64.0.10/24', 'dev', ea.ifname);
    t.false(flows(w).ping);
    await checkThenRepair(t, w, new RegExp(`${ea.ifname} lacks 10.64.0.10/24`));
    t.deepEqual(flows(w), ALL);

    // the default route taken away
    ip('-n', w.a.netns, 'route', 'del', 'default');
    await checkThenRepair(t, w, /default route through 10.64.0.1 is gone/);
    t.regex(ip('-n', w.a.netns, 'route', 'show', 'default'), /via 10\.64\.0\.1/);

    // the bridge's gateway address taken away
    ip('-n', w.host.ns, 'addr', 'del', '10.64.0.1/24', 'dev', BRIDGE);
    t.false(flows(w).gateway);
    await checkThenRepair(t, w, /put back its address 10.64.0.1\/24/);
    // the host's neighbour entry for the sandbox failed while the address was gone: it may take a retry
    t.true(await eventually(() => pings(w.a.netns, '10.64.0.1'), 6000), 'the gateway answers again');
    t.deepEqual(flows(w), ALL);

    // added by hand: inside the subnet on the bridge, and inside a sandbox
    ip('-n', w.host.ns, 'addr', 'add', '10.64.0.200/24', 'dev', BRIDGE);
    ip('-n', w.a.netns, 'addr', 'add', '192.0.2.77/32', 'dev', ea.ifname);
    const check = await w.ctl.checkState();
    t.deepEqual(check.kernel, [], 'nothing to repair');
    t.true(check.notices.some((n) => /10\.64\.0\.200\/24 on bridge brdrift .*inside subnet 10\.64\.0\.0\/24/.test(n)), JSON.stringify(check.notices));
    t.true(check.notices.some((n) => n.includes(`192.0.2.77/32 on ${ea.ifname}`)), JSON.stringify(check.notices));
    const r = await w.ctl.reconcile();
    t.is(r.notices.length, 2, 'reconcile reports both');
    t.regex(ip('-n', w.host.ns, 'addr', 'show', 'dev', BRIDGE), /10\.64\.0\.200/, 'and leaves them');
    t.regex(ip('-n', w.a.netns, 'addr', 'show', 'dev', ea.ifname), /192\.0\.2\.77/);
    // the CLI: check exits 1 and prints them, reconcile prints them as notices
    const g = ['--state-dir', w.host.stateDir, '--host-netns', w.host.ns];
    const c = cnm([...g, 'system', 'check']);
    t.is(c.code, 1, c.stdout + c.stderr);
    t.regex(c.stdout, /notice: address 10\.64\.0\.200\/24 on bridge brdrift/);
    t.regex(cnm([...g, 'system', 'reconcile']).stdout, /notice: address 192\.0\.2\.77\/32/);
    t.deepEqual(flows(w), ALL);
  } finally {
    await w.stop();
  }
});

for (const backend of backendsHere()) {
  test.serial(`${backend}: the firewall flushed or deleted by hand: check reports it, reconcile restores every entry`, async (t) => {
    const w = await world(`drfw${backend.slice(0, 3)}`, backend);
    try {
      t.deepEqual(flows(w), ALL);
      if (backend === 'nftables') {
        const nft = (...a: string[]) => inNs(w.host.ns, sysbin('nft'), ...a);
        // a flush keeps the tables, their sets and every element: only the rules go
        nft('flush', 'table', 'ip', 'cnm');
        const st = await native.firewallState('nftables', w.host.ns);
        t.false(st.baseIntact);
        t.true(st.ports.length > 0, 'the port is still listed while no rule looks at it');
        t.false(flows(w).port, 'and it no longer answers');
        await checkThenRepair(t, w, /put back the firewall's base ruleset \(nftables\)/);
        t.deepEqual(flows(w), ALL);
        nft('delete', 'table', 'ip', 'cnm');
        nft('delete', 'table', 'ip6', 'cnm');
      } else {
        const ipt = (...a: string[]) => inNs(w.host.ns, sysbin('iptables'), ...a);
        ipt('-t', 'nat', '-F');
        ipt('-t', 'filter', '-F');
        t.false((await native.firewallState('iptables', w.host.ns)).baseIntact);
        t.false(flows(w).port);
        await checkThenRepair(t, w, /put back the firewall's base ruleset \(iptables\)|restore port mapping tcp\/30811/);
        t.deepEqual(flows(w), ALL);
        // every rule gone, chains too
        ipt('-t', 'nat', '-F');
        ipt('-t', 'nat', '-X');
      }
      t.false(flows(w).port);
      // any command that sets the host up finds the firewall made again and reconciles
      const g = ['--state-dir', w.host.stateDir, '--host-netns', w.host.ns, '--firewall', backend];
      const r = cnm([...g, 'network', 'create', 'another']);
      t.is(r.code, 0, r.stderr);
      t.deepEqual(flows(w), ALL, 'the next command that changes something put every entry back');
      t.true((await w.ctl.checkState()).clean);
    } finally {
      await w.stop();
    }
  });
}
