// A template's RAM as the clones map it: a memfd holding the RAM file's bytes,
// sealed against writes. Each clone's QEMU maps it privately (share=off), so
// pages it only reads stay one copy in the host for all clones and a page it
// writes becomes its own (copy-on-write). The seal matters: QEMU 7.2 discards
// a private file mapping's pages (balloon free page reporting) by punching a
// hole in the file, which would zero those pages under every other clone; a
// sealed memfd refuses that (EPERM) and nothing is lost.
// Node has no memfd_create or fcntl(F_ADD_SEALS): koffi, as writeback.ts.

import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import koffi from 'koffi';
import { XenodeError } from '../../errors.ts';

const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
const F_SEAL_SEAL = 1;
const F_SEAL_SHRINK = 2;
const F_SEAL_GROW = 4;
const F_SEAL_WRITE = 8;

interface Libc {
  memfdCreate: (name: string, flags: number) => number;
  fcntl: (fd: number, cmd: number, ...rest: unknown[]) => number;
}

let libc: Libc | undefined;

function bind(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      memfdCreate: lib.func('int memfd_create(const char *name, unsigned int flags)') as Libc['memfdCreate'],
      fcntl: lib.func('int fcntl(int fd, int cmd, ...)') as Libc['fcntl'],
    };
  }
  return libc;
}

/** A sealed copy of `file` in a new memfd (the caller closes it). */
export function sealedCopy(file: string, label: string): number {
  const c = bind();
  const fd = c.memfdCreate(`xenode-template-${label}`.slice(0, 240), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) throw new XenodeError('engine', 'memfd_create failed');
  try {
    const src = openSync(file, 'r');
    try {
      // The full size first: pieces left out below are holes that read as zeros.
      ftruncateSync(fd, fstatSync(src).size);
      const buf = Buffer.allocUnsafe(4 << 20);
      let pos = 0;
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, pos);
        if (n === 0) break;
        // All-zero pieces are left as holes: the memfd stays sparse where the guest never wrote.
        if (!isZero(buf, n)) {
          for (let off = 0; off < n; ) off += writeSync(fd, buf, off, n - off, pos + off);
        }
        pos += n;
      }
    } finally {
      closeSync(src);
    }
    if (c.fcntl(fd, F_ADD_SEALS, 'int', F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !== 0) {
      throw new XenodeError('engine', 'could not seal the template memory');
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

const ZERO = Buffer.alloc(4 << 20);

function isZero(b: Buffer, n: number): boolean {
  return b.subarray(0, n).equals(ZERO.subarray(0, n));
}
