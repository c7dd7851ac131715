// The embedded resolver: names, aliases, PTR, isolation, forwarding to a fake
// upstream, TCP fallback, the sandbox's files, restart, bad input and queries
// that never time out while sandboxes come and go. Real clients (dig, getent,
// nslookup) inside real sandboxes of an isolated host.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import test from 'ava';
import type { NetworkController } from '../ts/controller.js';
import { CnmError } from '../ts/errors.js';
import { native } from '../ts/native.js';
import { type FakeUpstream, dig, fakeUpstream, getent } from './helpers/dns.js';
import { type IsolatedHost, inNs, isolatedHost } from './helpers/host.js';

let host: IsolatedHost;
let ctl: NetworkController;
let upstream: FakeUpstream;

test.before(async () => {
  host = await isolatedHost('dns');
  upstream = await fakeUpstream(host.ns, host.name('outside'));
  ctl = await host.open();
  await ctl.serveDns();
  await ctl.createNetwork({ name: 'front', ipam: [{ subnet: '10.61.0.0/24' }, { subnet: 'fd61::/64' }], enableIPv6: true });
  await ctl.createNetwork({ name: 'back', ipam: [{ subnet: '10.62.0.0/24' }] });
  await ctl.createNetwork({ name: 'sealed', internal: true, ipam: [{ subnet: '10.63.0.0/24' }] });
});
test.after.always(async () => {
  upstream?.stop();
  await host?.cleanup();
});

const ip4 = (sb: string, net: string) => ctl.getSandbox(sb).inspect().Networks[net]!.IPAddress;

test.serial('sandboxes resolve each other by name, alias and NAME.NETWORK, A and AAAA, and PTR', async (t) => {
  const a = await ctl.createSandbox({ name: host.name('a'), net: 'front', aliases: ['web'] });
  const b = await ctl.createSandbox({ name: host.name('b'), net: 'front', aliases: ['web', 'cache'] });
  const [ia, ib] = [ip4(a.name, 'front'), ip4(b.name, 'front')];
  t.deepEqual(dig(a.netns, [b.name]).answers, [ib]);
  t.deepEqual(dig(a.netns, ['cache']).answers, [ib]);
  t.deepEqual(dig(a.netns, [`${b.name}.front`]).answers, [ib]);
  t.deepEqual(dig(a.netns, [b.name.toUpperCase()]).answers, [ib], 'names compare without case');
  t.deepEqual(dig(a.netns, [b.id.slice(0, 12)]).answers, [ib], 'the short id resolves too');
  const v6 = ctl.getSandbox(b.name).inspect().Networks.front!.GlobalIPv6Address;
  t.deepEqual(dig(a.netns, [b.name, 'AAAA']).answers, [v6]);
  // a shared alias answers every sandbox that has it, in turns
  const web = dig(a.netns, ['web']);
  t.deepEqual([...web.answers].sort(), [ia, ib].sort());
  const firsts = new Set(Array.from({ length: 6 }, () => dig(a.netns, ['web']).answers[0]));
  t.is(firsts.size, 2, 'round robin: each address comes first in turn');
  t.deepEqual(dig(a.netns, ['-x', ib]).answers, [`${b.name}.front.`]);
  // the system's own resolver, through the sandbox's resolv.conf
  const got = getent(a.netns, b.name);
  t.true(got.includes(ib) || got.includes(v6), got.join(' '));
  t.deepEqual(getent(a.netns, b.name, 'ahostsv4'), [ib]);
  const ns = inNs(a.netns, 'nslookup', 'cache');
  t.regex(ns, new RegExp(`Address: ${ib.replaceAll('.', '\\.')}`));
  t.true(ctl.dnsStats()!.sandboxes >= 2);
});

test.serial('a name leaves with its sandbox or endpoint before the call returns; networks stay apart', async (t) => {
  const c = await ctl.createSandbox({ name: host.name('c'), net: 'front' });
  const d = await ctl.createSandbox({ name: host.name('d'), net: 'back' });
  t.is(dig(c.netns, [d.name]).status, 'NXDOMAIN', 'a sandbox of another network is not seen (asked upstream: unknown there)');
  t.is(dig(d.netns, [host.name('a')]).status, 'NXDOMAIN');
  // connected to both: it sees both, and both see it
  await ctl.connect('back', c.name);
  t.deepEqual(dig(c.netns, [d.name]).answers, [ip4(d.name, 'back')]);
  t.deepEqual(dig(d.netns, [c.name]).answers, [ip4(c.name, 'back')], 'd sees c by its address on the network they share');
  await ctl.disconnect('back', c.name);
  t.is(dig(d.netns, [c.name]).status, 'NXDOMAIN', 'gone from back as soon as disconnect returned');
  t.is(dig(c.netns, [d.name]).status, 'NXDOMAIN');
  await ctl.removeSandbox(d.name);
  t.is(dig(c.netns, [`${d.name}.back`]).status, 'NXDOMAIN');
  await ctl.removeSandbox(c.name);
});

