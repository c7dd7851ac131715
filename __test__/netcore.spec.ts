// The native core (crates/netcore) against a real kernel. Everything happens
// in network namespaces this file creates; traffic only goes between them.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import test, { type ExecutionContext } from 'ava';

import * as native from '../index.js';

const tag = `cnmt-core-${process.pid}`;
const HOST = tag;
const SB1 = `${tag}-s1`;
const SB2 = `${tag}-s2`;
const SB3 = `${tag}-s3`;
const ALL = [HOST, SB1, SB2, SB3];

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

function inNetns(netns: string, ...cmd: string[]): string {
  return execFileSync('ip', ['netns', 'exec', netns, ...cmd], { encoding: 'utf8' });
}

interface IpLink {
  ifname: string;
  ifindex: number;
  master?: string;
  mtu: number;
  flags: string[];
  address: string;
}

function ipLinks(netns: string): IpLink[] {
  return JSON.parse(ip('-n', netns, '-j', 'link', 'show')) as IpLink[];
}

async function rejectsWith(t: ExecutionContext, p: Promise<unknown>, code: string) {
  const err = await t.throwsAsync(p);
  t.is((err as Error & { code?: string }).code, code, err?.message);
  const body = JSON.parse(err!.message);
  t.is(body.code, code);
  t.is(typeof body.message, 'string');
  return body;
}

test.before(async () => {
  for (const n of ALL) await native.netnsCreate(n);
  await native.ensureBridge({ netns: HOST, name: 'br0', addresses: ['10.231.0.1/24'], mtu: 1500 });
  await native.attachVeth({
    hostNetns: HOST,
    sandboxNetns: SB1,
    hostIfname: 'vtest1',
    master: 'br0',
    ifname: 'eth0',
    addresses: ['10.231.0.2/24'],
    gateway: '10.231.0.1',
  });
  await native.attachVeth({
    hostNetns: HOST,
    sandboxNetns: SB2,
    hostIfname: 'vtest2',
    master: 'br0',
    ifname: 'eth0',
    mac: '02:42:0a:e7:00:03',
    addresses: ['10.231.0.3/24', 'fd31::3/64'],
    gateway: '10.231.0.1',
  });
});

