// Runs inside a peer's host netns (started by bench/peers.js with `ip netns exec`),
// so that the peer's programs are exec'd straight from there, as a container
// runtime execs them from the host: one JSON request per stdin line
// ({ program, args, env, stdin }), one JSON answer per stdout line
// ({ ms, ok, out, err }). Arguments are the bench's own, never a shell line.
import { spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const req = JSON.parse(line);
  const t = performance.now();
  const r = spawnSync(req.program, req.args ?? [], { input: req.stdin ?? '', env: { PATH: process.env.PATH, ...req.env }, encoding: 'utf8' });
  const ms = performance.now() - t;
  process.stdout.write(`${JSON.stringify({ ms, ok: r.status === 0, out: r.stdout, err: r.stderr || r.error?.message })}\n`);
}
