// The gate between a sponsor and host files. A sponsor's disk=, kernel= and
// ramdisk= may name only its own volumes, in pools it is granted, by their
// canonical path; each is opened without following links, and a qcow2 image's
// backing chain and data file must stay among the same sponsor's volumes in the
// same pool. Whatever is not the sponsor's own volume gets one answer, so the
// refusal tells nothing about other sponsors' volumes or host files.

import { closeSync, constants, fstatSync, openSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { XenodeError } from '../../errors.ts';
import type { FileUse, SponsorFileGate } from '../../toolstack/plugin.ts';
import { NAME_RE, SPONSOR_RE, type VolumeFormat } from './names.ts';
import { Qcow2Error, readQcow2Header } from './qcow2.ts';
import type { PoolRow, StorageDb } from './storage-db.ts';

/** Backing chains longer than this are refused (QEMU's own limit is far deeper; nobody needs it). */
export const MAX_CHAIN = 16;
const OPEN_PLAIN = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** A volume the gate found: where it is and whose it is. */
export interface VolumeRef {
  pool: PoolRow;
  sponsor: string;
  name: string;
  /** Canonical path: what goes in disk=. */
  path: string;
}

/** The directory that holds `sponsor`'s volumes in `pool`. */
export function areaDir(pool: PoolRow, sponsor: string): string {
  return posix.join(pool.dir, sponsor);
}

/** Why an image is refused; the caller words it for its volume. */
export class ImageRefusal extends Error {
  /** A qcow2 header named something it may not. */
  readonly chain: boolean;
  constructor(message: string, chain = true) {
    super(message);
    this.chain = chain;
  }
}

export const CHAIN_HINT =
  'a qcow2 volume may be backed only by your volumes in the same pool, with the format stated (qemu-img create -b BASE -F qcow2)';

/** `path` is not a plain name for QEMU: `proto:...` (nbd:, json:, file:) before any slash. */
function hasProtocol(path: string): boolean {
  const i = path.search(/[:/\\]/);
  return i >= 0 && path[i] === ':';
}

/** Open a regular file with a single link, never through a symbolic link. */
export function openPlain(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, OPEN_PLAIN);
  } catch {
    throw new ImageRefusal('cannot be opened as a plain file', false);
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink !== 1) {
    closeSync(fd);
    throw new ImageRefusal('is not a plain file', false);
  }
  return fd;
}

/**
 * Check an image QEMU will open as `format` (undefined when the caller does not
 * know it: then a qcow2 header, if there is one, is checked as if it were used).
 * Every file its qcow2 header names must satisfy `isVolume`, the chain must end,
 * and backing formats must be stated. Throws ImageRefusal.
 */
export function checkImageChain(
  top: string,
  format: VolumeFormat | undefined,
  isVolume: (path: string) => boolean,
): void {
  const visited = new Set([top]);
  let cur = top;
  let fmt = format;
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    let fd: number;
    try {
      fd = openPlain(cur);
    } catch (e) {
      if (depth === 0 || !(e instanceof ImageRefusal)) throw e;
      throw new ImageRefusal(`has a backing file that ${e.message}`);
    }
    let header: ReturnType<typeof readQcow2Header>;
    try {
      // Declared raw: QEMU reads bytes, never a header, whatever the guest wrote there.
      if (fmt === 'raw') return;
      header = readQcow2Header(fd);
    } catch (e) {
      if (e instanceof Qcow2Error) throw new ImageRefusal(`has a qcow2 header QEMU cannot use safely (${e.message})`);
      throw e;
    } finally {
      closeSync(fd);
    }
    if (!header) {
      if (fmt === 'qcow2')
        throw new ImageRefusal(depth === 0 ? 'is not a qcow2 image' : 'has a backing file that is not a qcow2 image');
      return;
    }
    if (header.needsDataFile || header.dataFile !== undefined) {
      const df = header.dataFile;
      if (df === undefined) throw new ImageRefusal('needs an external data file its header does not name');
      // QEMU opens a relative data file name against its own working directory, not the image's.
      if (!posix.isAbsolute(df) || !isVolume(posix.normalize(df)))
        throw new ImageRefusal(`names an external data file outside your storage area`);
      closeSync(openPlain(posix.normalize(df)));
    }
    const b = header.backingFile;
    if (b === undefined) return;
    if (hasProtocol(b)) throw new ImageRefusal('has a backing file that is not a plain file name');
    const next = posix.normalize(posix.isAbsolute(b) ? b : posix.join(posix.dirname(cur), b));
    if (!isVolume(next)) throw new ImageRefusal('has a backing file outside your storage area');
    // Without a stated format QEMU probes the backing file, and a probed format may name yet more files.
    if (header.backingFormat !== 'raw' && header.backingFormat !== 'qcow2')
      throw new ImageRefusal('has a backing file whose format is not stated as raw or qcow2');
    if (visited.has(next)) throw new ImageRefusal('has a backing chain that loops');
    visited.add(next);
    cur = next;
    fmt = header.backingFormat;
  }
  throw new ImageRefusal(`has a backing chain longer than ${MAX_CHAIN}`);
}