test.serial('other names go upstream from the host side, also for internal networks; failures as Docker answers them', async (t) => {
  const a = host.name('a');
  const r = dig(a, ['www.upstream.test']);
  t.deepEqual(r.answers, ['198.51.100.7']);
  await new Promise((res) => setTimeout(res, 100)); // the fake's report crosses a pipe
  t.true(upstream.asked.includes('www.upstream.test'));
  t.is(dig(a, ['nothing.example']).status, 'NXDOMAIN', 'the upstream NXDOMAIN passes through');
  // an internal network: no way out for the sandbox, but names still resolve
  const s = await ctl.createSandbox({ name: host.name('sealed'), net: 'sealed' });
  t.deepEqual(dig(s.netns, ['www.upstream.test']).answers, ['198.51.100.7']);
  t.not(execFileSync('ip', ['-n', s.netns, 'route', 'show'], { encoding: 'utf8' }).match(/^default/m)?.[0], 'default', 'and it has no default route');
  // --dns: that sandbox's own upstream; one that does not answer gives SERVFAIL
  const lost = await ctl.createSandbox({ name: host.name('lost'), net: 'front', dns: ['192.0.2.99'] });
  const started = Date.now();
  t.is(dig(lost.netns, ['www.upstream.test'], undefined, 5).status, 'SERVFAIL');
  t.true(Date.now() - started < 4500, 'within the upstream timeout');
  t.deepEqual(dig(lost.netns, [a]).answers, [ip4(a, 'front')], 'its local names still answer');
  t.true(readFileSync(`/etc/netns/${lost.netns}/resolv.conf`, 'utf8').includes('nameserver 127.0.0.11'));
  await ctl.removeSandbox(lost.name);
  await ctl.removeSandbox(s.name);
});

test.serial('long answers: truncated over UDP, whole over TCP, local and forwarded', async (t) => {
  const many = [];
  for (let i = 0; i < 40; i++) many.push(await ctl.createSandbox({ name: host.name(`m${i}`), net: 'back', aliases: ['many'] }));
  const asker = many[0]!.netns;
  const udp = dig(asker, ['+noedns', '+ignore', 'many']);
  t.true(udp.flags.includes('tc'), 'TC set over UDP');
  t.is(udp.answers.length, 0);
  t.is(dig(asker, ['+noedns', 'many']).answers.length, 40, 'dig retried over TCP and got all');
  t.is(dig(asker, ['+tcp', 'many']).answers.length, 40);
  t.is(dig(asker, ['+noedns', 'many.upstream.test']).answers.length, 60, 'a forwarded long answer too');
  await Promise.all(many.map((s) => ctl.removeSandbox(s.name)));
});

