// The storage records in the daemon's state database: pools (directories the
// admin declared), which sponsors may use each, and the volumes in them. The
// files are under <pool dir>/<sponsor>/<volume>; a file without a record here is
// not a volume, whatever its name.

import Database from 'better-sqlite3';
import type { VolumeFormat } from './names.ts';

export interface PoolRow {
  name: string;
  /** Canonical (realpath) directory, fixed when the pool was added. */
  dir: string;
  created: number;
}

export interface VolumeRow {
  pool: string;
  sponsor: string;
  name: string;
  /** The format it was made with: the only one it is ever used as. */
  format: VolumeFormat;
  /**
   * Disk size the guest sees, fixed when it was made (a raw file's length, a
   * qcow2's virtual size); null only for a record older than this column.
   */
  size: number | null;
  created: number;
}

const VOLUME_COLUMNS = 'pool, sponsor, name, format, size, created';

/** A grant to `*` lets every sponsor use the pool. */
export const EVERY_SPONSOR = '*';

export class StorageDb {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS storage_pools (name TEXT PRIMARY KEY, dir TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS storage_grants (pool TEXT NOT NULL, sponsor TEXT NOT NULL, PRIMARY KEY (pool, sponsor));
      CREATE TABLE IF NOT EXISTS storage_volumes (pool TEXT NOT NULL, sponsor TEXT NOT NULL, name TEXT NOT NULL,
        format TEXT NOT NULL, created INTEGER NOT NULL, size INTEGER, PRIMARY KEY (pool, sponsor, name));`);
    const cols = this.db.prepare('PRAGMA table_info(storage_volumes)').all() as Array<{ name: string }>;
    if (!cols.some((c) => c.name === 'size')) this.db.exec('ALTER TABLE storage_volumes ADD COLUMN size INTEGER');
  }

  pools(): PoolRow[] {
    return this.db.prepare('SELECT name, dir, created FROM storage_pools ORDER BY name').all() as PoolRow[];
  }

  pool(name: string): PoolRow | undefined {
    return this.db.prepare('SELECT name, dir, created FROM storage_pools WHERE name = ?').get(name) as
      | PoolRow
      | undefined;
  }

  addPool(row: PoolRow, sponsors: readonly string[]): void {
    this.db.transaction(() => {
      this.db
        .prepare('INSERT INTO storage_pools (name, dir, created) VALUES (?, ?, ?)')
        .run(row.name, row.dir, row.created);
      for (const s of sponsors) this.grant(row.name, s);
    })();
  }

  /** Forget a pool, its grants and its volumes' records (files stay on disk). */
  removePool(name: string): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM storage_volumes WHERE pool = ?').run(name);
      this.db.prepare('DELETE FROM storage_grants WHERE pool = ?').run(name);
      this.db.prepare('DELETE FROM storage_pools WHERE name = ?').run(name);
    })();
  }

  grants(pool: string): string[] {
    const rows = this.db
      .prepare('SELECT sponsor FROM storage_grants WHERE pool = ? ORDER BY sponsor')
      .all(pool) as Array<{
      sponsor: string;
    }>;
    return rows.map((r) => r.sponsor);
  }

  grant(pool: string, sponsor: string): void {
    this.db.prepare('INSERT OR IGNORE INTO storage_grants (pool, sponsor) VALUES (?, ?)').run(pool, sponsor);
  }

  /** False when there was no such grant. */
  revoke(pool: string, sponsor: string): boolean {
    return this.db.prepare('DELETE FROM storage_grants WHERE pool = ? AND sponsor = ?').run(pool, sponsor).changes > 0;
  }

  mayUse(pool: string, sponsor: string): boolean {
    return (
      this.db
        .prepare('SELECT 1 FROM storage_grants WHERE pool = ? AND (sponsor = ? OR sponsor = ?)')
        .get(pool, sponsor, EVERY_SPONSOR) !== undefined
    );
  }

  volumes(filter: { pool?: string; sponsor?: string } = {}): VolumeRow[] {
    const all = this.db
      .prepare(`SELECT ${VOLUME_COLUMNS} FROM storage_volumes ORDER BY pool, sponsor, name`)
      .all() as VolumeRow[];
    return all.filter(
      (v) =>
        (filter.pool === undefined || v.pool === filter.pool) &&
        (filter.sponsor === undefined || v.sponsor === filter.sponsor),
    );
  }

  volume(pool: string, sponsor: string, name: string): VolumeRow | undefined {
    return this.db
      .prepare(`SELECT ${VOLUME_COLUMNS} FROM storage_volumes WHERE pool = ? AND sponsor = ? AND name = ?`)
      .get(pool, sponsor, name) as VolumeRow | undefined;
  }

  addVolume(v: VolumeRow): void {
    this.db
      .prepare(`INSERT INTO storage_volumes (${VOLUME_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)`)
      .run(v.pool, v.sponsor, v.name, v.format, v.size, v.created);
  }

  /** Record the size of a volume made before sizes were recorded. */
  setSize(pool: string, sponsor: string, name: string, size: number): void {
    this.db
      .prepare('UPDATE storage_volumes SET size = ? WHERE pool = ? AND sponsor = ? AND name = ? AND size IS NULL')
      .run(size, pool, sponsor, name);
  }

  removeVolume(pool: string, sponsor: string, name: string): void {
    this.db.prepare('DELETE FROM storage_volumes WHERE pool = ? AND sponsor = ? AND name = ?').run(pool, sponsor, name);
  }

  close(): void {
    this.db.close();
  }
}
