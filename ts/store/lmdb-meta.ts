/**
 * LMDB's two meta pages, read with plain file reads (lmdb-js not loaded): the
 * header check before a store is mapped, and the last committed transaction's
 * id, which tells a reader whether anything was committed since it last looked.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** File name of the database inside a host's state directory. */
export const STORE_FILE = 'cnm.mdb';

/** LMDB's meta page magic (0xBEEFC0DE), at byte 24 of each of the two meta pages. */
export const MAGIC = 0xbeefc0de;
export const META_MAGIC_AT = 24;
/**
 * mm_txnid in lmdb-js's LMDB (24-byte page header; magic, version, address,
 * map size, two 48-byte MDB_db records and the last page come before it).
 */
const META_TXNID_AT = 152;
/** the page sizes LMDB may have used: the second meta page starts one page in */
export const PAGE_SIZES = [4096, 8192, 16384, 32768, 65536];

/** The first 64 KiB and a bit: room for both meta pages at any page size. */
export function readHead(fd: number, size: number): Buffer {
  const head = Buffer.alloc(Math.min(size, 64 * 1024 + 64));
  readSync(fd, head, 0, head.length, 0);
  return head;
}

/**
 * What identifies the store's committed state: its inode and the id of the
 * last committed write transaction. undefined when the file is missing or its
 * meta pages do not look as LMDB writes them (meta page N holds the last
 * transaction whose id has parity N, so the two ids are one apart, the even one
 * first): the caller then reads the store itself.
 */
export function committedStamp(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    const head = readHead(fd, st.size);
    const second = PAGE_SIZES.find((ps) => ps + META_TXNID_AT + 8 <= head.length && head.readUInt32LE(ps + META_MAGIC_AT) === MAGIC);
    if (head.length < META_TXNID_AT + 8 || head.readUInt32LE(META_MAGIC_AT) !== MAGIC || second === undefined) return undefined;
    const even = head.readBigUInt64LE(META_TXNID_AT);
    const odd = head.readBigUInt64LE(second + META_TXNID_AT);
    const fresh = even === 0n && odd === 0n;
    if (!fresh && (even % 2n !== 0n || odd % 2n !== 1n || (even - odd !== 1n && odd - even !== 1n))) return undefined;
    return `${st.ino}:${even > odd ? even : odd}`;
  } finally {
    closeSync(fd);
  }
}
