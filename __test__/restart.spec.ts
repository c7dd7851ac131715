// State survives a restart of the controller in a new process; allocations hold.
import test from 'ava';
import { type IsolatedHost, ipj, isolatedHost, pings } from './helpers/host.js';
import { cnm } from './helpers/cli.js';

let host: IsolatedHost;
test.before(async () => {
  host = await isolatedHost('rst');
});
test.after.always(async () => {
  await host?.cleanup();
});

test('networks, sandboxes and allocations survive new processes; no live address is reused', (t) => {
  const g = ['--state-dir', host.stateDir, '--host-netns', host.ns];
  const ok = (args: string[]) => {
    const r = cnm([...g, ...args]);
    t.is(r.code, 0, `cnm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  ok(['network', 'create', '--subnet', '10.51.0.0/24', 'persist']);
  const a = host.name('a');
  const b = host.name('b');
  ok(['sandbox', 'create', '--net', 'persist', a]);
  ok(['sandbox', 'create', '--net', 'persist', b]);
  // release b's address, then a fresh process must neither lose a's nor hand out b's at once
  ok(['sandbox', 'rm', b]);
  ok(['sandbox', 'create', '--net', 'persist', b]);
  const nets = ok(['network', 'ls', '--format', 'json'])
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { Name: string });
  t.deepEqual(nets.map((n) => n.Name).sort(), ['bridge', 'host', 'none', 'persist']);
  const ins = JSON.parse(ok(['network', 'inspect', 'persist']))[0];
  const addrs = Object.values(ins.Containers as Record<string, { Name: string; IPv4Address: string }>).map((c) => [c.Name, c.IPv4Address]);
  t.deepEqual(addrs.sort(), [[a, '10.51.0.2/24'], [b, '10.51.0.4/24']].sort());
  const c = host.name('c');
  ok(['sandbox', 'create', '--net', 'persist', c]);
  const sbs = JSON.parse(ok(['sandbox', 'inspect', c]));
  t.is(sbs[0].Networks.persist.IPAddress, '10.51.0.5');
  t.true(pings(c, '10.51.0.2'), 'the sandbox made by an earlier process still works');
  t.true(pings(a, '10.51.0.5'));
  // inspect shows the same as the kernel
  const eth0 = ipj<Array<{ address: string }>>(a, 'link', 'show', 'dev', 'eth0')[0]!;
  const insA = JSON.parse(ok(['sandbox', 'inspect', a]))[0];
  t.is(insA.Networks.persist.MacAddress, eth0.address);
  for (const s of [a, b, c]) ok(['sandbox', 'rm', s]);
  ok(['network', 'rm', 'persist']);
});
