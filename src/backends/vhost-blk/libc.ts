// The few libc calls the backend needs and Node has no API for: a Unix socket
// that carries descriptors (SCM_RIGHTS), mmap of the guest's memory, eventfds,
// poll(2) on a worker thread, memfd for the inflight region, fallocate for
// discard. The backend is a program of its own, so it has its own FFI module
// (src/engine/fd-passing.ts belongs to the engine). x86_64 Linux layouts.

import koffi, { type LibraryHandle } from 'koffi';

export const EAGAIN = 11;
export const EINTR = 4;
const EINVAL_ERRNO = 22;
const EOPNOTSUPP = 95;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CMSG_CLOEXEC = 0x40000000;
const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const MFD_CLOEXEC = 1;
export const FALLOC_FL_KEEP_SIZE = 1;
export const FALLOC_FL_PUNCH_HOLE = 2;
export const FALLOC_FL_ZERO_RANGE = 0x10;
/** The most descriptors one vhost-user message carries (SET_MEM_TABLE: 8 regions). */
export const MAX_FDS = 8;

type Fn = ReturnType<LibraryHandle['func']>;

interface Libc {
  socket: Fn;
  bind: Fn;
  listen: Fn;
  accept4: Fn;
  recvmsg: Fn;
  sendmsg: Fn;
  close: Fn;
  mmap: Fn;
  munmap: Fn;
  poll: Fn;
  eventfd: Fn;
  memfd_create: Fn;
  ftruncate: Fn;
  fallocate: Fn;
  read: Fn;
  write: Fn;
  preadv2: Fn;
}

let lib: Libc | undefined;

