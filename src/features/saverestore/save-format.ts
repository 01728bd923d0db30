// Xenode's save file: a versioned container around QEMU's migration stream.
//
//   header   16 B magic "XENODE-SAVE\n\0\r\n\x1a" (the \r\n\x1a catch text-mode
//            mangling), u16 major, u16 minor, u32 flags (0)           = 24 B
//   sections u32 type, u32 flags, u64 length, sha256 of the payload    = 48 B,
//            then the payload. Flag OPTIONAL: a reader that does not know the
//            type skips it; an unknown type without it is refused.
//            Flag STREAMED (the QEMU stream, always last): length and sha256
//            are 0 in the header because the stream is appended as QEMU
//            produces it; the trailer carries them.
//   trailer  "XNSAVEND", u64 stream length, u32 chunk size, u32 checksum
//            algorithm, 32 B checksum of the stream, u64 file length   = 64 B
//
// The stream checksum (format 1.1) is XXH3-64 (algorithm 1, chunk size 0; the
// 8-byte digest little-endian, then zeros): it guards against truncation and
// corruption at 3-4 GB/s, where sha256 ran at 1 GB/s and was most of what save
// and restore added to QEMU's own time. Format 1.0 files carry algorithm 0:
// sha256 over the sha256 of each `chunk size` piece; they still restore.
// The small sections keep sha256. All integers are little-endian.
// A file is written as NAME.partial and renamed when complete, so a crash
// never leaves a file that looks whole.

import { createHash, type Hash } from 'node:crypto';
import {
  closeSync,
  read as fsRead,
  fstatSync,
  fsync,
  lstatSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statfsSync,
  writeSync,
} from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { xxh3 } from '@node-rs/xxhash';
import { XenodeError } from '../../errors.ts';
import { startWriteback } from './writeback.ts';

export const SAVE_MAGIC = Buffer.from('XENODE-SAVE\n\0\r\n\x1a', 'latin1');
export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 1;
const HEADER_SIZE = 24;
const SECTION_HEADER_SIZE = 48;
const TRAILER_MAGIC = Buffer.from('XNSAVEND', 'latin1');
export const TRAILER_SIZE = 64;
export const STREAM_CHUNK = 4 << 20;
/** How much new stream makes the writer ask for early writeback. */
const WRITEBACK_STEP = 1 << 20;
/** JSON sections are small; a huge length field means a damaged file, not a big config. */
const MAX_SECTION = 64 << 20;

export const SECTION = {
  config: 1,
  store: 2,
  meta: 3,
  console: 4,
  qemu: 16,
} as const;
export type SectionName = keyof typeof SECTION;

export const FLAG_OPTIONAL = 1;
export const FLAG_STREAMED = 2;

/** A regular file (not a directory, not missing): only those are replaced by a save. */
function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

function sectionName(type: number): string {
  const e = Object.entries(SECTION).find(([, t]) => t === type);
  return e ? e[0] : `type ${type}`;
}

export const CHECKSUM = { chunkedSha256: 0, xxh3: 1 } as const;

/** A checksum of the QEMU stream, fed incrementally. */
export interface StreamHash {
  readonly algorithm: number;
  readonly chunkSize: number;
  length: number;
  update(buf: Buffer): void;
  /** 32 bytes, as the trailer holds it. */
  digest(): Buffer;
}

/** XXH3-64 of the whole stream (format 1.1). */
export class Xxh3Hash implements StreamHash {
  readonly algorithm = CHECKSUM.xxh3;
  readonly chunkSize = 0;
  private readonly h = xxh3.Xxh3.withSeed(0n);
  length = 0;

  update(buf: Buffer): void {
    this.h.update(buf);
    this.length += buf.length;
  }

  digest(): Buffer {
    const out = Buffer.alloc(32);
    out.writeBigUInt64LE(this.h.digest(), 0);
    return out;
  }
}

/** sha256 over per-chunk sha256s (format 1.0); fed incrementally. */
export class ChunkedHash implements StreamHash {
  readonly algorithm = CHECKSUM.chunkedSha256;
  private outer: Hash = createHash('sha256');
  private inner: Hash = createHash('sha256');
  private inChunk = 0;
  length = 0;

  constructor(readonly chunkSize = STREAM_CHUNK) {}

