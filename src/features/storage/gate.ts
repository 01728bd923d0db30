// The gate between a sponsor and host files. A sponsor's disk=, kernel= and
// ramdisk= may name only its own volumes, in pools it is granted, by their
// canonical path; each is opened without following links and used only in the
// format it was made with, and a qcow2 image's backing chain and data file must
// stay among the same sponsor's volumes in the same pool. Whatever is not the sponsor's own volume gets one answer, so the
// refusal tells nothing about other sponsors' volumes or host files.

import { closeSync, constants, fstatSync, openSync, realpathSync } from 'node:fs';
import { posix } from 'node:path';
import type { PinnedImage } from '../../engine/disk-args.ts';
import { XenodeError } from '../../errors.ts';
import type { DiskChainSource, FileUse, SponsorFileGate } from '../../toolstack/lifecycle-hooks.ts';
import { formatSize, NAME_RE, SPONSOR_RE, type VolumeFormat } from './names.ts';
import { Qcow2Error, type Qcow2Header, readQcow2Header } from './qcow2.ts';
import type { PoolRow, StorageDb } from './storage-db.ts';

/** Backing chains longer than this are refused (QEMU's own limit is far deeper; nobody needs it). */
export const MAX_CHAIN = 16;
const OPEN_PLAIN = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** What the records say of a volume: the format it was made with and the size the guest sees. */
export interface VolumeRecord {
  format: VolumeFormat;
  /** Recorded virtual size; undefined where none is known yet (an upload being checked). */
  size?: number;
}

/** A volume the gate found: where it is, whose it is, and what it was made as. */
export interface VolumeRef extends VolumeRecord {
  pool: PoolRow;
  sponsor: string;
  name: string;
  /** Canonical path: what goes in disk=. */
  path: string;
}

/** The record of the volume at `path` in one storage area, or undefined when it is none. */
export type RecordOf = (path: string) => VolumeRecord | undefined;

/** The directory that holds `sponsor`'s volumes in `pool`. */
export function areaDir(pool: PoolRow, sponsor: string): string {
  return posix.join(pool.dir, sponsor);
}

/** Why an image is refused; the caller words it for its volume. */
export class ImageRefusal extends Error {
  /** A qcow2 header named something it may not. */
  readonly chain: boolean;
  readonly hint?: string;
  constructor(message: string, chain = true, hint?: string) {
    super(message);
    this.chain = chain;
    this.hint = hint;
  }
}

export const CHAIN_HINT =
  'a qcow2 volume may be backed only by your volumes in the same pool, with the format each was made with stated (qemu-img create -b BASE -F raw|qcow2)';

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

/** The qcow2 header of `path`, opened plain; undefined when it has none. */
function headerOf(path: string): Qcow2Header | undefined {
  const fd = openPlain(path);
  try {
    return readQcow2Header(fd);
  } catch (e) {
    if (e instanceof Qcow2Error) throw new ImageRefusal(`has a qcow2 header QEMU cannot use safely (${e.message})`);
    throw e;
  } finally {
    closeSync(fd);
  }
}

/**
 * Check an image QEMU will open as `format`, and every file its qcow2 headers
 * name, against the volumes' records; return the chain, top first, as QEMU is
 * to be given it. Each image is used in the format it was made with: a
 * volume made raw is never read as qcow2 (a guest may have written anything
 * into it), and a volume made qcow2 is never handed to a guest raw. Only the
 * daemon and QEMU write qcow2 metadata, so a chain checked here stays as it is.
 * Throws ImageRefusal.
 */
export function checkImageChain(top: string, format: VolumeFormat, recordOf: RecordOf): PinnedImage[] {
  const topRecord = recordOf(top);
  if (!topRecord) throw new ImageRefusal('is not a volume', false);
  if (topRecord.format !== format)
    throw new ImageRefusal(
      `is a ${topRecord.format} volume: it is used only as ${topRecord.format}`,
      false,
      `state its format in disk= (PATH,${topRecord.format},VDEV,ACCESS); to change it, make a new volume (qemu-img convert on your side, then volume upload)`,
    );
  const chain: PinnedImage[] = [];
  const visited = new Set([top]);
  let cur = top;
  let record = topRecord;
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    let header: Qcow2Header | undefined;
    try {
      // A raw image is bytes to QEMU: its header is never read, whatever a guest wrote there.
      if (record.format === 'raw') {
        closeSync(openPlain(cur));
        chain.push({ path: cur, format: 'raw' });
        return chain;
      }
      header = headerOf(cur);
    } catch (e) {
      if (depth === 0 || !(e instanceof ImageRefusal)) throw e;
      throw new ImageRefusal(`has a backing file that ${e.message}`);
    }
    if (!header)
      throw new ImageRefusal(depth === 0 ? 'is not a qcow2 image' : 'has a backing file that is not a qcow2 image');
    if (record.size !== undefined && header.size > record.size) {
      const what = depth === 0 ? 'claims' : 'has a backing file that claims';
      throw new ImageRefusal(
        `${what} a virtual size of ${formatSize(header.size)}, more than the ${formatSize(record.size)} it was made with`,
      );
    }
    const link: PinnedImage = { path: cur, format: 'qcow2' };
    if (header.needsDataFile || header.dataFile !== undefined) {
      const df = header.dataFile;
      if (df === undefined) throw new ImageRefusal('needs an external data file its header does not name');
      // QEMU opens a relative data file name against its own working directory, not the image's.
      const dfPath = posix.normalize(df);
      const dfRecord = posix.isAbsolute(df) ? recordOf(dfPath) : undefined;
      if (!dfRecord) throw new ImageRefusal('names an external data file outside your storage area');
      // Guest data lands there as plain bytes: only a volume made raw may take them.
      if (dfRecord.format !== 'raw') throw new ImageRefusal('names an external data file that is not a raw volume');
      closeSync(openPlain(dfPath));
      link.dataFile = dfPath;
    }
    chain.push(link);
    const b = header.backingFile;
    if (b === undefined) return chain;
    if (hasProtocol(b)) throw new ImageRefusal('has a backing file that is not a plain file name');
    const next = posix.normalize(posix.isAbsolute(b) ? b : posix.join(posix.dirname(cur), b));
    const nextRecord = recordOf(next);
    if (!nextRecord) throw new ImageRefusal('has a backing file outside your storage area');
    // Without a stated format QEMU probes the backing file, and a probed format may name yet more files.
    const bf = header.backingFormat;
    if (bf !== 'raw' && bf !== 'qcow2')
      throw new ImageRefusal('has a backing file whose format is not stated as raw or qcow2');
    if (bf !== nextRecord.format)
      throw new ImageRefusal(`has a backing file stated as ${bf}, but that volume is ${nextRecord.format}`);
    if (visited.has(next)) throw new ImageRefusal('has a backing chain that loops');
    visited.add(next);
    cur = next;
    record = nextRecord;
  }
  throw new ImageRefusal(`has a backing chain longer than ${MAX_CHAIN}`);
}