function libc(): Libc {
  if (lib) return lib;
  const l = koffi.load('libc.so.6');
  lib = {
    socket: l.func('int socket(int domain, int type, int protocol)'),
    bind: l.func('int bind(int fd, const void *addr, uint32_t len)'),
    listen: l.func('int listen(int fd, int backlog)'),
    accept4: l.func('int accept4(int fd, void *addr, void *len, int flags)'),
    recvmsg: l.func('long recvmsg(int fd, void *msg, int flags)'),
    sendmsg: l.func('long sendmsg(int fd, const void *msg, int flags)'),
    close: l.func('int close(int fd)'),
    mmap: l.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
    munmap: l.func('int munmap(void *addr, size_t len)'),
    poll: l.func('int poll(void *fds, unsigned long nfds, int timeout)'),
    eventfd: l.func('int eventfd(unsigned int initval, int flags)'),
    memfd_create: l.func('int memfd_create(const char *name, unsigned int flags)'),
    ftruncate: l.func('int ftruncate(int fd, int64_t len)'),
    fallocate: l.func('int fallocate(int fd, int mode, int64_t off, int64_t len)'),
    read: l.func('long read(int fd, void *buf, size_t n)'),
    write: l.func('long write(int fd, const void *buf, size_t n)'),
    preadv2: l.func('long preadv2(int fd, const void *iov, int iovcnt, int64_t off, int flags)'),
  };
  return lib;
}

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call} failed (errno ${errno})`);
  }
}

function check(call: string, r: number | bigint): number {
  const n = Number(r);
  if (n < 0) throw new SysError(call, koffi.errno());
  return n;
}

export function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}

/** A listening Unix stream socket at `path` (the caller removes a stale one first). */
export function listenUnix(path: string): number {
  const c = libc();
  const fd = check('socket', c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  const p = Buffer.from(path);
  if (p.length >= 108) throw new Error(`socket path too long: ${path}`);
  p.copy(addr, 2);
  try {
    check('bind', c.bind(fd, addr, 2 + p.length + 1));
    check('listen', c.listen(fd, 4));
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return fd;
}

/** accept4 on a non-blocking listener: the new connection (blocking), or -1 if none waits. */
export function acceptConn(listenFd: number): number {
  const r = Number(libc().accept4(listenFd, null, null, SOCK_CLOEXEC));
  if (r < 0) {
    const e = koffi.errno();
    if (e === EAGAIN || e === EINTR) return -1;
    throw new SysError('accept4', e);
  }
  return r;
}

// msghdr (56 B): name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48.
// iovec (16 B): base, len. cmsghdr: u64 len, i32 level, i32 type, then the fds.
// They live in one malloc'd block (absolute addresses inside it are known);
// the bytes themselves go through `DATA`, copied in and out.
const CMSG_HDR = 16;
const CONTROL_LEN = CMSG_HDR + 4 * MAX_FDS;
const OFF_MSG = 0;
const OFF_IOV = 64;
const OFF_CONTROL = 128;
const OFF_DATA = 256;
/** The largest message the block carries at once (vhost-user payloads are at most 4 KiB). */
export const MAX_IO = 8192;

interface Scratch {
  /** The block's pointer; msghdr is at its start (OFF_MSG = 0). */
  ptr: unknown;
  base: bigint;
  view: DataView;
  bytes: Uint8Array;
}
let scratch: Scratch | undefined;

function block(): Scratch {
  if (!scratch) {
    const l = koffi.load('libc.so.6');
    const calloc = l.func('void *calloc(size_t n, size_t size)');
    const size = OFF_DATA + MAX_IO;
    const ptr = calloc(1, size);
    const ab = koffi.view(ptr, size);
    scratch = { ptr, base: koffi.address(ptr), view: new DataView(ab), bytes: new Uint8Array(ab) };
  }
  return scratch;
}

function prepare(s: Scratch, len: number, controlLen: number): void {
  const v = s.view;
  for (let i = 0; i < 56; i += 8) v.setBigUint64(OFF_MSG + i, 0n, true);
  v.setBigUint64(OFF_IOV, s.base + BigInt(OFF_DATA), true);
  v.setBigUint64(OFF_IOV + 8, BigInt(len), true);
  v.setBigUint64(OFF_MSG + 16, s.base + BigInt(OFF_IOV), true);
  v.setBigUint64(OFF_MSG + 24, 1n, true);
  if (controlLen > 0) {
    v.setBigUint64(OFF_MSG + 32, s.base + BigInt(OFF_CONTROL), true);
    v.setBigUint64(OFF_MSG + 40, BigInt(controlLen), true);
  }
}

/**
 * One recvmsg(2) of up to `len` bytes (at most MAX_IO); returns the bytes (empty:
 * the peer closed; undefined: nothing waiting) and the descriptors that came with them.
 */
export function recvWithFds(sock: number, len: number): { data: Buffer; fds: number[] } | undefined {
  const s = block();
  const want = Math.min(len, MAX_IO);
  prepare(s, want, CONTROL_LEN);
  const c = libc();
  for (;;) {
    const r = Number(c.recvmsg(sock, s.ptr, MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
    if (r < 0) {
      const e = koffi.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return undefined;
      throw new SysError('recvmsg', e);
    }
    const fds: number[] = [];
    const v = s.view;
    const controllen = Number(v.getBigUint64(OFF_MSG + 40, true));
    if (controllen >= CMSG_HDR) {
      const clen = Number(v.getBigUint64(OFF_CONTROL, true));
      if (v.getInt32(OFF_CONTROL + 8, true) === SOL_SOCKET && v.getInt32(OFF_CONTROL + 12, true) === SCM_RIGHTS) {
        for (let off = CMSG_HDR; off + 4 <= Math.min(clen, CONTROL_LEN); off += 4) {
          fds.push(v.getInt32(OFF_CONTROL + off, true));
        }
      }
    }
    return { data: Buffer.from(s.bytes.subarray(OFF_DATA, OFF_DATA + r)), fds };
  }
}

/** Send all of `data` (at most MAX_IO), the descriptors (if any) with its first byte. */
export function sendWithFds(sock: number, data: Buffer, fds: readonly number[] = []): void {
  if (data.length > MAX_IO) throw new Error(`message too long (${data.length} bytes)`);
  if (fds.length > MAX_FDS) throw new Error('too many descriptors');
  const s = block();
  const c = libc();
  let off = 0;
  let first = true;
  while (off < data.length) {
    const n = data.length - off;
    s.bytes.set(data.subarray(off), OFF_DATA);
    const withFds = first && fds.length > 0;
    prepare(s, n, withFds ? CMSG_HDR + 8 * Math.ceil(fds.length / 2) : 0);
    if (withFds) {
      const v = s.view;
      v.setBigUint64(OFF_CONTROL, BigInt(CMSG_HDR + 4 * fds.length), true);
      v.setInt32(OFF_CONTROL + 8, SOL_SOCKET, true);
      v.setInt32(OFF_CONTROL + 12, SCM_RIGHTS, true);
      for (const [i, fd] of fds.entries()) v.setInt32(OFF_CONTROL + CMSG_HDR + 4 * i, fd, true);
    }
    const r = Number(c.sendmsg(sock, s.ptr, MSG_NOSIGNAL));
    if (r < 0) {
      const e = koffi.errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) {
        pollOut(sock, 1000);
        continue;
      }
      throw new SysError('sendmsg', e);
    }
    off += r;
    first = false;
  }
}

function pollOut(fd: number, timeoutMs: number): void {
  const buf = Buffer.alloc(8);
  buf.writeInt32LE(fd, 0);
  buf.writeInt16LE(4, 4); // POLLOUT
  libc().poll(buf, 1, timeoutMs);
}

/** Where each mapping's bytes start in this process: preadv2 takes addresses. */
const mappedAt = new WeakMap<ArrayBufferLike, bigint>();

/** Map `len` bytes of `fd` from `offset`, read-write and shared. */
export function mapShared(fd: number, len: number, offset: number): { ptr: unknown; bytes: Uint8Array } {
  const ptr = libc().mmap(null, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
  const addr = koffi.address(ptr);
  if (addr === 0xffffffffffffffffn || addr === 0n) throw new SysError('mmap', koffi.errno());
  const bytes = new Uint8Array(koffi.view(ptr, len));
  mappedAt.set(bytes.buffer, addr);
  return { ptr, bytes };
}

const RWF_NOWAIT = 0x8;
const IOV_NOW_MAX = 64;
const iovNow = Buffer.alloc(16 * IOV_NOW_MAX);
let nowaitUnsupported = false;

/**
 * preadv2(RWF_NOWAIT) on this thread: all of `bufs` read at `pos` if the page
 * cache holds every byte, else nothing to count on (false; the caller reads
 * them on a worker thread). Only for views of mapShared memory (guest RAM).
 */
export function readvIfCached(fd: number, bufs: readonly Uint8Array[], pos: number): boolean {
  if (nowaitUnsupported || bufs.length > IOV_NOW_MAX) return false;
  let want = 0;
  for (let i = 0; i < bufs.length; i++) {
    const b = bufs[i] as Uint8Array;
    const base = mappedAt.get(b.buffer);
    if (base === undefined) return false;
    iovNow.writeBigUInt64LE(base + BigInt(b.byteOffset), 16 * i);
    iovNow.writeBigUInt64LE(BigInt(b.length), 16 * i + 8);
    want += b.length;
  }
  const n = Number(libc().preadv2(fd, iovNow, bufs.length, pos, RWF_NOWAIT));
  if (n < 0) {
    const e = koffi.errno();
    // A kernel or file system without RWF_NOWAIT: always the worker threads.
    if (e === EOPNOTSUPP || e === EINVAL_ERRNO) nowaitUnsupported = true;
    return false;
  }
  // A short read (part of it cached): the worker thread reads it all again.
  return n === want;
}

export function unmap(ptr: unknown, len: number): void {
  libc().munmap(ptr, len);
}

export function newEventFd(): number {
  return check('eventfd', libc().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

const ONE = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);

/** Add one to an eventfd's counter (a kick or an interrupt); a full counter is already signalled. */
export function signalEventFd(fd: number): void {
  libc().write(fd, ONE, 8);
}

const DRAIN = Buffer.alloc(8);

/** Reset an eventfd's counter; whether it had been signalled. */
export function drainEventFd(fd: number): boolean {
  return Number(libc().read(fd, DRAIN, 8)) === 8;
}

export function newMemfd(name: string, size: number): number {
  const c = libc();
  const fd = check('memfd_create', c.memfd_create(name, MFD_CLOEXEC));
  try {
    check('ftruncate', c.ftruncate(fd, size));
  } catch (e) {
    c.close(fd);
    throw e;
  }
  return fd;
}

/** fallocate(2) on a worker thread; resolves to 0 or the errno. */
export function fallocateAsync(fd: number, mode: number, off: number, len: number): Promise<number> {
  return new Promise((resolve) => {
    libc().fallocate.async(fd, mode, off, len, (err: unknown, r: number) => {
      resolve(err ? -1 : r < 0 ? koffi.errno() || -1 : 0);
    });
  });
}

export interface PollResult {
  fd: number;
  revents: number;
}

/**
 * poll(2) on a worker thread, so the event loop keeps serving I/O completions
 * meanwhile. `timeoutMs` -1 waits until one is ready.
 */
export function pollAsync(fds: readonly number[], timeoutMs: number): Promise<PollResult[]> {
  const buf = Buffer.alloc(8 * fds.length);
  fds.forEach((fd, i) => {
    buf.writeInt32LE(fd, 8 * i);
    buf.writeInt16LE(POLLIN, 8 * i + 4);
  });
  return new Promise((resolve, reject) => {
    libc().poll.async(buf, fds.length, timeoutMs, (err: unknown, r: number) => {
      if (err) return reject(err instanceof Error ? err : new Error(String(err)));
      if (r < 0) return resolve([]); // EINTR: the caller polls again
      const out: PollResult[] = [];
      for (let i = 0; i < fds.length; i++) {
        const revents = buf.readInt16LE(8 * i + 6);
        if (revents) out.push({ fd: fds[i] as number, revents });
      }
      resolve(out);
    });
  });
}

let pollBuf = Buffer.alloc(8 * 8);

/**
 * poll(2) on this thread (the event loop waits meanwhile): the backend's wait
 * for a kick while nothing of its own runs on the worker threads, so a kick is
 * taken without a hand-off from a worker thread back to this one.
 */
export function pollHere(fds: readonly number[], timeoutMs: number): PollResult[] {
  if (pollBuf.length < 8 * fds.length) pollBuf = Buffer.alloc(8 * fds.length);
  const buf = pollBuf;
  for (let i = 0; i < fds.length; i++) {
    buf.writeInt32LE(fds[i] as number, 8 * i);
    buf.writeInt32LE(POLLIN, 8 * i + 4); // events, and revents cleared
  }
  const r = Number(libc().poll(buf, fds.length, timeoutMs));
  if (r <= 0) return [];
  const out: PollResult[] = [];
  for (let i = 0; i < fds.length; i++) {
    const revents = buf.readInt16LE(8 * i + 6);
    if (revents) out.push({ fd: fds[i] as number, revents });
  }
  return out;
}

/** poll(2) on this thread, for a short wait (the rest of a message already on its way). */
export function pollSync(fd: number, timeoutMs: number): boolean {
  const buf = Buffer.alloc(8);
  buf.writeInt32LE(fd, 0);
  buf.writeInt16LE(POLLIN, 4);
  return Number(libc().poll(buf, 1, timeoutMs)) > 0;
}