  update(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      const n = Math.min(buf.length - off, this.chunkSize - this.inChunk);
      this.inner.update(buf.subarray(off, off + n));
      this.inChunk += n;
      off += n;
      if (this.inChunk === this.chunkSize) {
        this.outer.update(this.inner.digest());
        this.inner = createHash('sha256');
        this.inChunk = 0;
      }
    }
    this.length += buf.length;
  }

  digest(): Buffer {
    if (this.inChunk > 0) this.outer.update(this.inner.digest());
    return this.outer.digest();
  }
}

/** A write to a save file that failed for lack of space, told as such with the file's name. */
export function saveWriteError(path: string, e: unknown): XenodeError | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const why = code === 'ENOSPC' ? 'no space left on device' : code === 'EDQUOT' ? 'disk quota exceeded' : undefined;
  if (!why) return undefined;
  return new XenodeError('engine', `cannot write save file '${path}': ${why} (${code})`, {
    hint: 'free space on its file system or save elsewhere',
  });
}

/** Less than this free on the file's file system after a failed stream: it filled up. */
const FULL_BELOW = 1 << 20;

/** Writes a save file: header, sections, then the QEMU stream as it arrives, then the trailer. */
export class SaveFileWriter {
  private fd: number;
  private pos = 0;
  private streaming = false;
  private hash?: StreamHash;
  /** Where early writeback has been asked for up to. */
  private flushedTo = 0;
  private closed = false;
  readonly partial: string;

  /**
   * `durable`: the file must be on disk when finish() returns (a save that destroys
   * the domain: the file is its only copy). Only such a file has its writeback
   * started as it grows; otherwise the kernel writes it back in its own time, as
   * for plain QEMU's `cat`, and the next restore does not compete with that writeback.
   */
  readonly durable: boolean;
  /** The format version in the header, as "major.minor". */
  readonly format: string;

  constructor(
    readonly path: string,
    opts: { durable?: boolean; version?: { major: number; minor: number } } = {},
  ) {
    const version = opts.version ?? { major: FORMAT_MAJOR, minor: FORMAT_MINOR };
    this.format = `${version.major}.${version.minor}`;
    this.durable = opts.durable ?? true;
    this.partial = `${path}.partial`;
    try {
      this.fd = openSync(this.partial, 'w', 0o600);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new XenodeError(
        code === 'ENOENT' ? 'not-found' : code === 'EACCES' ? 'permission' : 'usage',
        `cannot write save file '${path}': ${code === 'ENOENT' ? 'no such directory' : (code ?? String(e))}`,
      );
    }
    const h = Buffer.alloc(HEADER_SIZE);
    SAVE_MAGIC.copy(h, 0);
    h.writeUInt16LE(version.major, 16);
    h.writeUInt16LE(version.minor, 18);
    h.writeUInt32LE(0, 20);
    try {
      this.write(h);
    } catch (e) {
      closeSync(this.fd);
      rmSync(this.partial, { force: true });
      throw e;
    }
  }

  private write(b: Buffer): void {
    let off = 0;
    try {
      while (off < b.length) off += writeSync(this.fd, b, off, b.length - off, this.pos + off);
    } catch (e) {
      throw saveWriteError(this.path, e) ?? e;
    }
    this.pos += b.length;
  }

  /**
   * What a failed save comes down to when the file's own file system is the
   * cause. QEMU appends the stream through `cat`, so a full disk reaches it only
   * as a broken pipe: while the partial file still fills the disk, look at it.
   */
  explainFailure(e: unknown): XenodeError | undefined {
    const direct = saveWriteError(this.path, e);
    if (direct || !this.streaming) return direct;
    try {
      const fs = statfsSync(dirname(this.partial));
      const free = (process.getuid?.() === 0 ? fs.bfree : fs.bavail) * fs.bsize;
      return free < FULL_BELOW ? saveWriteError(this.path, { code: 'ENOSPC' }) : undefined;
    } catch {
      return undefined;
    }
  }

  addSection(type: number, payload: Buffer, flags = 0): void {
    if (this.streaming) throw new Error('sections must come before the stream');
    const h = Buffer.alloc(SECTION_HEADER_SIZE);
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(flags, 4);
    h.writeBigUInt64LE(BigInt(payload.length), 8);
    createHash('sha256').update(payload).digest().copy(h, 16);
    this.write(h);
    this.write(payload);
  }

