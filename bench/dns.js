// The `dns` section: cnm's embedded resolver beside Podman's aardvark-dns (Debian's
// package, started here with a config this file writes), both asked by dnsperf from
// inside a sandbox of an isolated host for local names. Reports queries per second
// at saturation, p50/p99 latency at a steady 2 000 q/s, the time from connect()
// returning until the new name resolves, and the resolver's memory for 1 000 sandboxes.
// No upstream server is configured: nothing is ever forwarded out.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetworkController, native } from '../dist/index.js';
import { startResolverProcess } from '../dist/dns/process.js';

const AARDVARK = '/usr/lib/podman/aardvark-dns';
const QUERIER = fileURLToPath(new URL('./dns-query.mjs', import.meta.url));

const have = (cmd) => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** dnsperf inside `ns` against `server`; its whole output. */
function dnsperf(ns, server, file, args) {
  return execFileSync('ip', ['netns', 'exec', ns, 'dnsperf', '-s', server, '-d', file, ...args], { encoding: 'utf8', maxBuffer: 1 << 28 });
}

const qps = (out) => Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
const lost = (out) => Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? NaN);
/** per-query latencies (ms) from dnsperf -v lines: "> NOERROR name A 0.000123" */
const latencies = (out) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('> NOERROR'))
    .map((l) => Number(l.trim().split(/\s+/).at(-1)) * 1000);

/** this process's user + system CPU time, ms */
function ownCpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const completed = (out) => Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? NaN);

const rssRow = (r) => ({ name: `dns: background resolver process RSS, ${r.served} sandboxes served (MiB)`, n: 1, p50: r.kb / 1024, p90: NaN, p99: NaN, max: NaN });

