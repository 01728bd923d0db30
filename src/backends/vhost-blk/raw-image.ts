// A raw image file as the backend's BlockImage. Opened with O_DIRECT where the
// file system takes it (the guest has its own page cache; the host's would
// hold the same data twice); a buffered descriptor beside it serves requests
// whose buffers are not aligned for O_DIRECT and whole images on file systems
// without it (tmpfs). A flush is fdatasync(2) either way: O_DIRECT bypasses the
// page cache, not the device's write cache or the file's metadata.

import {
  closeSync,
  constants,
  fdatasync,
  fdatasyncSync,
  fstatSync,
  openSync,
  readv,
  readvSync,
  write,
  writev,
  writevSync,
} from 'node:fs';
import { SECTOR, type SyncBlockImage } from './blk-request.ts';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  fallocateAsync,
  readvIfCached,
} from './libc.ts';

const EINVAL = 'EINVAL';
/** Linux's IOV_MAX: longer lists go in several calls. */
const IOV_MAX = 1024;
/** O_DIRECT wants buffers, positions and lengths aligned to the logical block size; 4 KiB is always enough. */
const DIRECT_ALIGN = 4096;
const ZERO_CHUNK = 1 << 20;
const PAGE = 4096;

export type DirectMode = 'auto' | 'on' | 'off';

type Vec = (
  fd: number,
  bufs: Uint8Array[],
  pos: number,
  cb: (err: NodeJS.ErrnoException | null, n: number) => void,
) => void;

