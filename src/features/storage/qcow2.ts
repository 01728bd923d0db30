// The parts of a qcow2 header that make QEMU open other files: the backing file
// (with its format) and the external data file. Read here, by our own code, so a
// sponsor's image is checked before QEMU follows any name written in it. The
// limits are QEMU's own (block/qcow2.c), so anything QEMU would open is seen here,
// and anything odd is refused rather than guessed at.

import { fstatSync, readSync } from 'node:fs';

export const QCOW2_MAGIC = Buffer.from('QFI\xfb', 'latin1');
const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
/** Incompatible feature bit 2: guest data lives in an external file. */
const INCOMPAT_DATA_FILE = 1n << 2n;
const MIN_CLUSTER_BITS = 9;
const MAX_CLUSTER_BITS = 21;
const V2_HEADER_LENGTH = 72;
const V3_MIN_HEADER_LENGTH = 104;
/** QEMU's limit on a backing file name (and its buffer). */
const MAX_BACKING_NAME = 1023;
/** QEMU's backing_format buffer is 16 bytes, NUL included. */
const MAX_FORMAT_NAME = 15;
/** QEMU refuses a data file name longer than this. */
const MAX_DATA_FILE_NAME = 1023;

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  /** Virtual size of the disk in bytes. */
  size: number;
  /** The backing file name as written (QEMU resolves a relative one against the image's directory). */
  backingFile?: string;
  /** The backing file's format, if the header states one (else QEMU probes it). */
  backingFormat?: string;
  /** The external data file name as written. */
  dataFile?: string;
  /** The image needs an external data file (incompatible feature bit). */
  needsDataFile: boolean;
}

/** A header this reader does not accept (malformed, or beyond QEMU's own limits). */
export class Qcow2Error extends Error {}

export function hasQcow2Magic(head: Buffer): boolean {
  return head.length >= 4 && head.subarray(0, 4).equals(QCOW2_MAGIC);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A name stored in the header: valid UTF-8, no NUL or control characters (QEMU would cut at a NUL). */
function headerString(buf: Buffer, what: string): string {
  let s: string;
  try {
    s = utf8.decode(buf);
  } catch {
    throw new Qcow2Error(`${what} is not valid UTF-8`);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new Qcow2Error(`${what} contains control characters`);
  return s;
}

/** Bytes [off, off+len) of `buf`, refusing a range that reaches past what was read. */
function slice(buf: Buffer, off: number, len: number, what: string): Buffer {
  if (off < 0 || len < 0 || off + len > buf.length) throw new Qcow2Error(`${what} lies outside the image's header`);
  return buf.subarray(off, off + len);
}

/** A u64 header field that must fit a JS number to be used as an offset. */
function u64(buf: Buffer, off: number): number {
  const v = buf.readBigUInt64BE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}

/**
 * Parse a qcow2 header from the image's first cluster (or all of the image if it
 * is shorter). Throws Qcow2Error on anything QEMU would refuse or read differently.
 */
export function parseQcow2Header(buf: Buffer): Qcow2Header {
  if (buf.length < V2_HEADER_LENGTH || !hasQcow2Magic(buf)) throw new Qcow2Error('not a qcow2 image');
  const version = buf.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new Qcow2Error(`unsupported qcow2 version ${version}`);
  const backingOffset = u64(buf, 8);
  const backingSize = buf.readUInt32BE(16);
  const clusterBits = buf.readUInt32BE(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw new Qcow2Error(`invalid cluster size (2^${clusterBits})`);
  }
  const clusterSize = 2 ** clusterBits;
  const size = u64(buf, 24);
  if (!Number.isFinite(size)) throw new Qcow2Error('virtual size too large');

  let headerLength = V2_HEADER_LENGTH;
  let incompatible = 0n;
  if (version === 3) {
    if (buf.length < V3_MIN_HEADER_LENGTH) throw new Qcow2Error('truncated qcow2 v3 header');
    incompatible = buf.readBigUInt64BE(72);
    headerLength = buf.readUInt32BE(100);
    if (headerLength < V3_MIN_HEADER_LENGTH || headerLength > clusterSize) {
      throw new Qcow2Error(`invalid header length ${headerLength}`);
    }
  }

  if (backingOffset > clusterSize) throw new Qcow2Error('backing file name lies outside the first cluster');
  // As QEMU: extensions end where the backing file name begins, or at the cluster's end.
  const extEnd = backingOffset !== 0 ? backingOffset : clusterSize;
  const h: Qcow2Header = { version, clusterBits, size, needsDataFile: (incompatible & INCOMPAT_DATA_FILE) !== 0n };

  let off = headerLength;
  const seen = new Set<number>();
  while (off < extEnd) {
    // An image shorter than its first cluster ends its extensions with the file.
    if (off + 8 > buf.length) {
      if (off >= buf.length) break;
      throw new Qcow2Error('truncated header extension');
    }
    const type = buf.readUInt32BE(off);
    const len = buf.readUInt32BE(off + 4);
    off += 8;
    if (len > extEnd - off) throw new Qcow2Error('header extension too large');
    if (type === EXT_END) break;
    if (type === EXT_BACKING_FORMAT || type === EXT_DATA_FILE) {
      // QEMU keeps the last of several; refusing duplicates leaves nothing to argue about.
      if (seen.has(type)) throw new Qcow2Error('duplicate header extension');
      seen.add(type);
      const data = slice(buf, off, len, 'header extension');
      if (type === EXT_BACKING_FORMAT) {
        if (len > MAX_FORMAT_NAME) throw new Qcow2Error('backing format name too long');
        h.backingFormat = headerString(data, 'backing format name');
      } else {
        if (len > MAX_DATA_FILE_NAME) throw new Qcow2Error('data file name too long');
        h.dataFile = headerString(data, 'data file name');
      }
    }
    off += Math.ceil(len / 8) * 8;
  }

  if (backingOffset !== 0 && backingSize !== 0) {
    if (backingSize > Math.min(MAX_BACKING_NAME, clusterSize - backingOffset)) {
      throw new Qcow2Error('backing file name too long');
    }
    h.backingFile = headerString(slice(buf, backingOffset, backingSize, 'backing file name'), 'backing file name');
    if (h.backingFile === '') delete h.backingFile;
  }
  return h;
}

/** Read and parse the header of the open image `fd`; undefined when it is not a qcow2 image. */
export function readQcow2Header(fd: number): Qcow2Header | undefined {
  const fileSize = fstatSync(fd).size;
  const first = Buffer.alloc(Math.min(V3_MIN_HEADER_LENGTH, fileSize));
  const n = readSync(fd, first, 0, first.length, 0);
  if (!hasQcow2Magic(first.subarray(0, n))) return undefined;
  if (n < 24) throw new Qcow2Error('truncated qcow2 header');
  const bits = first.readUInt32BE(20);
  if (bits < MIN_CLUSTER_BITS || bits > MAX_CLUSTER_BITS) throw new Qcow2Error(`invalid cluster size (2^${bits})`);
  const buf = Buffer.alloc(Math.min(2 ** bits, fileSize));
  const got = readSync(fd, buf, 0, buf.length, 0);
  return parseQcow2Header(buf.subarray(0, got));
}
