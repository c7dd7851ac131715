// The native firewall (crates/netcore/src/firewall) against a real kernel,
// with real traffic, for both backends. Each test builds its own "host" netns
// with two bridges and three sandboxes, plus an "outside" netns wired to the
// host by a veth pair (192.0.2.1 host side, 192.0.2.2 outside). Traffic only
// goes between namespaces this file makes.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { backendsHere, skipReason } from './helpers/tools.js';
import test, { type ExecutionContext } from 'ava';

import * as native from '../index.js';
import { startEchoServer, tcpExchange } from './helpers/tcp.js';

const prefix = `cnmt-fwn-${process.pid}-`;
const created: string[] = [];
const children: ChildProcess[] = [];

type Backend = 'nftables' | 'iptables';

// System tools only: under npx, PATH starts with node_modules/.bin (which has an unrelated `nft`).
const env = { ...process.env, PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

function inNetns(netns: string, ...cmd: string[]): string {
  return execFileSync('ip', ['netns', 'exec', netns, ...cmd], { encoding: 'utf8', timeout: 10000, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'ignore' });
}

function pings(from: string, to: string): boolean {
  try {
    inNetns(from, 'ping', '-c', '1', '-i', '0.2', '-w', '2', to);
    return true;
  } catch {
    return false;
  }
}

const UDP_ECHO = `
const dgram = require('node:dgram');
const [host, port] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(Number(port), host, () => console.log('ready'));
`;

const UDP_CLIENT = `
const dgram = require('node:dgram');
const [host, port, msg] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 2000);
s.on('message', (m) => { console.log(String(m)); clearTimeout(timer); s.close(); });
s.send(msg, Number(port), host);
`;

/** Answers every connection with the peer address it sees, then closes. */
const PEER_SERVER = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
net.createServer((s) => s.end(s.remoteAddress + '\\n')).listen(Number(port), host, () => console.log('ready'));
`;

const PEER_CLIENT = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), timeout: 3000 });
let got = '';
s.on('data', (d) => { got += d; });
s.on('end', () => { console.log(got.trim()); });
s.on('timeout', () => { console.error('timeout'); process.exit(2); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

async function startNode(ns: string, script: string, ...args: string[]): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
  });
  return child;
}

function udpExchange(ns: string, host: string, port: number, msg: string): string {
  return inNetns(ns, process.execPath, '-e', UDP_CLIENT, host, String(port), msg).trim();
}

/** The peer address the outside server saw, or '' when the connection failed. */
function peerSeen(ns: string, host: string, port: number): string {
  try {
    return inNetns(ns, process.execPath, '-e', PEER_CLIENT, host, String(port)).trim();
  } catch {
    return '';
  }
}

interface Topo {
  host: string;
  outside: string;
  s1: string;
  s2: string;
  s3: string;
  net0: native.FirewallNetwork;
  net1: native.FirewallNetwork;
  tcp: native.PortMapping;
  udp: native.PortMapping;
}

async function topology(name: string): Promise<Topo> {
  const p = `${prefix}${name}-`;
  const [host, outside, s1, s2, s3] = ['h', 'o', 's1', 's2', 's3'].map((n) => p + n);
  for (const n of [host, outside, s1, s2, s3]) {
    created.push(n);
    await native.netnsCreate(n);
  }
  await native.ensureBridge({ netns: host, name: 'br0', addresses: ['10.77.1.1/24'] });
  await native.ensureBridge({ netns: host, name: 'br1', addresses: ['10.77.2.1/24'] });
  const sandboxes: Array<[string, string, string, string]> = [
    [s1, 'v1', 'br0', '10.77.1.2'],
    [s2, 'v2', 'br0', '10.77.1.3'],
    [s3, 'v3', 'br1', '10.77.2.2'],
  ];
  for (const [ns, hostIfname, master, addr] of sandboxes) {
    await native.attachVeth({
      hostNetns: host,
      sandboxNetns: ns,
      hostIfname,
      master,
      ifname: 'eth0',
      addresses: [`${addr}/24`],
      gateway: addr.replace(/\.\d+$/, '.1'),
    });
  }
  await native.sysctlSet(host, 'net.ipv4.ip_forward', '1');
  await native.sysctlSet(host, 'net.ipv4.conf.br0.route_localnet', '1');
  await native.sysctlSet(host, 'net.ipv4.conf.br1.route_localnet', '1');
  ip('-n', host, 'link', 'add', 'out0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside);
  ip('-n', host, 'addr', 'add', '192.0.2.1/24', 'dev', 'out0');
  ip('-n', host, 'link', 'set', 'out0', 'up');
  ip('-n', outside, 'addr', 'add', '192.0.2.2/24', 'dev', 'eth0');
  ip('-n', outside, 'link', 'set', 'eth0', 'up');
  return {
    host,
    outside,
    s1,
    s2,
    s3,
    net0: { bridge: 'br0', subnets: ['10.77.1.0/24'], masquerade: true, icc: true, internal: false, tag: 'net0' },
    net1: { bridge: 'br1', subnets: ['10.77.2.0/24'], masquerade: true, icc: true, internal: false, tag: 'net1' },
    tcp: { proto: 'tcp', hostPort: 8080, containerIp: '10.77.1.2', containerPort: 7000, bridge: 'br0', tag: 'ep1' },
    udp: { proto: 'udp', hostPort: 5353, containerIp: '10.77.1.2', containerPort: 7001, bridge: 'br0', tag: 'ep1' },
  };
}

/** What the netns holds that is ours, as the tools see it. */
function leftovers(ns: string): string[] {
  const found: string[] = [];
  if (/table ip cnm\b/.test(inNetns(ns, 'nft', 'list', 'tables'))) found.push('table ip cnm');
  for (const line of inNetns(ns, 'iptables-save').split('\n')) {
    if (line.includes('CNM-')) found.push(line);
  }
  return found;
}

function strip(s: native.FirewallState) {
  return {
    networks: s.networks.map(({ bridge, masquerade, icc, internal }) => ({ bridge, masquerade, icc, internal })),
    ports: s.ports.map((p) => `${p.proto}/${p.hostIp ?? '*'}:${p.hostPort}->${p.containerIp}:${p.containerPort}`),
  };
}

async function rejectsWith(t: ExecutionContext, p: Promise<unknown>, code: string) {
  const err = await t.throwsAsync(p);
  t.is((err as Error & { code?: string }).code, code, err?.message);
  t.is(JSON.parse(err!.message).code, code);
}

test.after.always(async () => {
  for (const c of children) c.kill('SIGKILL');
  await native.netnsDeleteMany(created).catch(() => 0);
  for (const n of created) {
    try {
      execFileSync('ip', ['netns', 'delete', n], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

for (const backend of backendsHere()) {
  test.serial(`${backend}: publish, masquerade, isolation, icc, removal and reset with real traffic`, async (t) => {
    const topo = await topology(backend.slice(0, 3));
    const { host, outside, s1, s2, s3, net0, net1, tcp, udp } = topo;
    const be: Backend = backend;

    t.true(await native.firewallInit(be, host), 'a fresh netns: the base ruleset is made');
    t.false(await native.firewallInit(be, host), 'idempotent: nothing to make again');
    await native.applyFirewall({ backend: be, netns: host, addNetworks: [net0, net1], addPorts: [tcp, udp] });

    const state = await native.firewallState(be, host);
    t.deepEqual(strip(state), {
      networks: [
        { bridge: 'br0', masquerade: true, icc: true, internal: false },
        { bridge: 'br1', masquerade: true, icc: true, internal: false },
      ],
      ports: ['tcp/*:8080->10.77.1.2:7000', 'udp/*:5353->10.77.1.2:7001'],
    });
    if (be === 'iptables') {
      t.deepEqual(
        state.networks.map((n) => [n.tag, n.subnets?.[0]]),
        [
          ['net0', '10.77.1.0/24'],
          ['net1', '10.77.2.0/24'],
        ],
      );
      t.deepEqual(
        state.ports.map((p) => [p.tag, p.bridge]),
        [
          ['ep1', 'br0'],
          ['ep1', 'br0'],
        ],
      );
    }

    // The same host port again: refused, nothing changed.
    await rejectsWith(
      t,
      native.applyFirewall({ backend: be, netns: host, addPorts: [{ ...tcp, containerIp: '10.77.1.3' }] }),
      'ERR_PORT_ALLOCATED',
    );
    await rejectsWith(
      t,
      native.applyFirewall({ backend: be, netns: host, addPorts: [{ ...tcp, proto: 'icmp' as 'tcp' }] }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      t,
      native.applyFirewall({ backend: be, netns: host, addNetworks: [{ ...net0, bridge: 'a/b' }] }),
      'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(
      t,
      native.applyFirewall({ backend: be, netns: host, addPorts: [{ ...tcp, hostPort: 70000 }] }),
      'ERR_INVALID_ARGUMENT',
    );
    t.is((await native.firewallState(be, host)).ports.length, 2);

    // (1) published TCP port: from outside, from the host via loopback, hairpin from a sandbox.
    children.push(await startEchoServer(s1, '0.0.0.0', 7000));
    t.is(tcpExchange(outside, '192.0.2.1', 8080, 'from-outside'), 'from-outside');
    t.is(tcpExchange(host, '127.0.0.1', 8080, 'from-host'), 'from-host');
    t.is(tcpExchange(s2, '10.77.1.1', 8080, 'hairpin'), 'hairpin');

    // (2) UDP published port from outside.
    await startNode(s1, UDP_ECHO, '0.0.0.0', '7001');
    t.is(udpExchange(outside, '192.0.2.1', 5353, 'udp-hello'), 'udp-hello');

    // (3) masquerade: the outside sees the host's address.
    await startNode(outside, PEER_SERVER, '192.0.2.2', '9000');
    t.is(peerSeen(s1, '192.0.2.2', 9000), '192.0.2.1');
    t.is(peerSeen(s3, '192.0.2.2', 9000), '192.0.2.1');

    // (4) isolation between bridges; same bridge talks (icc).
    t.true(pings(s1, '10.77.1.3'), 'same bridge, icc=true');
    t.false(pings(s1, '10.77.2.2'), 'br0 -> br1 must be dropped');
    t.false(pings(s3, '10.77.1.2'), 'br1 -> br0 must be dropped');

    // (5) icc=false (re-adding replaces the flags) blocks sandbox <-> sandbox,
    // the published port still works from outside.
    const net0NoIcc = { ...net0, icc: false };
    await native.applyFirewall({ backend: be, netns: host, addNetworks: [net0NoIcc] });
    t.false(pings(s1, '10.77.1.3'), 'icc=false');
    t.false(pings(s2, '10.77.1.2'), 'icc=false');
    t.is(tcpExchange(outside, '192.0.2.1', 8080, 'still-published'), 'still-published');
    t.deepEqual(
      strip(await native.firewallState(be, host)).networks.map((n) => [n.bridge, n.icc]),
      [
        ['br0', false],
        ['br1', true],
      ],
    );

    // (6) remove everything: state empty, traffic stops.
    await native.applyFirewall({
      backend: be,
      netns: host,
      removeNetworks: [net0NoIcc, net1],
      removePorts: [tcp, udp],
    });
    // removing what is absent is no error
    await native.applyFirewall({ backend: be, netns: host, removeNetworks: [net0NoIcc], removePorts: [tcp] });
    t.deepEqual(await native.firewallState(be, host), { networks: [], ports: [], links: [], baseIntact: true });
    t.throws(() => tcpExchange(outside, '192.0.2.1', 8080, 'gone'));
    t.throws(() => udpExchange(outside, '192.0.2.1', 5353, 'gone'));
    // without masquerade the outside has no route back to 10.77.1.0/24
    t.is(peerSeen(s1, '192.0.2.2', 9000), '', 'no masquerade any more');

    await native.firewallReset(be, host);
    await native.firewallReset(be, host); // nothing left: still fine
    t.deepEqual(leftovers(host), []);
    t.deepEqual(await native.firewallState(be, host), { networks: [], ports: [], links: [], baseIntact: false }, 'nothing left: no base ruleset either');
  });
}

test.serial('nftables and iptables resets leave each other alone; none does nothing', async (t) => {
  const ns = `${prefix}both`;
  created.push(ns);
  await native.netnsCreate(ns);
  await native.firewallInit('nftables', ns);
  await native.firewallInit('iptables', ns);
  await native.firewallReset('iptables', ns);
  t.deepEqual(leftovers(ns), ['table ip cnm']);
  await native.firewallInit('iptables', ns);
  await native.firewallReset('nftables', ns);
  t.true(leftovers(ns).some((l) => l.includes('CNM-FORWARD')));
  t.false(leftovers(ns).includes('table ip cnm'));
  await native.firewallReset('iptables', ns);
  t.deepEqual(leftovers(ns), []);

  await native.firewallInit('none', ns);
  await native.applyFirewall({
    backend: 'none',
    netns: ns,
    addNetworks: [{ bridge: 'br0', masquerade: true, icc: true, internal: false, tag: '' }],
  });
  t.deepEqual(await native.firewallState('none', ns), { networks: [], ports: [], links: [], baseIntact: true });
  t.deepEqual(leftovers(ns), []);
  await rejectsWith(t, native.firewallInit('bogus' as 'none', ns), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(t, native.firewallState('nftables', `${prefix}missing`), 'ERR_NETNS_NOT_FOUND');
});

const nftSkip = skipReason(['nft', 'unshare'], 'the nftables ruleset comparison');
(nftSkip ? test.skip : test).serial('nftables: the base ruleset is made and read over netlink alone, and is the one ruleset.nft describes', async (t) => {
  const [viaNetlink, viaNft] = [`${prefix}nl`, `${prefix}nft`];
  created.push(viaNetlink, viaNft);
  await native.netnsCreate(viaNetlink);
  await native.netnsCreate(viaNft);
  const batch = {
    addNetworks: [{ bridge: 'br0', subnets: ['10.77.1.0/24'], masquerade: true, icc: false, internal: false, tag: 'n' }],
    addPorts: [{ proto: 'tcp' as const, hostPort: 8080, containerIp: '10.77.1.2', containerPort: 80, bridge: 'br0', tag: 'e' }],
    addLinks: [{ proto: 'tcp' as const, from: '10.77.1.2', to: '10.77.1.3', port: 5432, bridge: 'br0', tag: 'l' }],
  };
  // In a mount namespace where nft is a trap that records any run of it: the
  // whole default path (init, elements, state, a second init) runs no program.
  const dir = mkdtempSync(join(tmpdir(), 'cnmt-nft-'));
  const marker = join(dir, 'ran');
  const trap = join(dir, 'nft');
  writeFileSync(trap, `#!/bin/sh\necho "$@" >> ${marker}\nexit 1\n`, { mode: 0o755 });
  const nft = execFileSync('sh', ['-c', 'command -v nft'], { encoding: 'utf8', env }).trim();
  const code = `
    import * as native from ${JSON.stringify(new URL('../index.js', import.meta.url).href)};
    const ns = ${JSON.stringify(viaNetlink)};
    await native.firewallInit('nftables', ns);
    await native.applyFirewall({ backend: 'nftables', netns: ns, ...${JSON.stringify(batch)} });
    await native.firewallInit('nftables', ns);
    process.stdout.write(JSON.stringify(await native.firewallState('nftables', ns)));`;
  const out = execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2" && exec "$3" --input-type=module -e "$4"', 'sh', trap, nft, process.execPath, code], {
    encoding: 'utf8',
    env,
  });
  t.false(existsSync(marker), `nft was run: ${existsSync(marker) ? readFileSync(marker, 'utf8') : ''}`);
  rmSync(dir, { recursive: true, force: true });
  const state = JSON.parse(out) as native.FirewallState;
  t.deepEqual(strip(state), { networks: [{ bridge: 'br0', masquerade: true, icc: false, internal: false }], ports: ['tcp/*:8080->10.77.1.2:80'] });
  t.deepEqual(
    state.links.map((l) => `${l.from}>${l.to}:${l.port}`),
    ['10.77.1.2>10.77.1.3:5432'],
  );

  // The same ruleset loaded by nft from its text, the same elements: the same
  // bytecode, chain by chain and rule by rule.
  inNetns(viaNft, 'nft', '-f', fileURLToPath(new URL('../crates/netcore/src/firewall/nftables/ruleset.nft', import.meta.url)));
  await native.applyFirewall({ backend: 'nftables', netns: viaNft, ...batch });
  const bytecode = (ns: string) => {
    // nft prints the bytecode on stderr
    const r = spawnSync('ip', ['netns', 'exec', ns, 'nft', '--debug=netlink', 'list', 'ruleset'], { encoding: 'utf8', env });
    return r.stderr + r.stdout;
  };
  t.regex(bytecode(viaNetlink), /nat dnat ip addr_min reg 1 addr_max reg 1 proto_min reg 9/);
  t.is(bytecode(viaNetlink), bytecode(viaNft));
  t.is(inNetns(viaNetlink, 'nft', 'list', 'ruleset'), inNetns(viaNft, 'nft', 'list', 'ruleset'));
});
