// Pools and volumes as the API offers them: the admin declares pools and grants
// them; a sponsor creates, uploads, lists and deletes its own volumes, within its
// quota. Files are made by the daemon (root, mode 0600) in <pool>/<sponsor>/, under
// a temporary name first, so a half-made volume is never usable.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  createWriteStream,
  fstatSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  realpathSync,
  type Stats,
  statfsSync,
  statSync,
  unlinkSync,
} from 'node:fs';
import { posix } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { XenodeError } from '../../errors.ts';
import type { Principal } from '../../toolstack/principal.ts';
import { checkLimit, type SponsorPolicy } from '../../toolstack/sponsors.ts';
import { areaDir, CHAIN_HINT, checkImageChain, ImageRefusal, type StorageGate } from './gate.ts';
import { checkFormat, checkName, MAX_VOLUME_BYTES, parseSize, SPONSOR_RE, type VolumeFormat } from './names.ts';
import { hasQcow2Magic, Qcow2Error, readQcow2Header } from './qcow2.ts';
import { EVERY_SPONSOR, type PoolRow, type StorageDb, type VolumeRow } from './storage-db.ts';

const execFileP = promisify(execFile);
const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW;

/** A pool as `storage-list` shows it. */
export interface PoolView {
  name: string;
  dir: string;
  /** Who may use it (admin only). */
  sponsors?: string[];
  /** Volumes in it (a sponsor counts only its own). */
  volumes: number;
  /** Their sizes summed, in bytes. */
  bytes: number;
  /** Free bytes on the pool's filesystem. */
  free: number;
}

/** A volume as `volume list` shows it. */
export interface VolumeView {
  pool: string;
  sponsor: string;
  name: string;
  format: VolumeFormat;
  /** Disk size the guest sees (a raw file's length, a qcow2's virtual size). */
  size: number;
  /** Bytes the file takes on the host. */
  used: number;
  /** What goes in disk=. */
  path: string;
}

export interface CreateVolume {
  pool: string;
  name: string;
  size: string | number;
  format?: string;
  sponsor?: string;
}

export interface UploadVolume {
  pool: string;
  name: string;
  format?: string;
  sponsor?: string;
  /** Content-Length of the upload. */
  length: number;
}

/** Who uses a file now (domains), for "refused while in use". */
export type FileUsers = (path: string) => Array<{ name: string; sponsor: string }>;

function requireAdmin(p: Principal): void {
  if (!p.admin) throw new XenodeError('permission', 'only the admin may manage storage pools');
}

function checkGrantee(sponsor: string): void {
  if (sponsor !== EVERY_SPONSOR && (!SPONSOR_RE.test(sponsor) || sponsor === 'admin')) {
    throw new XenodeError('usage', `invalid sponsor name '${sponsor}'`, {
      hint: "lowercase letters, digits, - and _, or '*' for every sponsor; the admin needs no grant",
    });
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

/**
 * Size for quotas and listings, from the record, never from a header (a guest
 * may have written any header into a raw volume): a raw file's length, a
 * qcow2's virtual size as made, or its file's length if that is larger.
 */
function sizes(
  path: string,
  row: Pick<VolumeRow, 'format' | 'size'>,
): { size: number; used: number; apparent: number } {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return { size: row.size ?? 0, used: 0, apparent: row.size ?? 0 };
  }
  const size = row.format === 'qcow2' ? (row.size ?? st.size) : st.size;
  return { size, used: st.blocks * 512, apparent: Math.max(st.size, size) };
}

/** The size to record for a volume made before sizes were recorded: what its file says now. */
function sizeNow(path: string, format: VolumeFormat): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    if (format === 'raw') return size;
    try {
      return readQcow2Header(fd)?.size ?? size;
    } catch {
      return size;
    }
  } finally {
    closeSync(fd);
  }
}

export class VolumeService {
  /** Bytes and volumes being created right now, per sponsor (so two requests cannot both fit). */
  private readonly pending = new Map<string, { bytes: number; volumes: number }>();

  constructor(
    private readonly db: StorageDb,
    private readonly gate: StorageGate,
    private readonly policy: SponsorPolicy | undefined,
    private readonly users: FileUsers,
  ) {
    this.recordSizes();
  }

