// Percentiles over a list of millisecond samples.
export function summarize(name, samples, extra = {}) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { name, n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1], ...extra };
}

const fmt = (x) => (typeof x === 'number' ? (x < 0.1 ? x.toFixed(4) : x.toFixed(3)) : String(x ?? ''));

export function printTable(rows) {
  const head = ['benchmark', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'target'];
  const lines = [head, ...rows.map((r) => [r.name, String(r.n), fmt(r.p50), fmt(r.p90), fmt(r.p99), fmt(r.max), r.target ?? ''])];
  const w = head.map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  for (const l of lines) console.log(l.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  '));
}
