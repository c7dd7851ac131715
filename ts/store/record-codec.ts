/**
 * How a record is laid out in the LMDB file: one marker byte, a CRC-32 of the
 * rest, then the pair [key, record] in MessagePack (the key inside the checked
 * bytes: a damaged key would otherwise read as another record). LMDB checks none of its data pages, so a
 * flipped bit or a block of zeros inside a value would otherwise be read back as
 * a different record, or as garbage that breaks an operation far from the cause;
 * with the checksum every read of a damaged record fails with ERR_STORE_DAMAGED,
 * naming the file and the key.
 *
 * The marker is 0xc1, the one byte MessagePack never uses: a value without it is
 * a record written by a cnm before checksums (lmdb-js's own MessagePack). Such a
 * store is read as it is and rewritten with checksums by its first write
 * transaction (see lmdb-store.ts); from then on its format key says so, and a
 * value without the marker is damage too.
 */
import { createRequire } from 'node:module';
import { crc32 } from 'node:zlib';
import type { Packr as PackrType } from 'msgpackr';
import { CnmError } from '../errors.js';

// the CommonJS build, which lmdb-js loads already: one module instance, no second load
const { Packr } = createRequire(import.meta.url)('msgpackr') as typeof import('msgpackr');

const MARK = 0xc1;
const HEAD = 5;

/** The key whose value says every record carries a checksum. */
export const FORMAT_KEY = 'meta/format';
/** Its value: format 2, records with checksums (format 1 had none and no key). */
export const CHECKSUMMED = 2;

/**
 * The copy of a key kept inside its value. MessagePack has no form for a lone
 * UTF-16 surrogate (a name such as "\ud800" in JSON): it would read back as
 * other characters. Such a surrogate is kept as U+FFFD, and keys compare in
 * that form.
 */
export const asStored = (key: string): string => (key as string & { toWellFormed(): string }).toWellFormed();

/** Whether the key found inside a value is the one it is stored under. */
export const sameKey = (inner: string, key: string): boolean => inner === key || inner === asStored(key);

/** What is wrong with one stored value, or undefined when it is sound. */
export type Damage = string | undefined;

/** A decoded value: the key it was written under (none in a record from before checksums) and the record. */
export interface Stored {
  key: string | undefined;
  value: unknown;
}

export class RecordCodec {
  /** Whether the store is known to hold checksums only (its format key says so). */
  strict = false;
  private readonly packr: PackrType;
  private readonly legacy: PackrType;

  constructor(private readonly path: string) {
    // plain maps: each value stands alone, with no structure shared between records
    this.packr = new Packr({ useRecords: false, copyBuffers: true });
    // lmdb-js's default encoding, for the records written before checksums
    this.legacy = new Packr({ copyBuffers: true });
  }

  /** lmdb-js's encoder hook: the store puts [key, record] pairs. */
  encode([key, value]: readonly [string, unknown]): Buffer {
    const body = this.packr.pack([asStored(key), value]);
    const out = Buffer.allocUnsafe(HEAD + body.length);
    out[0] = MARK;
    out.writeUInt32LE(crc32(body), 1);
    out.set(body, HEAD);
    return out;
  }

  /** lmdb-js's decoder hook: throws RecordDamage, which the store turns into ERR_STORE_DAMAGED with the key. */
  decode(bytes: Uint8Array): Stored {
    // lmdb-js reads into one shared buffer and sets its `length` to the value's size
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    const damage = this.damage(buf);
    if (damage !== undefined) throw new RecordDamage(damage);
    let out: unknown;
    try {
      if (buf[0] !== MARK) return { key: undefined, value: this.legacy.unpack(buf) };
      out = this.packr.unpack(buf.subarray(HEAD));
    } catch (e) {
      throw new RecordDamage(`it cannot be decoded (${(e as Error).message})`, e);
    }
    // a sound checksum over the wrong shape: written by something that is not cnm
    if (!Array.isArray(out) || out.length !== 2 || typeof out[0] !== 'string') throw new RecordDamage('it is not a [key, record] pair');
    return { key: out[0], value: out[1] };
  }

  /** What is wrong with the value stored under `key`: its checksum, its decoding, the key inside it. */
  check(key: string, buf: Buffer): Damage {
    try {
      const s = this.decode(buf);
      return s.key !== undefined && !sameKey(s.key, key) ? `it holds the record of key ${JSON.stringify(s.key)}` : undefined;
    } catch (e) {
      if (e instanceof RecordDamage) return e.why;
      throw e;
    }
  }

  /** What is wrong with a stored value, without decoding it. */
  damage(buf: Buffer): Damage {
    if (buf.length === 0) return 'it is empty';
    if (buf[0] !== MARK) return this.strict ? 'it has no checksum, and every record of this store has one' : undefined;
    if (buf.length < HEAD) return `it is cut short (${buf.length} bytes)`;
    return crc32(buf.subarray(HEAD)) === buf.readUInt32LE(1) ? undefined : 'its checksum does not match its contents';
  }

  /** The error a damaged record is reported with. */
  damaged(why: string, where: string, key?: string, cause?: unknown): CnmError {
    return new CnmError(
      'ERR_STORE_DAMAGED',
      `store file ${this.path} is damaged: ${where} fails its check (${why}); run "cnm system check" to list every damaged record, and restore the file from a backup or move it away to start afresh`,
      { value: this.path, key },
      cause === undefined ? undefined : { cause },
    );
  }
}

/** A damaged value met while decoding (lmdb-js knows no key there; the store adds it). */
export class RecordDamage extends Error {
  constructor(
    readonly why: string,
    cause?: unknown,
  ) {
    super(why, cause === undefined ? undefined : { cause });
  }
}