  /** Records older than the size column get the size their files state now, once. */
  private recordSizes(): void {
    const pools = new Map(this.db.pools().map((x) => [x.name, x]));
    for (const v of this.db.volumes()) {
      const pool = pools.get(v.pool);
      if (v.size !== null || !pool) continue;
      const size = sizeNow(posix.join(areaDir(pool, v.sponsor), v.name), v.format);
      if (size !== undefined) this.db.setSize(v.pool, v.sponsor, v.name, size);
    }
  }

  // ---- pools (admin) --------------------------------------------------------

  addPool(p: Principal, name: string, dir: string, sponsors: readonly string[] = []): PoolView {
    requireAdmin(p);
    checkName('pool', name);
    for (const s of sponsors) checkGrantee(s);
    if (!posix.isAbsolute(dir)) throw new XenodeError('usage', `pool directory '${dir}' must be an absolute path`);
    let real: string;
    try {
      if (!statSync(dir).isDirectory()) throw new Error('not a directory');
      real = realpathSync(dir);
    } catch {
      throw new XenodeError('not-found', `pool directory '${dir}' does not exist or is not a directory`, {
        hint: 'create it first, e.g. mkdir -p DIR',
      });
    }
    if (real === '/') throw new XenodeError('usage', 'the root directory cannot be a pool');
    if (this.db.pool(name)) throw new XenodeError('conflict', `storage pool '${name}' already exists`);
    for (const o of this.db.pools()) {
      if (real === o.dir || real.startsWith(`${o.dir}/`) || o.dir.startsWith(`${real}/`)) {
        throw new XenodeError('conflict', `pool directory '${real}' overlaps pool '${o.name}' (${o.dir})`, {
          hint: 'pools must not contain one another',
        });
      }
    }
    this.db.addPool({ name, dir: real, created: Date.now() }, sponsors);
    return this.poolView(p, this.db.pool(name) as PoolRow);
  }

  removePool(p: Principal, name: string, force: boolean): void {
    requireAdmin(p);
    const pool = this.visiblePool(p, name, 'admin');
    const vols = this.db.volumes({ pool: name });
    for (const v of vols) {
      const u = this.users(posix.join(areaDir(pool, v.sponsor), v.name));
      if (u.length > 0) {
        throw new XenodeError('state', `volume ${name}/${v.name} of ${v.sponsor} is in use by domain ${u[0]?.name}`, {
          hint: 'destroy the domain first',
        });
      }
    }
    if (vols.length > 0 && !force) {
      throw new XenodeError('state', `storage pool '${name}' still has ${vols.length} volume(s)`, {
        hint: `delete them first, or --force to forget them (their files stay in ${pool.dir})`,
      });
    }
    this.db.removePool(name);
  }

  grant(p: Principal, pool: string, sponsor: string): void {
    requireAdmin(p);
    this.visiblePool(p, pool, 'admin');
    checkGrantee(sponsor);
    this.db.grant(pool, sponsor);
  }

  revoke(p: Principal, pool: string, sponsor: string): void {
    requireAdmin(p);
    this.visiblePool(p, pool, 'admin');
    if (!this.db.revoke(pool, sponsor)) {
      throw new XenodeError('not-found', `sponsor ${sponsor} has no grant on storage pool '${pool}'`);
    }
  }

  listPools(p: Principal): PoolView[] {
    return this.db
      .pools()
      .filter((x) => p.admin || this.mayUse(p.sponsor, x))
      .map((x) => this.poolView(p, x));
  }

  private poolView(p: Principal, pool: PoolRow): PoolView {
    const vols = this.db.volumes({ pool: pool.name, sponsor: p.admin ? undefined : p.sponsor });
    let free = 0;
    try {
      const s = statfsSync(pool.dir);
      free = s.bavail * s.bsize;
    } catch {
      /* directory gone: nothing free */
    }
    const bytes = vols.reduce((n, v) => n + sizes(posix.join(areaDir(pool, v.sponsor), v.name), v).apparent, 0);
    return {
      name: pool.name,
      dir: pool.dir,
      ...(p.admin ? { sponsors: this.db.grants(pool.name) } : {}),
      volumes: vols.length,
      bytes,
      free,
    };
  }