test.after.always(async () => {
  await native.netnsDeleteMany(ALL).catch(() => 0);
  for (const n of ALL) {
    try {
      execFileSync('ip', ['netns', 'delete', n], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
});

test.serial('netns created by netnsCreate are visible to ip netns and have lo up', async (t) => {
  const listed = ip('netns', 'list');
  for (const n of ALL) {
    t.true(listed.includes(n));
    t.true(await native.netnsExists(n));
  }
  t.true((await native.netnsList()).includes(HOST));
  const lo = ipLinks(SB3).find((l) => l.ifname === 'lo');
  t.truthy(lo);
  t.true(lo!.flags.includes('UP'));
  await rejectsWith(t, native.netnsCreate(HOST), 'ERR_NETNS_EXISTS');
});

test.serial('traffic flows sandbox -> bridge -> sandbox', (t) => {
  t.notThrows(() => inNetns(SB1, 'ping', '-c1', '-i0.2', '-w2', '10.231.0.3'));
  t.notThrows(() => inNetns(SB2, 'ping', '-c1', '-i0.2', '-w2', '10.231.0.2'));
  t.notThrows(() => inNetns(SB1, 'ping', '-c1', '-i0.2', '-w2', '10.231.0.1'));
});

test.serial('listLinks and ip -j agree', async (t) => {
  const host = await native.listLinks(HOST);
  const br = host.find((l) => l.name === 'br0')!;
  t.is(br.kind, 'bridge');
  t.true(br.up);
  t.deepEqual(br.addresses.filter((a) => !a.startsWith('fe80')), ['10.231.0.1/24']);
  for (const name of ['vtest1', 'vtest2']) {
    const v = host.find((l) => l.name === name)!;
    t.is(v.kind, 'veth');
    t.is(v.master, br.index);
    t.true(v.up);
    const fromIp = ipLinks(HOST).find((l) => l.ifname === name)!;
    t.is(fromIp.ifindex, v.index);
    t.is(fromIp.master, 'br0');
    t.is(fromIp.address, v.mac);
  }

  const sb2 = await native.listLinks(SB2);
  const eth0 = sb2.find((l) => l.name === 'eth0')!;
  t.is(eth0.mac, '02:42:0a:e7:00:03');
  t.true(eth0.up);
  t.true(eth0.addresses.includes('10.231.0.3/24'));
  t.true(eth0.addresses.includes('fd31::3/64'));
  t.true(sb2.find((l) => l.name === 'lo')!.up);
  const eth0Ip = ipLinks(SB2).find((l) => l.ifname === 'eth0')!;
  t.is(eth0Ip.ifindex, eth0.index);

  const routes = await native.listRoutes(SB1, 4);
  const def = routes.find((r) => r.dst === '0.0.0.0/0');
  t.truthy(def);
  t.is(def!.gateway, '10.231.0.1');
  t.is(def!.table, 254);
  t.true(routes.some((r) => r.dst === '10.231.0.0/24'));
});

test.serial('ensureBridge is idempotent and rejects a non-bridge', async (t) => {
  const again = await native.ensureBridge({ netns: HOST, name: 'br0', addresses: ['10.231.0.1/24'] });
  t.false(again.created);
  t.is(again.name, 'br0');
  await rejectsWith(
    t,
    native.ensureBridge({ netns: HOST, name: 'vtest1' }),
    'ERR_INVALID_ARGUMENT',
  );
});

test.serial('detachVeth removes the pair', async (t) => {
  const info = await native.attachVeth({
    hostNetns: HOST,
    sandboxNetns: SB3,
    hostIfname: 'vtest3',
    master: 'br0',
    ifname: 'eth3',
    addresses: ['10.231.0.4/24'],
    gateway: '10.231.0.1',
  });
  t.true(info.hostIfindex > 0);
  t.true(ipLinks(SB3).some((l) => l.ifname === 'eth3'));
  t.true(await native.detachVeth(HOST, 'vtest3'));
  t.false(ipLinks(HOST).some((l) => l.ifname === 'vtest3'));
  t.false(ipLinks(SB3).some((l) => l.ifname === 'eth3'));
  t.false(await native.detachVeth(HOST, 'vtest3'));
  t.false(await native.deleteLink(HOST, 'vtest3'));
});

test.serial('a failed attach leaves no link behind', async (t) => {
  const before = ipLinks(HOST).map((l) => l.ifname).sort();
  const sbBefore = ipLinks(SB3).map((l) => l.ifname).sort();

  await rejectsWith(
    t,
    native.attachVeth({ hostNetns: HOST, sandboxNetns: SB3, hostIfname: 'vfail1', master: 'nobridge', ifname: 'eth9' }),
    'ERR_LINK_NOT_FOUND',
  );
  const dup = await rejectsWith(
    t,
    native.attachVeth({ hostNetns: HOST, sandboxNetns: SB3, hostIfname: 'vtest1', master: 'br0', ifname: 'eth9' }),
    'ERR_LINK_EXISTS',
  );
  t.is(dup.ifname, 'vtest1');
  t.is(dup.netns, HOST);
  // Fails after the pair exists: the gateway is not reachable from the address.
  await t.throwsAsync(
    native.attachVeth({
      hostNetns: HOST,
      sandboxNetns: SB3,
      hostIfname: 'vfail2',
      master: 'br0',
      ifname: 'eth9',
      addresses: ['10.231.0.9/24'],
      gateway: '192.0.2.1',
    }),
  );
  await rejectsWith(
    t,
    native.attachVeth({ hostNetns: HOST, sandboxNetns: `${tag}-none`, hostIfname: 'vfail3', ifname: 'eth9' }),
    'ERR_NETNS_NOT_FOUND',
  );

  t.deepEqual(ipLinks(HOST).map((l) => l.ifname).sort(), before);
  t.deepEqual(ipLinks(SB3).map((l) => l.ifname).sort(), sbBefore);
});

test.serial('bad names and arguments give ERR_INVALID_ARGUMENT', async (t) => {
  const base = { hostNetns: HOST, sandboxNetns: SB3, hostIfname: 'vok', ifname: 'eth0' };
  for (const bad of ['', 'a/b', 'has space', '.', '..', 'sixteen-chars-xx']) {
    await rejectsWith(t, native.attachVeth({ ...base, hostIfname: bad }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(t, native.deleteLink(HOST, bad), 'ERR_INVALID_ARGUMENT');
  }
  for (const bad of ['', '.', '..', 'a/b', 'x'.repeat(256)]) {
    await rejectsWith(t, native.netnsCreate(bad), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(t, native.netnsDelete(bad), 'ERR_INVALID_ARGUMENT');
  }
  await rejectsWith(t, native.attachVeth({ ...base, addresses: ['10.0.0.1'] }), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(t, native.attachVeth({ ...base, mac: 'zz:zz' }), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(t, native.sysctlGet(HOST, 'kernel.hostname'), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(t, native.sysctlGet(HOST, 'net..ipv4'), 'ERR_INVALID_ARGUMENT');
  await rejectsWith(t, native.sysctlGet(HOST, 'net.ipv4/../../x'), 'ERR_INVALID_ARGUMENT');
  t.false(ipLinks(HOST).some((l) => l.ifname === 'vok'));
});

test.serial('errors say what was being done, to what, in which netns', async (t) => {
  let body = await rejectsWith(t, native.ensureBridge({ netns: HOST, name: 'brq', addresses: ['10.0.0.300/24'] }), 'ERR_INVALID_ARGUMENT');
  t.is(body.message, `ensure bridge "brq" in netns ${HOST}: invalid CIDR address "10.0.0.300/24"`);
  t.is(body.netns, HOST);
  body = await rejectsWith(t, native.attachVeth({ hostNetns: HOST, sandboxNetns: SB3, hostIfname: 'vok', ifname: 'eth0', gateway: 'fd00::1' }), 'ERR_INVALID_ARGUMENT');
  t.regex(body.message, new RegExp(`^attach veth "vok" \\(peer "eth0" in netns "${SB3}"\\) in netns ${HOST}: gateway must be an IPv4 address$`));
  body = await rejectsWith(t, native.setDefaultRoute(SB1, 'eth0', '10.231.0.1', 6), 'ERR_INVALID_ARGUMENT');
  t.is(body.message, `set the IPv6 default route in netns "${SB1}": gateway 10.231.0.1 is not IPv6`);
  t.is(body.netns, SB1);
  body = await rejectsWith(t, native.setDefaultRoute(SB1, 'nosuch0', '10.231.0.1', 4), 'ERR_LINK_NOT_FOUND');
  t.is(body.message, `replace default route in netns ${SB1}: link nosuch0 not found in netns ${SB1}`);
  body = await rejectsWith(t, native.applyFirewall({ backend: 'nftables', netns: HOST, addNetworks: [{ bridge: 'bad name', subnet: '', masquerade: false, icc: true, internal: false, tag: 't' }] }), 'ERR_INVALID_ARGUMENT');
  t.is(body.message, `apply a firewall batch in netns ${HOST}: invalid interface name "bad name"`);
  body = await rejectsWith(t, native.sysctlSet(HOST, 'kernel.hostname', 'x'), 'ERR_INVALID_ARGUMENT');
  t.regex(body.message, /^set sysctl in netns .*: invalid sysctl key "kernel.hostname": must start with "net."$/);
  body = await rejectsWith(t, native.netnsDelete('a/b'), 'ERR_INVALID_ARGUMENT');
  t.is(body.message, 'delete netns: invalid netns name "a/b"');
});

test.serial('sysctl in a named netns does not touch the machine', async (t) => {
  const machine = await native.sysctlGet(null, 'net.ipv4.ip_forward');
  const inside = await native.sysctlGet(HOST, 'net.ipv4.ip_forward');
  const flipped = inside === '1' ? '0' : '1';
  await native.sysctlSet(HOST, 'net.ipv4.ip_forward', flipped);
  t.is(await native.sysctlGet(HOST, 'net.ipv4.ip_forward'), flipped);
  t.is(inNetns(HOST, 'cat', '/proc/sys/net/ipv4/ip_forward').trim(), flipped);
  t.is(await native.sysctlGet(null, 'net.ipv4.ip_forward'), machine);
  await native.sysctlSet(HOST, 'net.ipv4.conf.all.route_localnet', '1');
  t.is(await native.sysctlGet(HOST, 'net.ipv4.conf.all.route_localnet'), '1');
});

test.serial('a bridge named with a dot: its sysctls by the slash form of the key', async (t) => {
  await native.ensureBridge({ netns: HOST, name: 'br.x' });
  try {
    const key = 'net/ipv4/conf/br.x/route_localnet';
    await native.sysctlSet(HOST, key, '1');
    t.is(await native.sysctlGet(HOST, key), '1');
    t.is(inNetns(HOST, 'cat', '/proc/sys/net/ipv4/conf/br.x/route_localnet').trim(), '1');
    await native.sysctlSet(HOST, key, '0');
    t.is(inNetns(HOST, 'cat', '/proc/sys/net/ipv4/conf/br.x/route_localnet').trim(), '0');
    // the dotted form splits the name: no such sysctl
    await rejectsWith(t, native.sysctlGet(HOST, 'net.ipv4.conf.br.x.route_localnet'), 'ERR_INVALID_ARGUMENT');
    // a path still cannot leave /proc/sys/net
    for (const bad of ['net/ipv4/../../kernel/hostname', '/proc/sys/net/ipv4/ip_forward', 'net/ipv4/conf/./all/forwarding', 'kernel/hostname']) {
      await rejectsWith(t, native.sysctlGet(HOST, bad), 'ERR_INVALID_ARGUMENT');
    }
  } finally {
    await native.deleteLink(HOST, 'br.x');
  }
});

test.serial('netnsBind aliases a netns; delete and releaseNetns', async (t) => {
  const alias = `${tag}-alias`;
  await native.netnsBind(alias, SB1);
  try {
    const viaAlias = await native.listLinks(alias);
    t.true(viaAlias.some((l) => l.name === 'eth0' && l.addresses.includes('10.231.0.2/24')));
    await rejectsWith(t, native.netnsBind(alias, SB1), 'ERR_NETNS_EXISTS');
    await rejectsWith(t, native.netnsBind(`${tag}-x`, `${tag}-missing`), 'ERR_NETNS_NOT_FOUND');
  } finally {
    await native.releaseNetns(alias);
    t.true(await native.netnsDelete(alias));
  }
  t.false(await native.netnsDelete(alias));
  t.false(await native.netnsExists(alias));
  // SB1 itself is untouched by deleting its alias.
  t.notThrows(() => inNetns(SB1, 'ping', '-c1', '-i0.2', '-w2', '10.231.0.3'));
});

test.serial('the test build has the fault hooks: CNM_FAULT fails netnsCreate after its step and nothing is left', async (t) => {
  t.true(native.faultInjectionEnabled(), 'npm test builds the addon with --features fault-injection');
  const name = `${tag}-fault`;
  const index = new URL('../index.js', import.meta.url).href;
  const script = `import * as n from ${JSON.stringify(index)};
n.netnsCreate(${JSON.stringify(name)}).then(() => console.log('created'), (e) => console.log(e.code));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, CNM_FAULT: 'netcore.netns.created' },
    encoding: 'utf8',
    timeout: 20000,
  });
  t.is(r.stdout.trim(), 'ERR_FAULT_INJECTED', r.stderr);
  t.false(await native.netnsExists(name), 'the failed create undid itself');
});

test.serial('netnsCookie: one id per netns, the same for two names of one netns', async (t) => {
  const host = await native.netnsCookie(HOST);
  t.regex(host, /^\d+$/);
  t.is(await native.netnsCookie(HOST), host, 'the same netns twice');
  const sb1 = await native.netnsCookie(SB1);
  t.not(sb1, host, 'two netns');
  t.not(await native.netnsCookie(null), host, 'the process netns is another one');
  const alias = `${tag}-cookie`;
  await native.netnsBind(alias, SB1);
  try {
    t.is(await native.netnsCookie(alias), sb1, 'a second name of SB1');
  } finally {
    await native.releaseNetns(alias);
    await native.netnsDelete(alias);
  }
  await rejectsWith(t, native.netnsCookie(`${tag}-missing`), 'ERR_NETNS_NOT_FOUND');
  await rejectsWith(t, native.netnsCookie('a/b'), 'ERR_INVALID_ARGUMENT');
});

/** Run the flood helper against HOST; rejects if it does not finish (a request hung). */
function flood(env: Record<string, string>, count: number): Promise<{ ok: number; lost: number; other: string[]; lo: boolean }> {
  const helper = fileURLToPath(new URL('./helpers/netlink-flood.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', helper, HOST, String(count)], { env: { ...process.env, ...env }, timeout: 60000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`flood did not finish: ${err.message} ${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()!));
    });
  });
}

test.serial('a flood of netlink requests never hangs: the replies fit, and a lost reply fails its request', async (t) => {
  // replies to pipelined requests wait in the socket's receive buffer: the 8 MiB one holds them all
  t.deepEqual(await flood({}, 20000), { ok: 20000, lost: 0, other: [], lo: true });
  // a buffer too small for them: the lost replies fail their requests (none waits forever),
  // and the socket is replaced for what comes next
  const small = await flood({ CNM_NETLINK_RCVBUF: '4096' }, 20000);
  t.true(small.lost > 0, 'the small buffer overflowed');
  t.is(small.ok + small.lost, 20000);
  t.deepEqual(small.other, []);
  t.true(small.lo);
});

test('trimMemory gives the C heap free memory back on glibc (what the daemon calls once quiet)', (t) => {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  if (!report?.header?.glibcVersionRuntime) {
    t.false(native.trimMemory(), 'no malloc_trim outside glibc');
    return;
  }
  // in a process of its own: a test runner's other work moves the heap meanwhile
  const index = new URL('../index.js', import.meta.url).href;
  const script = `const n = await import(${JSON.stringify(index)});
const rss = () => process.memoryUsage.rss() / 1048576;
// a burst of freed heap: ~120 MiB in blocks under glibc's mmap threshold, as answers to many clients leave it
let blocks = Array.from({ length: 2000 }, () => Buffer.alloc(60 * 1024, 1));
blocks = null; gc(); await new Promise((r) => setTimeout(r, 100)); gc();
const freed = rss(); const ok = n.trimMemory();
console.log(JSON.stringify({ ok, freed, trimmed: rss() }));`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  const { ok, freed, trimmed } = JSON.parse(r.stdout) as { ok: boolean; freed: number; trimmed: number };
  t.true(ok);
  t.true(freed - trimmed > 20, `RSS ${freed.toFixed(0)} -> ${trimmed.toFixed(0)} MiB: the freed heap went back`);
});
