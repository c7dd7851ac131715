/**
 * Orderings that need no locale: `String.prototype.localeCompare` loads ICU's
 * collator on first use (about 8 ms of a command's start-up), and names, ids,
 * timestamps and map keys here are ASCII that Docker (Go) orders byte by byte.
 */

/** Code-unit order, as Go's `sort.Strings` (and ISO timestamps sort by time). */
export function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Digit runs compared by value: eth2 before eth10, as interface names are meant. */
export function natural(a: string, b: string): number {
  const re = /(\d+)|(\D+)/g;
  const xs = a.match(re) ?? [];
  const ys = b.match(re) ?? [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    const x = xs[i]!;
    const y = ys[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d < 0 ? -1 : 1;
    }
    return byText(x, y);
  }
  return xs.length - ys.length;
}