  // ---- volumes ----------------------------------------------------------------

  listVolumes(p: Principal, filter: { pool?: string; sponsor?: string } = {}): VolumeView[] {
    if (filter.pool !== undefined) this.visiblePool(p, filter.pool, p.sponsor);
    const sponsor = p.admin ? filter.sponsor : this.owner(p, filter.sponsor);
    const pools = new Map(this.db.pools().map((x) => [x.name, x]));
    return this.db
      .volumes({ pool: filter.pool, sponsor })
      .filter((v) => p.admin || this.mayUse(v.sponsor, pools.get(v.pool)))
      .map((v) => {
        const path = posix.join(areaDir(pools.get(v.pool) as PoolRow, v.sponsor), v.name);
        const s = sizes(path, v);
        return { pool: v.pool, sponsor: v.sponsor, name: v.name, format: v.format, size: s.size, used: s.used, path };
      });
  }

  async create(p: Principal, req: CreateVolume): Promise<VolumeView> {
    const sponsor = this.owner(p, req.sponsor);
    const pool = this.visiblePool(p, req.pool, sponsor);
    checkName('volume', req.name);
    const size = parseSize(req.size);
    const format = checkFormat(req.format ?? 'raw');
    this.checkFree(pool, sponsor, req.name);
    const release = this.reserve(p, sponsor, size);
    const area = this.ensureArea(pool, sponsor);
    const tmp = posix.join(area, `.new-${randomBytes(6).toString('hex')}`);
    try {
      if (format === 'raw') {
        const fd = openSync(tmp, CREATE_FLAGS, 0o600);
        try {
          ftruncateSync(fd, size);
        } finally {
          closeSync(fd);
        }
      } else {
        try {
          await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', tmp, String(size)]);
        } catch (e) {
          throw new XenodeError(
            'engine',
            `qemu-img could not create the volume: ${(e as Error).message.split('\n')[0]}`,
          );
        }
        chmodSync(tmp, 0o600);
      }
      this.publish(tmp, pool, sponsor, req.name, format, size);
    } finally {
      removeQuietly(tmp);
      release();
    }
    return this.view(pool, sponsor, req.name);
  }

  /** A new volume from uploaded bytes, checked as the gate checks an image. */
  async upload(p: Principal, req: UploadVolume, body: Readable): Promise<VolumeView> {
    const sponsor = this.owner(p, req.sponsor);
    const pool = this.visiblePool(p, req.pool, sponsor);
    checkName('volume', req.name);
    const declared = req.format === undefined ? undefined : checkFormat(req.format);
    if (!Number.isSafeInteger(req.length) || req.length < 0) {
      throw new XenodeError('usage', 'an upload needs a Content-Length header');
    }
    if (req.length > MAX_VOLUME_BYTES) throw new XenodeError('usage', 'an upload is limited to 16T');
    this.checkFree(pool, sponsor, req.name);
    const release = this.reserve(p, sponsor, req.length);
    const area = this.ensureArea(pool, sponsor);
    const tmp = posix.join(area, `.new-${randomBytes(6).toString('hex')}`);
    try {
      await this.receive(body, tmp, req.length);
      const { format, size } = this.checkUpload(tmp, declared, pool, sponsor);
      if (!p.admin && this.policy) {
        // A qcow2 counts its virtual size, known only now; so do volumes others are making meanwhile.
        const held = this.usage(sponsor).diskBytes;
        const others = (this.pending.get(sponsor)?.bytes ?? 0) - req.length;
        const apparent = sizes(tmp, { format, size }).apparent;
        checkLimit(sponsor, this.policy.limits(sponsor), 'diskBytes', held + others, apparent);
      }
      this.publish(tmp, pool, sponsor, req.name, format, size);
    } finally {
      removeQuietly(tmp);
      release();
    }
    return this.view(pool, sponsor, req.name);
  }

