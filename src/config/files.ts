// Host files a config names (kernel, ramdisk, disk images, QEMU binary), checked
// at create time so a typo is reported against its config line instead of as a
// QEMU start failure.

import fs from 'node:fs';
import { configError, type Loc } from './location.ts';

/** bzImage: the "HdrS" setup header signature at 0x202 (Linux boot protocol). */
const BZIMAGE_MAGIC_OFFSET = 0x202;
const BZIMAGE_MAGIC = Buffer.from('HdrS', 'latin1');
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** Throws `<what> '<path>' not found` (or unreadable, or a directory) at `loc`. */
export function checkReadableFile(what: string, file: string, loc: Loc, mode = fs.constants.R_OK): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw configError(`${what} '${file}' not found`, loc);
    throw configError(`cannot read ${what} '${file}': ${code ?? String(e)}`, loc);
  }
  if (st.isDirectory()) throw configError(`${what} '${file}' is a directory`, loc);
  try {
    fs.accessSync(file, mode);
  } catch {
    const verb = mode & fs.constants.X_OK ? 'execute' : mode & fs.constants.W_OK ? 'write' : 'read';
    throw configError(`cannot ${verb} ${what} '${file}': permission denied`, loc);
  }
}

/** The first `n` bytes of a file (fewer if it is shorter). */
function head(file: string, n: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

export type KernelKind = 'bzImage' | 'elf';

/** What kind of kernel image a file is, or undefined if it is neither. */
export function kernelKind(file: string): KernelKind | undefined {
  const h = head(file, BZIMAGE_MAGIC_OFFSET + BZIMAGE_MAGIC.length);
  if (h.subarray(0, 4).equals(ELF_MAGIC)) return 'elf';
  if (h.subarray(BZIMAGE_MAGIC_OFFSET, BZIMAGE_MAGIC_OFFSET + 4).equals(BZIMAGE_MAGIC)) return 'bzImage';
  return undefined;
}

export function checkKernel(file: string, loc: Loc): KernelKind {
  checkReadableFile('kernel file', file, loc);
  let kind: KernelKind | undefined;
  try {
    kind = kernelKind(file);
  } catch (e) {
    throw configError(`cannot read kernel file '${file}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`, loc);
  }
  if (!kind) {
    throw configError(
      `'${file}' is not a Linux kernel (no bzImage header or ELF magic)`,
      loc,
      'give a bzImage (e.g. /boot/vmlinuz-*) or an uncompressed vmlinux',
    );
  }
  return kind;
}