/** user + system CPU time of a process, ms */
function procCpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export async function dnsBench({ tag, stateDir, rows, summarize, sandboxes = 1000 }) {
  if (!have('dnsperf')) {
    console.log('dns section skipped: dnsperf is not installed (apt-get install dnsperf; .ci/run does)');
    return;
  }
  const hostNs = `${tag}-dnsh`;
  await native.netnsCreate(hostNs);
  // no upstream: only local names are asked, nothing leaves
  mkdirSync(`/etc/netns/${hostNs}`, { recursive: true });
  writeFileSync(`/etc/netns/${hostNs}/resolv.conf`, '# no nameserver\n');
  const dir = join(stateDir, 'dns');
  mkdirSync(dir, { recursive: true });
  const ctl = await NetworkController.open({ stateDir: join(dir, 'state'), hostNetns: hostNs });
  let aardvark;
  try {
    await ctl.serveDns();
    await ctl.createNetwork({ name: 'dnsb', ipam: [{ subnet: '10.150.0.0/16', gateway: '10.150.0.1' }] });
    const client = await ctl.createSandbox({ name: `${tag}-dnsc`, net: 'dnsb' });
    const targets = [];
    for (let i = 0; i < 20; i++) targets.push(await ctl.createSandbox({ name: `${tag}-dnst${i}`, net: 'dnsb', aliases: [`svc${i}`] }));
    const file = join(dir, 'queries');
    writeFileSync(file, targets.map((s, i) => `${i % 2 ? s.name : `svc${i}`} A\n`).join(''));

    const run = (server, label, cpuMs) => {
      // saturation: 4 sockets, 200 queries in flight, 5 s
      const cpu0 = cpuMs();
      const sat = dnsperf(client.netns, server, file, ['-l', '5', '-c', '4', '-q', '200']);
      const q = qps(sat);
      // the load generator saturates a core of this 2-core machine first: the server's
      // CPU time per answered query says what it could do with more load
      const perQuery = ((cpuMs() - cpu0) * 1000) / completed(sat);
      rows.push({ name: `dns ${label}: queries/s (dnsperf, 4 sockets, 200 in flight)`, n: 1, p50: q, p90: q, p99: q, max: q, lost: lost(sat) });
      rows.push({ name: `dns ${label}: server CPU per query (us)`, n: 1, p50: perQuery, p90: NaN, p99: NaN, max: NaN });
      // latency at a steady rate well below saturation
      const steady = dnsperf(client.netns, server, file, ['-l', '3', '-Q', '2000', '-v']);
      const lat = latencies(steady);
      rows.push(summarize(`dns ${label}: latency at 2000 q/s`, lat, label === 'cnm' ? { target: '<= 0.1 ms p50' } : {}));
      return { qps: q, perQuery };
    };
    const ours = run('127.0.0.11', 'cnm', ownCpu);

    let theirs;
    if (existsSync(AARDVARK)) {
      // aardvark-dns listens on the network's gateway in the host netns, as netavark runs it
      const conf = join(dir, 'aardvark');
      mkdirSync(conf, { recursive: true });
      const lines = ['10.150.0.1'];
      for (const s of [client, ...targets]) {
        const ip = ctl.getSandbox(s.name).inspect().Networks.dnsb.IPAddress;
        const i = targets.indexOf(s);
        lines.push(`${s.id.slice(0, 12)} ${ip}  ${[s.name, ...(i >= 0 ? [`svc${i}`] : [])].join(',')}`);
      }
      writeFileSync(join(conf, 'dnsb'), `${lines.join('\n')}\n`);
      aardvark = spawn('ip', ['netns', 'exec', hostNs, AARDVARK, '--config', conf, '-p', '53', 'run'], { stdio: 'ignore' });
      const until = Date.now() + 5000;
      let up = false;
      while (!up && Date.now() < until) {
        try {
          up = execFileSync('ip', ['netns', 'exec', client.netns, 'dig', '@10.150.0.1', '+short', '+time=1', '+tries=1', targets[1].name], { encoding: 'utf8' }).trim() !== '';
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (up) {
        const pid = Number(execFileSync('pgrep', ['-f', `${AARDVARK} --config ${conf}`], { encoding: 'utf8' }).split('\n')[0]);
        theirs = run('10.150.0.1', 'aardvark-dns 1.4', () => procCpuMs(pid));
        rows.push({ name: 'dns cnm / aardvark-dns: queries/s ratio', n: 1, p50: ours.qps / theirs.qps, p90: NaN, p99: NaN, max: NaN, target: '>= 2' });
        rows.push({ name: 'dns aardvark-dns / cnm: CPU per query ratio', n: 1, p50: theirs.perQuery / ours.perQuery, p90: NaN, p99: NaN, max: NaN });
        rows.push({ name: `dns aardvark-dns: RSS with ${lines.length - 1} containers (MiB)`, n: 1, p50: rssKb(pid) / 1024, p90: NaN, p99: NaN, max: NaN });
      } else console.log('aardvark-dns did not answer: its rows are left out');
    } else console.log(`aardvark-dns rows skipped: ${AARDVARK} is missing (apt-get install aardvark-dns; .ci/run does)`);

    // from connect() returning until the name resolves, seen from a querier already running in the client
    const querier = spawn('ip', ['netns', 'exec', client.netns, process.execPath, QUERIER, '127.0.0.11'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const answers = [];
    let buf = '';
    let wake = Function.prototype;
    querier.stdout.on('data', (d) => {
      buf += d.toString();
      const ls = buf.split('\n');
      buf = ls.pop();
      for (const l of ls) answers.push(l);
      wake();
    });
    const next = () => new Promise((r) => (wake = r));
    while (!answers.includes('ready')) await next();
    answers.length = 0;
    // the querier's own cost: a name that exists, asked after a pause as long as a connect's
    const baseline = [];
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 10));
      querier.stdin.write(`${targets[i % targets.length].name}\n`);
      while (answers.length === 0) await next();
      baseline.push(Number(answers[0].split(' ')[0]) / 1000);
      answers.length = 0;
    }
    rows.push(summarize('dns: a name that already exists (querier clock: its own cost)', baseline));
    const visible = [];
    const asked = [];
    let firstTry = 0;
    for (let i = 0; i < 50; i++) {
      const name = `${tag}-dnsnew${i}`;
      await ctl.createSandbox({ name, net: 'dnsb' });
      await ctl.disconnect('dnsb', name);
      await ctl.connect('dnsb', name);
      const t = performance.now();
      querier.stdin.write(`${name}\n`);
      while (answers.length === 0) await next();
      visible.push(performance.now() - t);
      const [us, tries] = answers[0].split(' ').map(Number);
      asked.push(us / 1000);
      if (tries === 1) firstTry++;
      answers.length = 0;
      await ctl.removeSandbox(name);
    }
    querier.stdin.end();
    // the querier's own clock: from its reading the name (sent once connect() returned) to the answer
    rows.push(summarize('dns: connect() returned -> name resolves (querier clock)', asked, { target: '<= 1 ms' }));
    rows.push({ name: `dns: new names answered by the first query asked after connect() returned (of ${asked.length})`, n: asked.length, p50: firstTry, p90: NaN, p99: NaN, max: NaN });
    // the bench's clock: the same plus two pipe hops to and from the querier process
    rows.push(summarize('dns: connect() returned -> name resolves (with pipe hops)', visible));

    // memory: the CLI's background resolver process (this host's resolver while
    // the bench's controller stands aside), serving the sandboxes there are now, then N more
    const processRss = async () => {
      await ctl.stopDns();
      const hostDir = join(dir, 'state', `netns-${hostNs}`);
      if (!(await startResolverProcess({ stateDir: join(dir, 'state'), hostNetns: hostNs }, hostDir))) throw new Error('the background resolver did not start');
      const pid = Number(execFileSync('pgrep', ['-f', `resolver-main.*${hostNs}`], { encoding: 'utf8' }).split('\n')[0]);
      await new Promise((r) => setTimeout(r, 1000));
      const kb = rssKb(pid);
      process.kill(pid, 'SIGTERM');
      while (existsSync(`/proc/${pid}`)) await new Promise((r) => setTimeout(r, 50));
      await ctl.serveDns();
      return { kb, served: ctl.dnsStats().sandboxes };
    };
    const few = await processRss();
    const many = Array.from({ length: sandboxes }, (_, i) => `${tag}-dnsm${i}`);
    for (let i = 0; i < many.length; i += 50) await Promise.all(many.slice(i, i + 50).map((name) => ctl.createSandbox({ name, net: 'dnsb' })));
    const lots = await processRss();
    rows.push(rssRow(few), rssRow(lots));
    rows.push({ name: `dns: resolver memory per sandbox served (KiB, ${few.served} -> ${lots.served})`, n: 1, p50: (lots.kb - few.kb) / (lots.served - few.served), p90: NaN, p99: NaN, max: NaN });
    for (let i = 0; i < many.length; i += 100) await Promise.all(many.slice(i, i + 100).map((name) => ctl.removeSandbox(name)));
    for (const s of [client, ...targets]) await ctl.removeSandbox(s.name);
  } finally {
    aardvark?.kill();
    try {
      execFileSync('pkill', ['-f', `${AARDVARK} --config ${join(dir, 'aardvark')}`]);
    } catch {
      // none left
    }
    await ctl.close();
    rmSync(`/etc/netns/${hostNs}`, { recursive: true, force: true });
  }
}