  delete(p: Principal, poolName: string, name: string, sponsorParam?: string): void {
    const sponsor = this.owner(p, sponsorParam);
    const pool = this.visiblePool(p, poolName, sponsor);
    checkName('volume', name);
    if (!this.db.volume(pool.name, sponsor, name)) throw this.noVolume(pool.name, name);
    const path = posix.join(areaDir(pool, sponsor), name);
    const u = this.users(path);
    if (u.length > 0) {
      const d = u.find((x) => p.admin || x.sponsor === p.sponsor);
      throw new XenodeError(
        'state',
        `volume ${pool.name}/${name} is in use by ${d ? `domain ${d.name}` : 'a domain'}`,
        {
          hint: 'destroy the domain (or block-detach the disk) first',
        },
      );
    }
    removeQuietly(path);
    this.db.removeVolume(pool.name, sponsor, name);
  }

  /** What the sponsor holds now (every pool, granted or not: the bytes are on the host either way). */
  usage(sponsor: string): { volumes: number; diskBytes: number } {
    const pools = new Map(this.db.pools().map((x) => [x.name, x]));
    const vols = this.db.volumes({ sponsor });
    let diskBytes = 0;
    for (const v of vols) {
      const pool = pools.get(v.pool);
      if (pool) diskBytes += sizes(posix.join(areaDir(pool, v.sponsor), v.name), v).apparent;
    }
    return { volumes: vols.length, diskBytes };
  }

  // ---- helpers ----------------------------------------------------------------

  /** Whose volumes a request is about: the sponsor's own, or anyone's for the admin (`admin` by default). */
  private owner(p: Principal, sponsor?: string): string {
    if (!p.admin) {
      if (sponsor !== undefined && sponsor !== p.sponsor) {
        throw new XenodeError('permission', 'only the admin may act for another sponsor');
      }
      // A sponsor token named like the admin must not reach the admin's volumes.
      if (p.sponsor === 'admin' || !SPONSOR_RE.test(p.sponsor))
        throw new XenodeError('permission', 'no storage for this token');
      return p.sponsor;
    }
    const s = sponsor ?? 'admin';
    if (!SPONSOR_RE.test(s)) throw new XenodeError('usage', `invalid sponsor name '${s}'`);
    return s;
  }

  private mayUse(sponsor: string, pool: PoolRow | undefined): boolean {
    return pool !== undefined && sponsor !== 'admin' && this.db.mayUse(pool.name, sponsor);
  }

  /** The pool if `p` may see it; one answer for "none" and "not granted". */
  private visiblePool(p: Principal, name: string, sponsor: string): PoolRow {
    const pool = this.db.pool(name);
    if (!pool || (!p.admin && !this.mayUse(sponsor, pool))) {
      throw new XenodeError('not-found', `no storage pool '${name}'`, { hint: 'see xenode storage-list' });
    }
    return pool;
  }

  private noVolume(pool: string, name: string): XenodeError {
    return new XenodeError('not-found', `no volume ${pool}/${name}`, { hint: 'see xenode volume list' });
  }

  private checkFree(pool: PoolRow, sponsor: string, name: string): void {
    if (this.db.volume(pool.name, sponsor, name)) {
      throw new XenodeError('conflict', `volume ${pool.name}/${name} already exists`, {
        hint: 'pick another name, or delete it first',
      });
    }
  }