  addJson(type: number, value: unknown, flags = 0): void {
    this.addSection(type, Buffer.from(JSON.stringify(value), 'utf8'), flags);
  }

  beginStream(type: number = SECTION.qemu): void {
    const h = Buffer.alloc(SECTION_HEADER_SIZE);
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(FLAG_STREAMED, 4);
    this.write(h);
    this.streaming = true;
    this.hash = new Xxh3Hash();
  }

  /** Every MiB of a durable file, have the kernel start writing what is already in it. */
  private writeBehind(): void {
    if (!this.durable || this.pos - this.flushedTo < WRITEBACK_STEP) return;
    startWriteback(this.fd, this.flushedTo, this.pos - this.flushedTo);
    this.flushedTo = this.pos;
  }

  /** Append a piece of the stream (synchronous: the caller's chunks arrive in order). */
  writeStream(chunk: Buffer): void {
    if (!this.hash) throw new Error('beginStream first');
    this.hash.update(chunk);
    this.write(chunk);
    this.writeBehind();
  }

  /**
   * Hash the stream while another process (QEMU's `exec:cat >>`) appends it to
   * the partial file, reading just behind the writer. Resolves once `finished()`
   * holds and everything up to the end of the file is hashed; rejects if
   * `abort` fires first.
   */
  async followAppended(finished: () => boolean, abort?: AbortSignal, onBytes?: (n: number) => void): Promise<void> {
    const hash = this.hash;
    if (!hash) throw new Error('beginStream first');
    const fh = await open(this.partial, 'r');
    const buf = Buffer.allocUnsafe(2 << 20);
    let lastLook = false;
    try {
      for (;;) {
        if (abort?.aborted) throw abort.reason;
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.pos);
        if (bytesRead > 0) {
          hash.update(buf.subarray(0, bytesRead));
          this.pos += bytesRead;
          this.writeBehind();
          onBytes?.(hash.length);
          continue;
        }
        if (lastLook) return;
        // The writer may have appended between our read and this check: one more read after it.
        if (finished()) lastLook = true;
        else await new Promise((r) => setTimeout(r, 2));
      }
    } finally {
      await fh.close();
    }
  }

  get streamBytes(): number {
    return this.hash?.length ?? 0;
  }

  /** Write the trailer and give the file its final name (after an fsync if durable). */
  async finish(): Promise<number> {
    if (!this.hash) throw new Error('no stream written');
    const t = Buffer.alloc(TRAILER_SIZE);
    TRAILER_MAGIC.copy(t, 0);
    t.writeBigUInt64LE(BigInt(this.hash.length), 8);
    t.writeUInt32LE(this.hash.chunkSize, 16);
    t.writeUInt32LE(this.hash.algorithm, 20);
    this.hash.digest().copy(t, 24);
    t.writeBigUInt64LE(BigInt(this.pos + TRAILER_SIZE), 56);
    this.write(t);
    // Writeback started while the stream came in (writeBehind), so an fsync waits for
    // the tail only; an fsync every few MiB instead slowed the stream down 2x here.
    if (this.durable) {
      await new Promise<void>((resolve, reject) =>
        fsync(this.fd, (e) => (e ? reject(saveWriteError(this.path, e) ?? e) : resolve())),
      );
    }
    closeSync(this.fd);
    this.closed = true;
    // Renaming over an existing save file frees the old one's blocks and pages in the
    // rename: 30 ms for 66 MiB here. Moving it aside keeps a complete file under one
    // of the two names at every moment and lets it be freed in the background.
    const aside = isFile(this.path) ? `${this.path}.replaced-${process.pid}` : undefined;
    if (aside) renameSync(this.path, aside);
    renameSync(this.partial, this.path);
    // Freeing the old file's blocks and cached pages took another 27 ms: not on our time.
    if (aside) void rm(aside, { force: true }).catch(() => undefined);
    return this.pos;
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.closed = true;
    }
    rmSync(this.partial, { force: true });
  }
}

export interface SaveFileSection {
  type: number;
  flags: number;
  offset: number;
  length: number;
}

