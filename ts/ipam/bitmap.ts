/**
 * A bitmap of address offsets with a second-level summary (one bit per full word),
 * so finding a free address stays cheap at any fill: a /8 is 2 MiB of words plus
 * 64 KiB of summary, and a search touches at most one summary scan.
 */
const FULL = 0xffffffff;

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

export class Bitmap {
  readonly size: number;
  private readonly words: Uint32Array;
  private readonly summary: Uint32Array;
  private used = 0;

  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 32) {
      throw new RangeError(`bitmap size ${size} out of range`);
    }
    this.size = size;
    this.words = new Uint32Array(Math.ceil(size / 32));
    this.summary = new Uint32Array(Math.ceil(this.words.length / 32));
    // bits past the end count as used so that searches never return them
    const tail = size % 32;
    if (tail !== 0) this.words[this.words.length - 1] = (FULL << tail) >>> 0;
  }

  /** Number of set bits (excluding the padding past `size`). */
  get count(): number {
    return this.used;
  }

  has(i: number): boolean {
    return (this.words[i >>> 5]! & (1 << (i & 31))) !== 0;
  }

  /** Set bit i; returns false if it was already set. */
  set(i: number): boolean {
    this.check(i);
    const w = i >>> 5;
    const bit = 1 << (i & 31);
    const old = this.words[w]!;
    if ((old & bit) !== 0) return false;
    const now = (old | bit) >>> 0;
    this.words[w] = now;
    if (now === FULL) this.summary[w >>> 5]! |= 1 << (w & 31);
    this.used++;
    return true;
  }

  /** Clear bit i; returns false if it was already clear. */
  clear(i: number): boolean {
    this.check(i);
    const w = i >>> 5;
    const bit = 1 << (i & 31);
    const old = this.words[w]!;
    if ((old & bit) === 0) return false;
    this.words[w] = (old & ~bit) >>> 0;
    this.summary[w >>> 5]! &= ~(1 << (w & 31));
    this.used--;
    return true;
  }

  /** Lowest clear bit in [start, end), or -1. */
  nextClear(start: number, end: number): number {
    let i = start;
    const endWord = Math.ceil(end / 32);
    while (i < end) {
      const w = i >>> 5;
      const free = ~this.words[w]! & (FULL << (i & 31));
      if (free !== 0) {
        const idx = (w << 5) + ctz(free);
        return idx < end ? idx : -1;
      }
      const nw = this.nextNonFullWord(w + 1, endWord);
      if (nw < 0) return -1;
      i = nw << 5;
    }
    return -1;
  }

  private nextNonFullWord(from: number, endWord: number): number {
    let w = from;
    while (w < endWord) {
      const s = w >>> 5;
      const notFull = ~this.summary[s]! & (FULL << (w & 31));
      if (notFull !== 0) {
        const found = (s << 5) + ctz(notFull);
        return found < endWord ? found : -1;
      }
      w = (s + 1) << 5;
    }
    return -1;
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) {
      throw new RangeError(`bit ${i} out of range 0..${this.size - 1}`);
    }
  }
}