/**
 * Every other file QEMU opens for an image used as `format` (backing chain,
 * data files), best effort, as QEMU follows them: for "is this volume in use".
 * A raw image names nothing.
 */
export function imageFiles(top: string, format: VolumeFormat | undefined): string[] {
  const out: string[] = [];
  let cur = top;
  let fmt = format;
  for (let depth = 0; depth <= MAX_CHAIN && fmt !== 'raw'; depth++) {
    let header: Qcow2Header | undefined;
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
    fmt = header?.backingFormat === 'raw' ? 'raw' : undefined;
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

/** A sponsor's domain names a file of a pool that is no longer its volume (grant revoked, pool forgotten). */
function notYoursAnymore(use: FileUse['kind'], path: string, sponsor: string): XenodeError {
  return new XenodeError('permission', `${use} '${path}' is no longer a volume of ${sponsor}'s`, {
    hint: 'its storage grant was revoked or its record removed: destroy the domain, or have the admin grant the pool again',
  });
}

export class StorageGate implements SponsorFileGate, DiskChainSource {
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
    const row = pool && db.mayUse(pool.name, sponsor) ? db.volume(pool.name, sponsor, name) : undefined;
    if (!pool || !row) return undefined;
    // realpath equal to the name given: no symbolic link anywhere on the way.
    if (realOrUndefined(p) !== p) return undefined;
    return { pool, sponsor, name, path: p, format: row.format, ...(row.size === null ? {} : { size: row.size }) };
  }

  /** The records of `sponsor`'s volumes in `pool`, for the files a chain names. */
  inArea(pool: PoolRow, sponsor: string): RecordOf {
    return (p) => {
      const v = this.lookup(sponsor, p);
      return v !== undefined && v.pool.name === pool.name ? v : undefined;
    };
  }

  sponsorFile(sponsor: string, path: string, use: FileUse): string {
    const v = this.lookup(sponsor, path);
    if (!v) throw notYours(use.kind, path);
    this.checkVolume(v, use);
    return v.path;
  }

  /**
   * The file of a sponsor's domain as a new QEMU is about to open it (restart,
   * restore): its own volume, checked again; a file in a pool that is no longer
   * its volume is refused; a file outside every pool was put there by the admin.
   * Returns the volume's chain, or undefined for the admin's file.
   */
  atLaunch(sponsor: string, path: string, use: FileUse): PinnedImage[] | undefined {
    const v = this.lookup(sponsor, path);
    if (!v) {
      if (this.inSomePool(path)) throw notYoursAnymore(use.kind, path, sponsor);
      return undefined;
    }
    return this.checkVolume(v, use);
  }

  diskChain(sponsor: string, path: string, format: VolumeFormat): PinnedImage[] | undefined {
    if (sponsor === 'admin') return undefined;
    return this.atLaunch(sponsor, path, { kind: 'disk', write: false, format });
  }

  /** The volume's file as QEMU will open it for `use`, with its chain; a one-line refusal otherwise. */
  checkVolume(v: VolumeRef, use: FileUse): PinnedImage[] {
    try {
      if (use.kind !== 'disk') {
        // A kernel or ramdisk is read as bytes, whatever the volume's format.
        closeSync(openPlain(v.path));
        return [{ path: v.path, format: 'raw' }];
      }
      // A disk's format must be stated by every caller: the gate never guesses it.
      if (use.format !== 'raw' && use.format !== 'qcow2')
        throw new XenodeError('internal', `disk '${v.path}' was checked without its format`);
      return checkImageChain(v.path, use.format, this.inArea(v.pool, v.sponsor));
    } catch (e) {
      if (!(e instanceof ImageRefusal)) throw e;
      throw new XenodeError('permission', `volume ${v.pool.name}/${v.name} ${e.message}`, {
        hint: e.hint ?? (e.chain ? CHAIN_HINT : undefined),
      });
    }
  }

  /** `path`, or the file it leads to, lies in a pool's directory. */
  private inSomePool(path: string): boolean {
    const pools = this.db()?.pools() ?? [];
    const p = posix.normalize(path);
    const real = realOrUndefined(p);
    return pools.some((x) => [p, real].some((f) => f?.startsWith(`${x.dir}/`)));
  }
}