/** A validated save file: small sections in memory, the stream as a byte range. */
export interface SaveFile {
  path: string;
  version: { major: number; minor: number };
  size: number;
  sections: Map<number, Buffer>;
  stream: { type: number; offset: number; length: number };
}

function bad(path: string, what: string, hint?: string): XenodeError {
  return new XenodeError('config', `save file '${path}' ${what}`, { hint });
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === len ? b : b.subarray(0, got);
}

export interface StreamTrailer {
  algorithm: number;
  chunkSize: number;
  digest: Buffer;
}

/**
 * Read and check everything but the stream's checksum: magic, version, every
 * section's bounds and sha256, the trailer. Throws a one-line XenodeError.
 */
export function readSaveFileHeader(path: string): SaveFile & { trailer: StreamTrailer } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new XenodeError('not-found', `save file '${path}' not found`);
    if (code === 'EISDIR') throw bad(path, 'is a directory');
    throw new XenodeError('permission', `cannot read save file '${path}': ${code ?? String(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw bad(path, 'is a directory');
    const size = st.size;
    const head = readAt(fd, 0, HEADER_SIZE);
    if (head.length < SAVE_MAGIC.length || !head.subarray(0, SAVE_MAGIC.length).equals(SAVE_MAGIC)) {
      const xl = head.subarray(0, 16).toString('latin1').startsWith('Xen saved domain');
      throw bad(
        path,
        'is not a Xenode save file (bad magic)',
        xl ? 'this is an xl save file; Xenode cannot restore Xen domains' : undefined,
      );
    }
    if (head.length < HEADER_SIZE) throw bad(path, `is truncated (${size} bytes, header incomplete)`);
    const major = head.readUInt16LE(16);
    const minor = head.readUInt16LE(18);
    if (major !== FORMAT_MAJOR) {
      throw bad(
        path,
        `has format version ${major}.${minor}; this Xenode reads version ${FORMAT_MAJOR}.x`,
        major > FORMAT_MAJOR ? 'restore it with a newer Xenode' : 'it was written by an incompatible Xenode',
      );
    }
    if (size < HEADER_SIZE + TRAILER_SIZE) throw bad(path, `is truncated (${size} bytes)`);
    const trailer = readAt(fd, size - TRAILER_SIZE, TRAILER_SIZE);
    if (!trailer.subarray(0, 8).equals(TRAILER_MAGIC)) {
      throw bad(path, `is truncated or incomplete (no end marker after ${size} bytes)`);
    }
    const declared = Number(trailer.readBigUInt64LE(56));
    if (declared !== size) {
      throw bad(
        path,
        declared > size ? `is truncated (${size} of ${declared} bytes)` : `has ${size - declared} stray bytes`,
      );
    }
    const streamLength = Number(trailer.readBigUInt64LE(8));
    const chunkSize = trailer.readUInt32LE(16);
    const algorithm = trailer.readUInt32LE(20);
    const digest = Buffer.from(trailer.subarray(24, 56));
    if (algorithm === CHECKSUM.chunkedSha256 ? chunkSize === 0 : algorithm !== CHECKSUM.xxh3) {
      throw algorithm > CHECKSUM.xxh3
        ? bad(path, `needs a newer Xenode (unknown checksum algorithm ${algorithm})`)
        : bad(path, 'is corrupted (bad trailer)');
    }

    const sections = new Map<number, Buffer>();
    let pos = HEADER_SIZE;
    const end = size - TRAILER_SIZE;
    for (;;) {
      if (pos + SECTION_HEADER_SIZE > end) throw bad(path, 'is corrupted (no QEMU state section)');
      const h = readAt(fd, pos, SECTION_HEADER_SIZE);
      const type = h.readUInt32LE(0);
      const flags = h.readUInt32LE(4);
      const length = Number(h.readBigUInt64LE(8));
      pos += SECTION_HEADER_SIZE;
      if (flags & FLAG_STREAMED) {
        if (type !== SECTION.qemu) throw bad(path, `is corrupted (unexpected streamed ${sectionName(type)} section)`);
        if (pos + streamLength !== end) {
          throw bad(path, `is corrupted (QEMU state is ${end - pos} bytes, trailer says ${streamLength})`);
        }
        if (streamLength === 0) throw bad(path, 'is corrupted (empty QEMU state)');
        return {
          path,
          version: { major, minor },
          size,
          sections,
          stream: { type, offset: pos, length: streamLength },
          trailer: { algorithm, chunkSize, digest },
        };
      }
      if (length > MAX_SECTION || pos + length > end) {
        throw bad(path, `is corrupted or truncated (the ${sectionName(type)} section runs past the end)`);
      }
      const known = Object.values(SECTION).includes(type as (typeof SECTION)[SectionName]);
      if (!known && !(flags & FLAG_OPTIONAL)) {
        throw bad(path, `needs a newer Xenode (unknown mandatory section type ${type})`);
      }
      const payload = readAt(fd, pos, length);
      if (!createHash('sha256').update(payload).digest().equals(h.subarray(16, 48))) {
        throw bad(path, `is corrupted (checksum mismatch in the ${sectionName(type)} section)`);
      }
      if (known) {
        if (sections.has(type)) throw bad(path, `is corrupted (two ${sectionName(type)} sections)`);
        sections.set(type, payload);
      }
      pos += length;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Check the stream's checksum against the trailer, reading the whole stream through
 * `fd`, an open descriptor of `path` (positioned reads: its file position is left
 * where it was, and so is the descriptor).
 */
export async function verifyStream(
  path: string,
  fd: number,
  stream: { offset: number; length: number },
  trailer: StreamTrailer,
  onBytes?: (n: number) => void,
): Promise<void> {
  const h: StreamHash = trailer.algorithm === CHECKSUM.xxh3 ? new Xxh3Hash() : new ChunkedHash(trailer.chunkSize);
  const read = (buf: Buffer, len: number, pos: number): Promise<number> =>
    new Promise((resolve, reject) => fsRead(fd, buf, 0, len, pos, (e, n) => (e ? reject(e) : resolve(n))));
  // Two buffers: the next read (thread pool) runs while this one is hashed. 2 MiB
  // each stay in the CPU cache between read and hash: 18 ms for 66 MiB here, 20-40
  // ms with 4-16 MiB.
  const size = 2 << 20;
  const bufs = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
  const end = stream.offset + stream.length;
  const readAt = (i: number, pos: number) =>
    pos >= end ? Promise.resolve(0) : read(bufs[i] as Buffer, Math.min(size, end - pos), pos);
  let pos = stream.offset;
  let cur = 0;
  let pending = readAt(cur, pos);
  for (;;) {
    const n = await pending;
    if (n === 0) break;
    pos += n;
    pending = readAt(1 - cur, pos);
    h.update((bufs[cur] as Buffer).subarray(0, n));
    onBytes?.(h.length);
    cur = 1 - cur;
  }
  if (h.length !== stream.length || !h.digest().equals(trailer.digest)) {
    throw bad(path, 'is corrupted (checksum mismatch in the QEMU state)');
  }
}

/**
 * An open descriptor of the save file whose position is the stream's first byte,
 * for QEMU to read the state from (inheritedFdUri). Positioned by reading up to it,
 * since Node has no lseek.
 */
export function openStreamAt(path: string, offset: number): number {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(offset, 1 << 20));
    for (let left = offset; left > 0; ) {
      const n = readSync(fd, buf, 0, Math.min(left, buf.length), null);
      if (n === 0) throw bad(path, 'is truncated or incomplete');
      left -= n;
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Open a save file and verify all of it, the stream included, before anything is started. */
export async function readSaveFile(path: string, onVerify?: (bytes: number, total: number) => void): Promise<SaveFile> {
  const f = readSaveFileHeader(path);
  const fd = openSync(path, 'r');
  try {
    await verifyStream(path, fd, f.stream, f.trailer, onVerify ? (n) => onVerify(n, f.stream.length) : undefined);
  } finally {
    closeSync(fd);
  }
  const { trailer: _t, ...rest } = f;
  return rest;
}

/** A JSON section, parsed; `what` names it in errors. */
export function jsonSection(f: SaveFile, type: number): unknown {
  const b = f.sections.get(type);
  if (!b) throw bad(f.path, `is incomplete (no ${sectionName(type)} section)`);
  try {
    return JSON.parse(b.toString('utf8'));
  } catch {
    throw bad(f.path, `is corrupted (the ${sectionName(type)} section is not JSON)`);
  }
}
