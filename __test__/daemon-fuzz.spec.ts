// Request fuzzing of `cnm daemon`: 10 000 generated requests (see
// helpers/fuzz-requests.ts) sent byte by byte over its socket. Every answer is a
// status below 500 (or 501/503, Docker's for a feature or service this host does
// not have), an error carries Docker's shape ({"message": "…"}), the daemon
// never dies, and what the requests that were refused leave is what was there:
// once the few that succeeded (a network made, a connect) are undone, the
// networks, sandboxes, links and firewall entries are those of the start.
import test from 'ava';
import { native } from '../ts/native.js';
import { isGrave } from '../ts/reaper.js';
import { daemonOnHost } from './helpers/daemon-http.js';
import { fuzzRequests } from './helpers/fuzz-requests.js';
import { eventually } from './helpers/host.js';
import { rawRequest } from './helpers/raw-http.js';

const on = daemonOnHost('fuzz');
const host = () => on.host();
const daemon = () => on.daemon();

async function snapshot() {
  const ctl = daemon().controller;
  return {
    networks: ctl.listNetworks().map((n) => `${n.name}:${n.id}`).sort(),
    sandboxes: ctl.listSandboxes().map((s) => `${s.name}:${s.inspect().Networks ? Object.keys(s.inspect().Networks).sort().join(',') : ''}`).sort(),
    links: (await native.listLinks(host().ns)).filter((l) => !isGrave(l.group)).map((l) => l.name).sort(),
    firewall: JSON.stringify(await native.firewallState('nftables', host().ns)),
  };
}

test.serial('10 000 generated requests: no 500, Docker error shapes, the daemon stays up, refused ones change nothing', async (t) => {
  const ctl = daemon().controller;
  await ctl.createNetwork({ name: 'fznet', ipam: [{ subnet: '10.235.0.0/24' }] });
  const sandbox = host().name('fzsb');
  const holder = host().name('fzhold');
  // one sandbox on no network (connects may succeed and are undone), one that keeps fznet in use
  await ctl.createSandbox({ name: sandbox, net: 'none' });
  await ctl.createSandbox({ name: holder, net: 'fznet' });
  const before = await snapshot();
  // FUZZ_SEED replays another sequence (the seed of a failure is in its message)
  const seed = Number(process.env.FUZZ_SEED ?? 0x5eed);
  const requests = fuzzRequests(seed, 10_000, { network: 'fznet', sandbox });
  const statuses = new Map<number, number>();
  const bad: string[] = [];
  const created = new Set<string>();
  for (const [i, q] of requests.entries()) {
    const r = await rawRequest(daemon().socket, `${q.method} ${q.target} HTTP/1.1\r\nContent-Type: application/json\r\n`, q.body).catch((e: unknown) => ({ status: -1, headers: {}, body: String(e) }));
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    const what = `seed ${seed} #${i} ${q.method} ${q.target.slice(0, 120)} ${q.body.slice(0, 120)} -> ${r.status} ${r.body.slice(0, 200)}`;
    if (r.status < 100 || r.status === 500 || r.status === 502 || r.status >= 504) bad.push(what);
    if (r.status >= 400 && q.method.toUpperCase() !== 'HEAD') {
      let shape = false;
      try {
        const m = (JSON.parse(r.body) as { message?: unknown }).message;
        shape = typeof m === 'string' && m.length > 0;
      } catch {
        shape = false;
      }
      if (!shape) bad.push(`not Docker's error shape: ${what}`);
    }
    if (r.status === 201) {
      try {
        created.add((JSON.parse(r.body) as { Id: string }).Id);
      } catch {
        bad.push(`201 without an Id: ${what}`);
      }
    }
    if (bad.length > 20) break;
  }
  t.log('statuses:', JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0]))), `networks made: ${created.size}`);
  t.deepEqual(bad, [], 'every answer a 4xx (or 501/503) in Docker shape, or a success');
  t.is((await rawRequest(daemon().socket, 'GET /_ping HTTP/1.1\r\n')).status, 200, 'the daemon still answers');
  // undo what succeeded: networks made (or pruned ones made by the fuzz), connects of the free sandbox
  for (const n of ctl.listSandboxes().find((s) => s.name === sandbox)?.inspect().Networks ? Object.keys(ctl.getSandbox(sandbox).inspect().Networks) : []) {
    if (n !== 'none') await ctl.disconnect(n, sandbox);
  }
  for (const id of created) {
    if (ctl.listNetworks().some((n) => n.id === id)) await ctl.removeNetwork(id);
  }
  t.true(await eventually(async () => JSON.stringify(await snapshot()) === JSON.stringify(before), 5000), 'networks, sandboxes, links and firewall as at the start');
  t.deepEqual(await snapshot(), before);
  await ctl.removeSandbox(holder);
  await ctl.removeSandbox(sandbox);
  await ctl.removeNetwork('fznet');
});
