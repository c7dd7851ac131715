/**
 * A load of Engine API clients for a daemon's socket (the bench's `load`
 * section and its short version in the tests): `clients` loops at once, each
 * with a sandbox of its own, going through network create, connect, inspect,
 * list, disconnect and rm, with prunes and deliberate conflicts mixed in (a
 * name another client holds, a second connect, a prune that takes other
 * clients' fresh networks). Every answer's status is counted per request kind, with its time.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

/** One request kind's answers: status counts and latencies (ms). */
export interface KindStats {
  statuses: Record<string, number>;
  ms: number[];
}

export interface LoadResult {
  requests: number;
  kinds: Record<string, KindStats>;
  /** answers that are neither a success nor the 4xx the request could expect */
  unexpected: string[];
  /** names of the networks the clients left (none when every loop finished) */
  left: string[];
  wallMs: number;
}

export interface LoadOptions {
  socket: string;
  /** one sandbox name per client (made before; each is connected and disconnected by its client only) */
  sandboxes: string[];
  /** requests in all, spread over the clients */
  total: number;
  /** a prefix for the network names, unique to this run */
  prefix: string;
  /** second octet of the clients' subnets: client c uses 10.<base + c>.x.0/24 */
  subnetBase: number;
  keepAlive?: boolean;
}

interface Answer {
  status: number;
  body: string;
}

function call(socket: string, agent: Agent | false, method: string, path: string, body?: unknown): Promise<Answer> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) };
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, agent, method, path: `/v1.47${path}`, headers }, (res) => {
      let out = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (out += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: out }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Run the load; resolves when every client has sent its share. */
export async function runApiLoad(o: LoadOptions): Promise<LoadResult> {
  const agent = o.keepAlive ? new Agent({ keepAlive: true, maxSockets: o.sandboxes.length }) : false;
  const kinds: Record<string, KindStats> = {};
  const unexpected: string[] = [];
  let sent = 0;
  const timed = async (kind: string, ok: number[], fine: number[], method: string, path: string, body?: unknown): Promise<Answer> => {
    sent++;
    const t = performance.now();
    const a = await call(o.socket, agent, method, path, body);
    const k = (kinds[kind] ??= { statuses: {}, ms: [] });
    k.ms.push(performance.now() - t);
    k.statuses[a.status] = (k.statuses[a.status] ?? 0) + 1;
    if (!ok.includes(a.status) && !fine.includes(a.status)) unexpected.push(`${kind} ${method} ${path} -> ${a.status} ${a.body.slice(0, 200)}`);
    return a;
  };
  const share = Math.ceil(o.total / o.sandboxes.length);
  const left = new Set<string>();
  const client = async (c: number) => {
    const sb = o.sandboxes[c]!;
    let i = 0;
    // its own requests (the conflicts and prunes mixed in come on top)
    const count = { mine: 0 };
    const own = (a: Answer) => {
      count.mine++;
      return a;
    };
    for (;;) {
      if (count.mine >= share) break;
      const name = `${o.prefix}${c}x${i}`;
      const subnet = `10.${o.subnetBase + c}.${i % 250}.0/24`;
      i++;
      // a prune of another client's fresh network may come first: 404 and 403 are answers it can expect
      const made = own(await timed('create', [201], [], 'POST', '/networks/create', { Name: name, CheckDuplicate: true, IPAM: { Config: [{ Subnet: subnet }] } }));
      if (made.status !== 201) continue;
      left.add(name);
      // its own name again: Docker's CheckDuplicate conflict
      if (i % 7 === 0) await timed('create (conflict)', [409], [], 'POST', '/networks/create', { Name: name, CheckDuplicate: true, IPAM: { Config: [{ Subnet: `10.${o.subnetBase + c}.${250 + (i % 5)}.0/24` }] } });
      const conn = own(await timed('connect', [200], [404], 'POST', `/networks/${name}/connect`, { Container: sb }));
      if (conn.status === 200 && i % 5 === 0) await timed('connect (again)', [403], [], 'POST', `/networks/${name}/connect`, { Container: sb });
      own(await timed('inspect', [200], [404], 'GET', `/networks/${name}`));
      own(await timed('list', [200], [], 'GET', `/networks?filters=${encodeURIComponent(JSON.stringify({ name: [o.prefix] }))}`));
      if (conn.status === 200) own(await timed('disconnect', [200], [], 'POST', `/networks/${name}/disconnect`, { Container: sb }));
      // every unused network goes, other clients' fresh ones too: their next step gets a 404
      if (i % 23 === 0) await timed('prune', [200], [], 'POST', '/networks/prune');
      const rm = own(await timed('rm', [204], [404], 'DELETE', `/networks/${name}`));
      if (rm.status === 204 || rm.status === 404) left.delete(name);
    }
  };
  const t0 = performance.now();
  try {
    await Promise.all(o.sandboxes.map((_, c) => client(c)));
  } finally {
    if (agent) agent.destroy();
  }
  return { requests: sent, kinds, unexpected, left: [...left], wallMs: performance.now() - t0 };
}

/** p50 and p99 of a kind's latencies. */
export function percentiles(ms: number[]): { p50: number; p99: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: s[Math.floor(s.length * 0.5)] ?? 0, p99: s[Math.floor(s.length * 0.99)] ?? 0 };
}

/** The resident memory of a process (VmRSS of /proc/PID/status), in MiB. */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}