  /** Quota check for one more volume of `bytes`; the returned function gives the reservation back. */
  private reserve(p: Principal, sponsor: string, bytes: number): () => void {
    if (p.admin || !this.policy) return () => {};
    const limits = this.policy.limits(sponsor);
    const held = this.usage(sponsor);
    const pend = this.pending.get(sponsor) ?? { bytes: 0, volumes: 0 };
    checkLimit(sponsor, limits, 'volumes', held.volumes + pend.volumes, 1);
    checkLimit(sponsor, limits, 'diskBytes', held.diskBytes + pend.bytes, bytes);
    pend.bytes += bytes;
    pend.volumes += 1;
    this.pending.set(sponsor, pend);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      pend.bytes -= bytes;
      pend.volumes -= 1;
      if (pend.volumes === 0) this.pending.delete(sponsor);
    };
  }

  /** The sponsor's directory in the pool: made by the daemon, root's, 0700, never a link. */
  private ensureArea(pool: PoolRow, sponsor: string): string {
    let real: string | undefined;
    try {
      real = realpathSync(pool.dir);
    } catch {
      /* checked below */
    }
    if (real !== pool.dir) {
      throw new XenodeError('state', `storage pool '${pool.name}' is not available (its directory is gone or moved)`);
    }
    const area = areaDir(pool, sponsor);
    try {
      mkdirSync(area, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const st = lstatSync(area);
    if (!st.isDirectory() || st.uid !== (process.getuid?.() ?? st.uid)) {
      throw new XenodeError('state', `storage pool '${pool.name}' is not available for ${sponsor} (bad directory)`);
    }
    chmodSync(area, 0o700);
    return area;
  }

  /** Give the finished file its name (never over an existing one) and record it with its format and size. */
  private publish(tmp: string, pool: PoolRow, sponsor: string, name: string, format: VolumeFormat, size: number): void {
    const path = posix.join(areaDir(pool, sponsor), name);
    try {
      linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new XenodeError('conflict', `volume ${pool.name}/${name} already exists`, {
          hint: 'pick another name, or delete it first',
        });
      }
      throw e;
    }
    removeQuietly(tmp);
    try {
      this.db.addVolume({ pool: pool.name, sponsor, name, format, size, created: Date.now() });
    } catch (e) {
      removeQuietly(path);
      throw e;
    }
  }

  private async receive(body: Readable, tmp: string, length: number): Promise<void> {
    let got = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        got += chunk.length;
        if (got > length) cb(new XenodeError('usage', 'the upload is longer than its Content-Length'));
        else cb(null, chunk);
      },
    });
    try {
      await pipeline(body, limit, createWriteStream(tmp, { fd: openSync(tmp, CREATE_FLAGS, 0o600) }));
    } catch (e) {
      if (e instanceof XenodeError) throw e;
      throw new XenodeError('usage', `the upload did not complete: ${(e as Error).message}`);
    }
    if (got !== length) throw new XenodeError('usage', `the upload ended after ${got} of ${length} bytes`);
  }

  /**
   * The uploaded image's format and the size to record, after the gate's own
   * check of what a qcow2 header names. A raw upload's bytes are never read as
   * a header: it is used only as raw.
   */
  private checkUpload(
    tmp: string,
    declared: VolumeFormat | undefined,
    pool: PoolRow,
    sponsor: string,
  ): { format: VolumeFormat; size: number } {
    const head = Buffer.alloc(4);
    const fd = openSync(tmp, constants.O_RDONLY | constants.O_NOFOLLOW);
    let header: ReturnType<typeof readQcow2Header>;
    let length: number;
    try {
      readSync(fd, head, 0, 4, 0);
      length = fstatSync(fd).size;
      const format = declared ?? (hasQcow2Magic(head) ? 'qcow2' : 'raw');
      if (format === 'raw') return { format, size: length };
      header = readQcow2Header(fd);
    } catch (e) {
      if (!(e instanceof Qcow2Error)) throw e;
      throw new XenodeError(
        'permission',
        `upload refused: the image has a qcow2 header QEMU cannot use safely (${e.message})`,
      );
    } finally {
      closeSync(fd);
    }
    if (!header)
      throw new XenodeError('usage', 'upload refused: the image is not a qcow2 image', {
        hint: 'upload it with --format raw',
      });
    const area = this.gate.inArea(pool, sponsor);
    const size = header.size;
    try {
      checkImageChain(tmp, 'qcow2', (p) => (p === tmp ? { format: 'qcow2', size } : area(p)));
    } catch (e) {
      if (!(e instanceof ImageRefusal)) throw e;
      throw new XenodeError('permission', `upload refused: the image ${e.message}`, {
        hint: e.hint ?? (e.chain ? CHAIN_HINT : undefined),
      });
    }
    return { format: 'qcow2', size };
  }

  private view(pool: PoolRow, sponsor: string, name: string): VolumeView {
    const row = this.db.volume(pool.name, sponsor, name);
    if (!row) throw this.noVolume(pool.name, name);
    const path = posix.join(areaDir(pool, sponsor), name);
    const s = sizes(path, row);
    return { pool: pool.name, sponsor, name, format: row.format, size: s.size, used: s.used, path };
  }
}
