// virtio-blk requests (virtio 1.x, 5.2.6) taken from a queue's chain and
// carried out on the image. The header (type, sector) is the first 16 bytes the
// device reads, the status the last byte it writes; any layout of buffers is
// accepted (VERSION_1 has no framing rules). Every request is checked before it
// touches the image: its data a whole number of sectors, inside the image, its
// segments within the advertised limits; a write to a read-only disk fails
// with IOERR and writes nothing (virtio 1.2, 5.2.6.1: "The device MUST set the
// status byte to VIRTIO_BLK_S_IOERR for a write request if the VIRTIO_BLK_F_RO
// feature if offered, and MUST NOT write any data").

import { dataView } from './guest-memory.ts';
import type { Chain } from './virtqueue.ts';

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
export const SECTOR = 512;
export const VIRTIO_BLK_ID_BYTES = 20;
/** Advertised (config space) and enforced. */
export const MAX_DISCARD_SEG = 1;
export const MAX_DISCARD_SECTORS = 1 << 22;
export const DISCARD_ALIGNMENT_SECTORS = 8;
const WRITE_ZEROES_UNMAP = 1;
const HEADER = 16;
const SEGMENT = 16;

/** The image behind a disk: reads and writes of whole sectors at byte positions. */
export interface BlockImage {
  /** Bytes the guest sees (whole sectors). */
  readonly size: number;
  readonly readOnly: boolean;
  readv(bufs: Uint8Array[], pos: number): Promise<void>;
  writev(bufs: Uint8Array[], pos: number): Promise<void>;
  flush(): Promise<void>;
  discard(pos: number, len: number): Promise<void>;
  writeZeroes(pos: number, len: number, unmap: boolean): Promise<void>;
}

export interface BlkOptions {
  /** GET_ID's answer (the vdev, as QEMU's own disks give it). */
  serial: string;
  /** DISCARD and WRITE_ZEROES negotiated. */
  discard: boolean;
  writeZeroes: boolean;
}

export interface BlkResult {
  status: number;
  /** Bytes written into the guest's buffers (the used length). */
  written: number;
  /** Why it failed, for the log. */
  error?: string;
  /** What it was, for the counters: a read, a write (of `bytes`), a flush, or something else. */
  kind?: 'read' | 'write' | 'flush' | 'other';
  /** Bytes moved between the image and the guest. */
  bytes?: number;
}

/** A BlockImage that can also move data synchronously (the queue-depth-1 fast path). */
export interface SyncBlockImage extends BlockImage {
  readvSync(bufs: Uint8Array[], pos: number): void;
  writevSync(bufs: Uint8Array[], pos: number): void;
  flushSync(): void;
}

/** A SyncBlockImage that can say, without blocking, whether the page cache takes a read or write now. */
export interface NowBlockImage extends SyncBlockImage {
  /** Read now if every byte is cached; false (nothing to count on) otherwise. */
  readvNow(bufs: Uint8Array[], pos: number): boolean;
  /** Write now if it cannot wait on the disk; false (nothing written) otherwise. */
  writevNow(bufs: Uint8Array[], pos: number): boolean;
}

/**
 * A request checked and ready: either already answered (`done`, an error or
 * GET_ID), or the one image operation left to do and the result it gives.
 */
type Planned =
  | { done: BlkResult }
  | { op: 'read'; bufs: Uint8Array[]; pos: number; ok: BlkResult }
  | { op: 'write'; bufs: Uint8Array[]; pos: number; ok: BlkResult }
  | { op: 'flush'; ok: BlkResult }
  | { op: 'discard'; run: () => Promise<BlkResult> };

/** The first `n` bytes of `segs` as views, and the rest. */
export function splitSegments(segs: readonly Uint8Array[], n: number): [Uint8Array[], Uint8Array[]] {
  const head: Uint8Array[] = [];
  const tail: Uint8Array[] = [];
  let left = n;
  for (const s of segs) {
    if (left >= s.length) {
      head.push(s);
      left -= s.length;
    } else if (left > 0) {
      head.push(s.subarray(0, left));
      tail.push(s.subarray(left));
      left = 0;
    } else tail.push(s);
  }
  return [head, tail];
}