test.serial('the sandbox files: resolv.conf and hosts as Docker writes them, removed with the sandbox', async (t) => {
  const s = await ctl.createSandbox({
    name: host.name('files'),
    net: 'front',
    hostname: 'box.local',
    dnsSearch: ['svc.test'],
    dnsOptions: ['timeout:3'],
    extraHosts: ['db:10.99.0.5', 'v6db:[fd99::5]'],
  });
  const dir = `/etc/netns/${s.netns}`;
  const resolv = readFileSync(`${dir}/resolv.conf`, 'utf8');
  t.regex(resolv, /^nameserver 127\.0\.0\.11$/m);
  t.regex(resolv, /^search svc\.test$/m);
  t.regex(resolv, /^options ndots:0 timeout:3$/m);
  const ips = ctl.getSandbox(s.name).inspect().Networks.front!;
  const hosts = readFileSync(`${dir}/hosts`, 'utf8');
  t.regex(hosts, /^127\.0\.0\.1\tlocalhost$/m);
  t.regex(hosts, /^10\.99\.0\.5\tdb$/m);
  t.regex(hosts, /^fd99::5\tv6db$/m);
  t.true(hosts.includes(`${ips.IPAddress}\tbox.local ${s.name}`));
  t.true(hosts.includes(`${ips.GlobalIPv6Address}\tbox.local ${s.name}`));
  t.is(readFileSync(`${dir}/hostname`, 'utf8'), 'box.local\n');
  // what a program in the sandbox sees
  t.true(inNs(s.netns, 'cat', '/etc/resolv.conf').includes('nameserver 127.0.0.11'));
  t.deepEqual(getent(s.netns, 'db'), ['10.99.0.5']);
  // a second network: its address joins the hosts file
  await ctl.connect('back', s.name);
  t.true(readFileSync(`${dir}/hosts`, 'utf8').includes(`${ip4(s.name, 'back')}\tbox.local`));
  await ctl.disconnect('back', s.name);
  t.false(readFileSync(`${dir}/hosts`, 'utf8').includes('10.62.0.'));
  // the default bridge: no embedded DNS, the upstream servers themselves
  const plain = await ctl.createSandbox({ name: host.name('plain'), dns: ['192.0.2.2'] });
  const r2 = readFileSync(`/etc/netns/${plain.netns}/resolv.conf`, 'utf8');
  t.regex(r2, /^nameserver 192\.0\.2\.2$/m);
  t.notRegex(r2, /127\.0\.0\.11/);
  t.regex(r2, /^search corp\.test$/m, 'the host search list');
  await ctl.removeSandbox(plain.name);
  await ctl.removeSandbox(s.name);
  t.false(existsSync(dir));
  t.false(existsSync(`/etc/netns/${plain.netns}`));
});

test.serial('bad input gets a coded error and changes nothing', async (t) => {
  const before = ctl.listSandboxes().length;
  const cases: Array<Record<string, unknown>> = [
    { extraHosts: ['justaname'] },
    { extraHosts: ['db:notanip'] },
    { dns: ['10.0.0.300'] },
    { dns: ['ns.example'] },
    { hostname: '-bad-' },
    { dnsSearch: ['bad domain'] },
    { dnsOptions: ['two words'] },
  ];
  for (const extra of cases) {
    const name = host.name('bad');
    const e = await t.throwsAsync(ctl.createSandbox({ name, net: 'front', ...extra }), { instanceOf: CnmError });
    t.is(e?.code, 'ERR_INVALID_ARGUMENT', JSON.stringify(extra));
    t.false(await native.netnsExists(name));
    t.false(existsSync(`/etc/netns/${name}`));
  }
  t.is(ctl.listSandboxes().length, before);
});

test.serial('a resolver restarted (stopped, or a new process) answers the same, rebuilt from the store', async (t) => {
  const a = host.name('a');
  const b = host.name('b');
  await ctl.stopDns();
  t.is(dig(a, [b], undefined, 1).status, 'TIMEOUT', 'nobody answers while it is down');
  await ctl.serveDns();
  t.deepEqual(dig(a, [b]).answers, [ip4(b, 'front')]);
  t.is(dig(a, ['web']).answers.length, 2);
});

test.serial('queries never time out while 100 sandboxes come and go', async (t) => {
  const a = host.name('a');
  const b = host.name('b');
  // dnsperf in the sandbox, asking a name that stays, at a steady rate, for the whole churn
  const queries = host.tmp('dnsperf');
  writeFileSync(`${queries}/q`, `${b} A\nweb A\n`);
  const perf = spawn('ip', ['netns', 'exec', a, 'dnsperf', '-s', '127.0.0.11', '-d', `${queries}/q`, '-l', '30', '-Q', '2000', '-t', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  perf.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<void>((r) => perf.once('exit', () => r()));
  await new Promise((r) => setTimeout(r, 300));
  const names = Array.from({ length: 100 }, (_, i) => host.name(`churn${i}`));
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(names.slice(i, i + 10).map((n) => ctl.createSandbox({ name: n, net: 'front', aliases: ['web'] })));
    t.is(dig(a, [names[i]!]).answers.length, 1, 'a new name resolves at once');
  }
  for (let i = 0; i < names.length; i += 10) await Promise.all(names.slice(i, i + 10).map((n) => ctl.removeSandbox(n)));
  perf.kill('SIGINT');
  await done;
  const sent = Number(/Queries sent:\s+(\d+)/.exec(out)?.[1]);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1]);
  t.log(`dnsperf during the churn: ${sent} sent, ${lost} lost`);
  t.true(sent > 1000, out);
  t.is(lost, 0, out);
});
