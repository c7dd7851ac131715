/** Output helpers: aligned tables like docker's, and JSON. */

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join('')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** Docker prints inspect output as an indented JSON array. */
export function json(v: unknown): string {
  return JSON.stringify(v, null, 4);
}