function gather(segs: readonly Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let at = 0;
  for (const s of segs) {
    if (at >= n) break;
    const part = s.subarray(0, n - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function total(segs: readonly Uint8Array[]): number {
  let n = 0;
  for (const s of segs) n += s.length;
  return n;
}

function fail(status: number, error: string, written = 1, kind: BlkResult['kind'] = 'other'): BlkResult {
  return { status, written, error, kind };
}

/** Byte range of `sectors` from `sector`, or undefined unless it lies inside the image. */
function range(sector: bigint, bytes: number, size: number): number | undefined {
  if (sector > BigInt(Number.MAX_SAFE_INTEGER) / 512n) return undefined;
  const pos = Number(sector) * SECTOR;
  return pos + bytes <= size ? pos : undefined;
}

/**
 * Carry out one request and write its status. Never throws: whatever the
 * guest sent, the result is a status (or, when the chain has no status byte
 * in guest memory, a used length of 0 and an error for the log).
 */
export async function serveRequest(chain: Chain, image: BlockImage, o: BlkOptions): Promise<BlkResult> {
  const status = chain.statusByte;
  if (!status) return NO_STATUS;
  let r: BlkResult;
  let p: Planned | undefined;
  try {
    const q = plan(chain, image, o);
    p = q;
    if ('done' in q) r = q.done;
    else if (q.op === 'read') {
      await image.readv(q.bufs, q.pos);
      r = q.ok;
    } else if (q.op === 'write') {
      await image.writev(q.bufs, q.pos);
      r = q.ok;
    } else if (q.op === 'flush') {
      await image.flush();
      r = q.ok;
    } else r = await q.run();
  } catch (e) {
    r = ioError(e, p);
  }
  status[0] = r.status;
  return r;
}

/**
 * The same, carried out on this thread with no promise in between, for a
 * request the backend serves alone (queue depth 1: nothing to overlap it with,
 * and each hand-off to a worker thread costs more than the I/O). Undefined for
 * the kinds that stay asynchronous (discard, write-zeroes): serve those with
 * serveRequest.
 */
export function serveRequestSync(chain: Chain, image: SyncBlockImage, o: BlkOptions): BlkResult | undefined {
  const status = chain.statusByte;
  if (!status) return NO_STATUS;
  let r: BlkResult;
  let p: Planned | undefined;
  try {
    p = plan(chain, image, o);
    if ('done' in p) r = p.done;
    else if (p.op === 'read') {
      image.readvSync(p.bufs, p.pos);
      r = p.ok;
    } else if (p.op === 'write') {
      image.writevSync(p.bufs, p.pos);
      r = p.ok;
    } else if (p.op === 'flush') {
      image.flushSync();
      r = p.ok;
    } else return undefined;
  } catch (e) {
    r = ioError(e, p);
  }
  status[0] = r.status;
  return r;
}

/**
 * Serve a request now if it cannot block this thread: a read the page cache
 * holds, a write of whole pages into it, or a request answered without the
 * image (an error, GET_ID). Undefined, with nothing done to the guest's
 * status byte, for the rest (a cache miss, a flush, a discard): serve those
 * with serveRequest, which plans the request afresh. Several requests on the
 * ring at once are then served without a worker thread between.
 */
export function serveRequestNow(chain: Chain, image: NowBlockImage, o: BlkOptions): BlkResult | undefined {
  const status = chain.statusByte;
  if (!status) return NO_STATUS;
  let r: BlkResult;
  let p: Planned | undefined;
  try {
    p = plan(chain, image, o);
    if ('done' in p) r = p.done;
    else if (p.op === 'read') {
      if (!image.readvNow(p.bufs, p.pos)) return undefined;
      r = p.ok;
    } else if (p.op === 'write') {
      if (!image.writevNow(p.bufs, p.pos)) return undefined;
      r = p.ok;
    } else return undefined;
  } catch (e) {
    r = ioError(e, p);
  }
  status[0] = r.status;
  return r;
}

const NO_STATUS: BlkResult = {
  status: VIRTIO_BLK_S_IOERR,
  written: 0,
  error: 'request without a status byte in guest memory',
};

function ioError(e: unknown, p: Planned | undefined): BlkResult {
  const kind = p && 'ok' in p ? p.ok.kind : 'other';
  return fail(VIRTIO_BLK_S_IOERR, `I/O error: ${e instanceof Error ? e.message : String(e)}`, 1, kind);
}

/** Check a request and say what is left to do; reads its header (once). */
function plan(chain: Chain, image: BlockImage, o: BlkOptions): Planned {
  if (chain.bad) return { done: fail(VIRTIO_BLK_S_IOERR, chain.bad) };
  if (chain.readLen < HEADER) return { done: fail(VIRTIO_BLK_S_IOERR, `request header of ${chain.readLen} bytes`) };
  const hv = dataView(gather(chain.readable, HEADER));
  const type = hv.getUint32(0, true);
  const sector = hv.getBigUint64(8, true);
  const [, out] = splitSegments(chain.readable, HEADER);
  // Everything the device writes except the status byte, the last.
  const [into] = splitSegments(chain.writable, chain.writeLen - 1);
  const intoLen = chain.writeLen - 1;
  switch (type) {
    case VIRTIO_BLK_T_IN: {
      if (intoLen % SECTOR !== 0)
        return { done: fail(VIRTIO_BLK_S_IOERR, `read of ${intoLen} bytes (not whole sectors)`, 1, 'read') };
      const pos = range(sector, intoLen, image.size);
      if (pos === undefined)
        return {
          done: fail(VIRTIO_BLK_S_IOERR, `read of ${intoLen} bytes at sector ${sector}: past the end`, 1, 'read'),
        };
      const ok: BlkResult = { status: VIRTIO_BLK_S_OK, written: intoLen + 1, kind: 'read', bytes: intoLen };
      return intoLen > 0 ? { op: 'read', bufs: into, pos, ok } : { done: ok };
    }
    case VIRTIO_BLK_T_OUT: {
      const len = chain.readLen - HEADER;
      if (image.readOnly) return { done: fail(VIRTIO_BLK_S_IOERR, 'write to a read-only disk', 1, 'write') };
      if (len % SECTOR !== 0)
        return { done: fail(VIRTIO_BLK_S_IOERR, `write of ${len} bytes (not whole sectors)`, 1, 'write') };
      const pos = range(sector, len, image.size);
      if (pos === undefined)
        return {
          done: fail(VIRTIO_BLK_S_IOERR, `write of ${len} bytes at sector ${sector}: past the end`, 1, 'write'),
        };
      const ok: BlkResult = { status: VIRTIO_BLK_S_OK, written: 1, kind: 'write', bytes: len };
      return len > 0 ? { op: 'write', bufs: out, pos, ok } : { done: ok };
    }
    case VIRTIO_BLK_T_FLUSH: {
      const ok: BlkResult = { status: VIRTIO_BLK_S_OK, written: 1, kind: 'flush' };
      return image.readOnly ? { done: ok } : { op: 'flush', ok };
    }
    case VIRTIO_BLK_T_GET_ID: {
      const id = new Uint8Array(VIRTIO_BLK_ID_BYTES);
      id.set(new TextEncoder().encode(o.serial).subarray(0, VIRTIO_BLK_ID_BYTES));
      const n = Math.min(intoLen, VIRTIO_BLK_ID_BYTES);
      let at = 0;
      for (const s of into) {
        if (at >= n) break;
        const k = Math.min(s.length, n - at);
        s.set(id.subarray(at, at + k));
        at += k;
      }
      return { done: { status: VIRTIO_BLK_S_OK, written: n + 1, kind: 'other' } };
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
      return { op: 'discard', run: () => discardOrZero(type, out, chain.readLen - HEADER, image, o) };
    default:
      return { done: fail(VIRTIO_BLK_S_UNSUPP, `request type ${type}`) };
  }
}

async function discardOrZero(
  type: number,
  segs: Uint8Array[],
  len: number,
  image: BlockImage,
  o: BlkOptions,
): Promise<BlkResult> {
  const zero = type === VIRTIO_BLK_T_WRITE_ZEROES;
  const what = zero ? 'write-zeroes' : 'discard';
  if (image.readOnly || !(zero ? o.writeZeroes : o.discard)) return fail(VIRTIO_BLK_S_UNSUPP, `${what} not offered`);
  if (len === 0 || len % SEGMENT !== 0) return fail(VIRTIO_BLK_S_IOERR, `${what} of ${len} bytes of segments`);
  const n = len / SEGMENT;
  if (n > MAX_DISCARD_SEG) return fail(VIRTIO_BLK_S_IOERR, `${what} of ${n} segments (at most ${MAX_DISCARD_SEG})`);
  const raw = dataView(gather(segs, len));
  const ops: Array<{ pos: number; bytes: number; unmap: boolean }> = [];
  for (let i = 0; i < n; i++) {
    const sector = raw.getBigUint64(i * SEGMENT, true);
    const count = raw.getUint32(i * SEGMENT + 8, true);
    const flags = raw.getUint32(i * SEGMENT + 12, true);
    if (zero ? flags & ~WRITE_ZEROES_UNMAP : flags !== 0) return fail(VIRTIO_BLK_S_UNSUPP, `${what} flags ${flags}`);
    if (count > MAX_DISCARD_SECTORS) return fail(VIRTIO_BLK_S_IOERR, `${what} of ${count} sectors`);
    const pos = range(sector, count * SECTOR, image.size);
    if (pos === undefined) return fail(VIRTIO_BLK_S_IOERR, `${what} at sector ${sector}: past the end`);
    ops.push({ pos, bytes: count * SECTOR, unmap: (flags & WRITE_ZEROES_UNMAP) !== 0 });
  }
  for (const op of ops) {
    if (op.bytes === 0) continue;
    if (zero) await image.writeZeroes(op.pos, op.bytes, op.unmap);
    else await image.discard(op.pos, op.bytes);
  }
  return { status: VIRTIO_BLK_S_OK, written: 1 };
}

export { total as segmentBytes };