/** Every file a qcow2 image names (backing chain, data files), best effort: for "is this volume in use". */
export function imageFiles(top: string): string[] {
  const out: string[] = [];
  let cur = top;
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    let header: ReturnType<typeof readQcow2Header>;
    try {
      const fd = openSync(cur, OPEN_PLAIN);
      try {
        header = readQcow2Header(fd);
      } finally {
        closeSync(fd);
      }
    } catch {
      return out;
    }
    if (header?.dataFile && posix.isAbsolute(header.dataFile)) out.push(posix.normalize(header.dataFile));
    const b = header?.backingFile;
    if (!b || hasProtocol(b)) return out;
    cur = posix.normalize(posix.isAbsolute(b) ? b : posix.join(posix.dirname(cur), b));
    if (out.includes(cur) || cur === top) return out;
    out.push(cur);
  }
  return out;
}

function realOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** The same answer for "no such file", "another sponsor's" and "not in a pool": nothing leaks. */
function notYours(use: FileUse['kind'], path: string): XenodeError {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: one line, whatever the path holds
  const shown = path.replace(/[\u0000-\u001f\u007f]/g, '?');
  return new XenodeError('not-found', `${use} '${shown}' is not a volume of yours`, {
    hint: 'a sponsor names only its own volumes (see xenode volume list), or leaves kernel= unset for the default guest',
  });
}

export class StorageGate implements SponsorFileGate {
  constructor(private readonly db: () => StorageDb | undefined) {}

  /** `path` as `sponsor`'s volume: in a pool it may use, recorded, and with no link on the way. */
  lookup(sponsor: string, path: string): VolumeRef | undefined {
    const db = this.db();
    if (!db || !SPONSOR_RE.test(sponsor) || !posix.isAbsolute(path)) return undefined;
    const p = posix.normalize(path);
    const name = posix.basename(p);
    if (!NAME_RE.test(name)) return undefined;
    const dir = posix.dirname(p);
    const pool = db.pools().find((x) => areaDir(x, sponsor) === dir);
    if (!pool || !db.mayUse(pool.name, sponsor) || !db.volume(pool.name, sponsor, name)) return undefined;
    // realpath equal to the name given: no symbolic link anywhere on the way.
    if (realOrUndefined(p) !== p) return undefined;
    return { pool, sponsor, name, path: p };
  }

  /** The check of `isVolume` for the images of `sponsor` in `pool`. */
  inArea(pool: PoolRow, sponsor: string): (path: string) => boolean {
    return (p) => {
      const v = this.lookup(sponsor, p);
      return v !== undefined && v.pool.name === pool.name;
    };
  }

  sponsorFile(sponsor: string, path: string, use: FileUse): string {
    const v = this.lookup(sponsor, path);
    if (!v) throw notYours(use.kind, path);
    this.checkVolume(v, use);
    return v.path;
  }

  /** The volume's file as QEMU will open it for `use`; a one-line refusal otherwise. */
  checkVolume(v: VolumeRef, use: FileUse): void {
    try {
      // A kernel or ramdisk is read as bytes; a disk as its format says (or as its header says, if unknown).
      if (use.kind === 'disk') checkImageChain(v.path, use.format, this.inArea(v.pool, v.sponsor));
      else closeSync(openPlain(v.path));
    } catch (e) {
      if (!(e instanceof ImageRefusal)) throw e;
      throw new XenodeError('permission', `volume ${v.pool.name}/${v.name} ${e.message}`, {
        hint: e.chain ? CHAIN_HINT : undefined,
      });
    }
  }
}
