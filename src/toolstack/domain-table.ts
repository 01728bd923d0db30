// The persistent domain table: what xenoded knows about every domain, so a
// restarted daemon finds the same domids, names and QEMU processes.

import Database from 'better-sqlite3';
import { XenodeError } from '../errors.ts';
import type { DomainRecord } from './domain-record.ts';
import { domidsInUse, writeRunRecord } from './run-dirs.ts';

export type { BootInfo, DomainRecord, DomainState, ShutdownReason } from './domain-record.ts';

export interface DomainTableOptions {
  /**
   * The run directories' parent: each record is copied into its run directory
   * (for `xenoded --recover`), and no domid with a directory or a live QEMU
   * there is handed out again.
   */
  domainsDir?: string;
}

/** The refusal for a table file SQLite cannot read, naming the file and the way out. */
export function unreadableTable(path: string, why: string): XenodeError {
  return new XenodeError('state', `domain table ${path} is unreadable (${why})`, {
    hint: 'run `xenoded --recover`: it keeps the file aside and rebuilds the table from the run directories and running QEMUs',
  });
}

export class DomainTable {
  private db: Database.Database;

  constructor(
    readonly path: string,
    private readonly o: DomainTableOptions = {},
  ) {
    try {
      this.db = new Database(path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(`CREATE TABLE IF NOT EXISTS domains (
        domid INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        record TEXT NOT NULL
      )`);
      this.db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    } catch (e) {
      throw unreadableTable(path, e instanceof Error ? e.message : String(e));
    }
  }

  all(): DomainRecord[] {
    const rows = this.db.prepare('SELECT record FROM domains ORDER BY domid').all() as Array<{ record: string }>;
    return rows.map((r) => JSON.parse(r.record) as DomainRecord);
  }

  put(rec: DomainRecord): void {
    this.db
      .prepare(
        'INSERT INTO domains (domid, name, record) VALUES (?, ?, ?) ON CONFLICT(domid) DO UPDATE SET name=excluded.name, record=excluded.record',
      )
      .run(rec.domid, rec.name, JSON.stringify(rec));
    if (this.o.domainsDir) writeRunRecord(rec);
  }

  /** The domids that have a row. */
  domids(): number[] {
    return (this.db.prepare('SELECT domid FROM domains ORDER BY domid').all() as Array<{ domid: number }>).map(
      (r) => r.domid,
    );
  }

  remove(domid: number): void {
    this.db.prepare('DELETE FROM domains WHERE domid = ?').run(domid);
  }

  /**
   * Domids are never reused within a host's lifetime, as in Xen until reboot;
   * nor while a run directory or a QEMU of theirs exists, even one the table
   * lost (a failed create removes its run directory, so it must be its own).
   */
  nextDomid(): number {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'next_domid'").get() as
      | { value: string }
      | undefined;
    const maxRow = this.db.prepare('SELECT MAX(domid) AS m FROM domains').get() as { m: number | null };
    const inUse = this.o.domainsDir ? domidsInUse(this.o.domainsDir) : [];
    const next = Math.max(row ? Number(row.value) : 1, (maxRow.m ?? 0) + 1, (inUse.at(-1) ?? 0) + 1);
    this.db
      .prepare(
        "INSERT INTO meta (key, value) VALUES ('next_domid', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
      )
      .run(String(next + 1));
    return next;
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.db
      .prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value')
      .run(key, value);
  }

  close(): void {
    this.db.close();
  }
}
