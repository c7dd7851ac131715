/**
 * `--format` as docker takes it: Go template actions over the item printed
 * (`{{.Name}}`, `{{.IPAM.Config}}`, `{{json .}}`, `{{json .Options}}`, `{{upper .Name}}`,
 * `{{index .Labels "key"}}`, `{{join .Aliases ","}}`, `{{range .Containers}}…{{end}}`,
 * `{{if .Internal}}…{{else}}…{{end}}`), `table …` for a table with a header row and
 * `\t` between columns, and `json` for one JSON object per line. Values print as Go
 * prints them (`[a b]`, `map[k:v]`, `<no value>`). A template that does not parse is
 * a usage error.
 */
import { usage } from './args.js';
import { byText } from '../compare.js';

type Node = { text: string } | { expr: string[] } | { range: string[]; body: Node[] } | { cond: string[]; yes: Node[]; no: Node[] };

/** Split an action into words, keeping "quoted strings" whole. */
function words(action: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(action); m; m = re.exec(action)) out.push(m[1] !== undefined ? `"${m[1]}"` : m[2]!);
  return out;
}

function parseNodes(src: string): Node[] {
  const tokens = src.split(/(\{\{-?\s*[\s\S]*?\s*-?\}\})/).filter((t) => t !== '');
  let i = 0;
  const block = (stops: string[]): [Node[], string] => {
    const nodes: Node[] = [];
    while (i < tokens.length) {
      const t = tokens[i++]!;
      const m = /^\{\{-?\s*([\s\S]*?)\s*-?\}\}$/.exec(t);
      if (!m) {
        nodes.push({ text: t });
        continue;
      }
      const w = words(m[1]!);
      if (stops.includes(w[0] ?? '')) return [nodes, w[0]!];
      if (w[0] === 'range') {
        const [body, stop] = block(['end']);
        if (stop !== 'end') throw usage(`template: unterminated range in ${JSON.stringify(src)}`, src);
        nodes.push({ range: w.slice(1), body });
      } else if (w[0] === 'if') {
        const [yes, stop] = block(['else', 'end']);
        let other: Node[] = [];
        if (stop === 'else') {
          const [e, s2] = block(['end']);
          if (s2 !== 'end') throw usage(`template: unterminated if in ${JSON.stringify(src)}`, src);
          other = e;
        } else if (stop !== 'end') throw usage(`template: unterminated if in ${JSON.stringify(src)}`, src);
        nodes.push({ cond: w.slice(1), yes, no: other });
      } else if (w.length === 0) {
        throw usage(`template: empty action in ${JSON.stringify(src)}`, src);
      } else nodes.push({ expr: w });
    }
    return [nodes, ''];
  };
  const [nodes, stop] = block([]);
  if (stop) throw usage(`template: unexpected {{${stop}}} in ${JSON.stringify(src)}`, src);
  return nodes;
}

/** A value as Go's fmt %v prints it. */
export function goString(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => byText(a, b));
    return `map[${entries.map(([k, x]) => `${k}:${goString(x)}`).join(' ')}]`;
  }
  return String(v);
}

function field(dot: unknown, path: string): unknown {
  if (path === '.') return dot;
  if (!path.startsWith('.')) throw usage(`template: cannot evaluate ${path}: fields start with "."`, path);
  let v = dot;
  for (const name of path.slice(1).split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[name];
  }
  return v;
}

function arg(dot: unknown, w: string): unknown {
  if (w.startsWith('"')) return JSON.parse(w) as string;
  return field(dot, w);
}

function evaluate(dot: unknown, w: string[]): unknown {
  const [fn, ...rest] = w;
  switch (fn) {
    case 'json':
      return JSON.stringify(arg(dot, rest[0] ?? '.')) ?? 'null';
    case 'upper':
      return goString(arg(dot, rest[0] ?? '.')).toUpperCase();
    case 'lower':
      return goString(arg(dot, rest[0] ?? '.')).toLowerCase();
    case 'join': {
      const v = arg(dot, rest[0] ?? '.');
      return Array.isArray(v) ? v.map(goString).join(String(arg(dot, rest[1] ?? '""'))) : goString(v);
    }
    case 'index': {
      const v = arg(dot, rest[0] ?? '.') as Record<string, unknown> | unknown[] | undefined;
      const k = arg(dot, rest[1] ?? '""');
      return v && typeof v === 'object' ? (v as Record<string, unknown>)[String(k)] : undefined;
    }
    case 'len': {
      const v = arg(dot, rest[0] ?? '.');
      return Array.isArray(v) ? v.length : v && typeof v === 'object' ? Object.keys(v).length : goString(v).length;
    }
    default:
      if (rest.length) throw usage(`template: function "${fn}" not defined`, fn);
      return arg(dot, fn!);
  }
}

const truthy = (v: unknown) => !(v === undefined || v === null || v === false || v === 0 || v === '' || v === 'false' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0));

function render(nodes: Node[], dot: unknown): string {
  let out = '';
  for (const n of nodes) {
    if ('text' in n) out += n.text;
    else if ('expr' in n) out += goString(evaluate(dot, n.expr));
    else if ('range' in n) {
      const v = evaluate(dot, n.range);
      const items = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.entries(v).sort(([a], [b]) => byText(a, b)).map(([, x]) => x) : [];
      for (const item of items) out += render(n.body, item);
    } else out += render(truthy(evaluate(dot, n.cond)) ? n.yes : n.no, dot);
  }
  return out;
}

/** The header of a table column: docker's names where it has them, else the field's name in capitals. */
function header(expr: string[], names: Record<string, string>): string {
  const f = expr.find((w) => w.startsWith('.')) ?? expr[0] ?? '';
  const name = f.replace(/^\./, '');
  return names[name] ?? name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toUpperCase();
}

/** Columns padded as docker's tabwriter pads them (3 spaces between). */
function align(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]! + 3) : c)).join('').trimEnd());
}

/**
 * Print `items` with a docker `--format`: `json` (one object per line), `table
 * TEMPLATE` (a header row, then one row per item, columns at `\t`), or a template
 * applied to each item. `headers` maps field names to docker's column titles.
 */
export function formatItems(format: string, items: unknown[], headers: Record<string, string> = {}): string[] {
  if (format === 'json') return items.map((i) => JSON.stringify(i));
  const table = /^table\s*/.exec(format);
  const src = (table ? format.slice(table[0].length) : format).replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  const nodes = parseNodes(src);
  const lines = items.map((i) => render(nodes, i));
  if (!table) return lines;
  // the header: each cell's title, from the first action of the cell
  const cells = src.split('\t').map((c) => parseNodes(c).find((n): n is { expr: string[] } => 'expr' in n));
  const head = cells.map((c) => (c ? header(c.expr, headers) : ''));
  return align([head, ...lines.map((l) => l.split('\t'))]);
}
