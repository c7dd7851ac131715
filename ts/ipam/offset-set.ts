/**
 * Sets of allocated address offsets. Subnets up to 2^24 addresses use the bitmap
 * (a /8 costs 2 MiB); larger ones — an IPv6 /64 has 2^64 — keep only the offsets
 * actually held, so memory follows the number of allocations, not the subnet size.
 */
import { Bitmap } from './bitmap.js';

export interface OffsetSet {
  has(off: bigint): boolean;
  /** false when it was already set */
  set(off: bigint): boolean;
  /** false when it was already clear */
  clear(off: bigint): boolean;
  /** lowest clear offset in [start, end), or -1n */
  nextClear(start: bigint, end: bigint): bigint;
}

/** Largest subnet kept as a bitmap. */
export const BITMAP_MAX = 1n << 24n;

export class BitmapSet implements OffsetSet {
  private readonly bits: Bitmap;
  constructor(size: bigint) {
    this.bits = new Bitmap(Number(size));
  }
  has(off: bigint): boolean {
    return this.bits.has(Number(off));
  }
  set(off: bigint): boolean {
    return this.bits.set(Number(off));
  }
  clear(off: bigint): boolean {
    return this.bits.clear(Number(off));
  }
  nextClear(start: bigint, end: bigint): bigint {
    return BigInt(this.bits.nextClear(Number(start), Number(end)));
  }
}

export class SparseSet implements OffsetSet {
  private readonly held = new Set<bigint>();
  has(off: bigint): boolean {
    return this.held.has(off);
  }
  set(off: bigint): boolean {
    if (this.held.has(off)) return false;
    this.held.add(off);
    return true;
  }
  clear(off: bigint): boolean {
    return this.held.delete(off);
  }
  nextClear(start: bigint, end: bigint): bigint {
    // held offsets are few next to the space, so a run of them is short
    for (let i = start; i < end; i++) if (!this.held.has(i)) return i;
    return -1n;
  }
}

export function offsetSet(size: bigint): OffsetSet {
  return size <= BITMAP_MAX ? new BitmapSet(size) : new SparseSet();
}