function vecIo(fn: Vec, fd: number, bufs: Uint8Array[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => fn(fd, bufs, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

/** Move every byte of `bufs` at `pos`, in as many calls as it takes (short transfers, IOV_MAX). */
async function allOf(fn: Vec, fd: number, bufs: Uint8Array[], pos: number, what: string): Promise<void> {
  let list = bufs.filter((b) => b.length > 0);
  let at = pos;
  while (list.length > 0) {
    const batch = list.slice(0, IOV_MAX);
    const n = await vecIo(fn, fd, batch, at);
    if (n <= 0) throw new Error(`${what} at ${at}: ${n === 0 ? 'end of file' : 'failed'}`);
    at += n;
    // Drop what was moved, keep the rest of a partly moved buffer.
    let left = n;
    const rest: Uint8Array[] = [];
    for (const b of list) {
      if (left >= b.length) left -= b.length;
      else if (left > 0) {
        rest.push(b.subarray(left));
        left = 0;
      } else rest.push(b);
    }
    list = rest;
  }
}

type VecSync = (fd: number, bufs: Uint8Array[], pos: number) => number;

/** allOf on this thread. */
function allOfSync(fn: VecSync, fd: number, bufs: Uint8Array[], pos: number, what: string): void {
  // The common case, one call that moves everything, allocates nothing more.
  let list = bufs;
  let at = pos;
  for (;;) {
    const want = list.reduce((n, b) => n + b.length, 0);
    if (want === 0) return;
    const batch = list.length > IOV_MAX ? list.slice(0, IOV_MAX) : list;
    const n = fn(fd, batch, at);
    if (n <= 0) throw new Error(`${what} at ${at}: ${n === 0 ? 'end of file' : 'failed'}`);
    if (n === want) return;
    at += n;
    let left = n;
    const rest: Uint8Array[] = [];
    for (const b of list) {
      if (left >= b.length) left -= b.length;
      else if (left > 0) {
        rest.push(b.subarray(left));
        left = 0;
      } else rest.push(b);
    }
    list = rest;
  }
}

function aligned(bufs: readonly Uint8Array[], pos: number): boolean {
  if (pos % DIRECT_ALIGN !== 0) return false;
  for (const b of bufs) if (b.byteOffset % DIRECT_ALIGN !== 0 || b.length % DIRECT_ALIGN !== 0) return false;
  return true;
}

export class RawImage implements SyncBlockImage {
  readonly size: number;
  /** Whether O_DIRECT is in use (for the log and the bench). */
  readonly direct: boolean;
  private readonly buffered: number;
  private readonly directFd: number;

  constructor(
    readonly path: string,
    readonly readOnly: boolean,
    mode: DirectMode = 'auto',
  ) {
    const flags = readOnly ? constants.O_RDONLY : constants.O_RDWR;
    this.buffered = openSync(path, flags);
    const st = fstatSync(this.buffered);
    if (!st.isFile()) {
      closeSync(this.buffered);
      throw new Error(`${path} is not a regular file`);
    }
    this.size = Math.floor(st.size / SECTOR) * SECTOR;
    let directFd = -1;
    if (mode !== 'off') {
      try {
        directFd = openSync(path, flags | constants.O_DIRECT);
      } catch (e) {
        if (mode === 'on' || (e as NodeJS.ErrnoException).code !== EINVAL) {
          closeSync(this.buffered);
          throw e;
        }
      }
    }
    this.directFd = directFd;
    this.direct = directFd >= 0;
  }

  /** The descriptor for these buffers: O_DIRECT when they are aligned for it. */
  private fdFor(bufs: readonly Uint8Array[], pos: number): number {
    return this.directFd >= 0 && aligned(bufs, pos) ? this.directFd : this.buffered;
  }

  async readv(bufs: Uint8Array[], pos: number): Promise<void> {
    await this.io(readv as unknown as Vec, bufs, pos, 'read');
  }

  async writev(bufs: Uint8Array[], pos: number): Promise<void> {
    if (this.readOnly) throw new Error('read-only image');
    await this.io(writev as unknown as Vec, bufs, pos, 'write');
  }

  private async io(fn: Vec, bufs: Uint8Array[], pos: number, what: string): Promise<void> {
    const fd = this.fdFor(bufs, pos);
    try {
      await allOf(fn, fd, bufs, pos, what);
    } catch (e) {
      // The file system refused this O_DIRECT transfer after all: the page cache takes it.
      if (fd === this.directFd && (e as NodeJS.ErrnoException).code === EINVAL) {
        await allOf(fn, this.buffered, bufs, pos, what);
      } else throw e;
    }
  }

  readvSync(bufs: Uint8Array[], pos: number): void {
    this.ioSync(readvSync, bufs, pos, 'read');
  }

  writevSync(bufs: Uint8Array[], pos: number): void {
    if (this.readOnly) throw new Error('read-only image');
    this.ioSync(writevSync, bufs, pos, 'write');
  }

  private ioSync(fn: VecSync, bufs: Uint8Array[], pos: number, what: string): void {
    const fd = this.fdFor(bufs, pos);
    try {
      allOfSync(fn, fd, bufs, pos, what);
    } catch (e) {
      if (fd === this.directFd && (e as NodeJS.ErrnoException).code === EINVAL) {
        allOfSync(fn, this.buffered, bufs, pos, what);
      } else throw e;
    }
  }

  /**
   * A read the page cache holds, done now on this thread (no hand-off to a
   * worker); false if any of it is not cached (or the image is read with
   * O_DIRECT there), and then nothing is to be counted on in `bufs`.
   */
  readvNow(bufs: Uint8Array[], pos: number): boolean {
    return this.fdFor(bufs, pos) === this.buffered && readvIfCached(this.buffered, bufs, pos);
  }

  /**
   * A write into the page cache, done now on this thread: whole pages only (a
   * partial page may have to be read first), never with O_DIRECT; false and
   * nothing written otherwise.
   */
  writevNow(bufs: Uint8Array[], pos: number): boolean {
    if (this.readOnly || pos % PAGE !== 0 || this.fdFor(bufs, pos) !== this.buffered) return false;
    let n = 0;
    for (const b of bufs) n += b.length;
    if (n % PAGE !== 0) return false;
    allOfSync(writevSync, this.buffered, bufs, pos, 'write');
    return true;
  }

  flushSync(): void {
    fdatasyncSync(this.buffered);
  }

  flush(): Promise<void> {
    return new Promise((resolve, reject) => fdatasync(this.buffered, (e) => (e ? reject(e) : resolve())));
  }

  /** Give the range back to the file system; a file system that cannot is left as it is (a discard is a hint). */
  async discard(pos: number, len: number): Promise<void> {
    await fallocateAsync(this.buffered, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, pos, len);
  }

  async writeZeroes(pos: number, len: number, unmap: boolean): Promise<void> {
    const mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    if ((await fallocateAsync(this.buffered, mode, pos, len)) === 0) return;
    const zeros = new Uint8Array(Math.min(len, ZERO_CHUNK));
    for (let at = pos; at < pos + len; at += zeros.length) {
      const n = Math.min(zeros.length, pos + len - at);
      await new Promise<void>((resolve, reject) =>
        write(this.buffered, zeros, 0, n, at, (e) => (e ? reject(e) : resolve())),
      );
    }
  }

  close(): void {
    closeSync(this.buffered);
    if (this.directFd >= 0) closeSync(this.directFd);
  }
}
