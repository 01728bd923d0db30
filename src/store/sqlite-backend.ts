// Persistence in an embedded SQLite database. The in-memory tree stays the read
// path; every change set the store hands over (one operation, or a group
// commit of many) is one SQLite transaction, so after a crash (even kill -9)
// the database holds exactly the change sets applied. WAL with
// synchronous=NORMAL survives process crashes; a power loss may lose the last
// few commits but never corrupts the file. The WAL is checkpointed when the
// store has been idle for a moment, not inside a request's commit.

import Database from 'better-sqlite3';
import { XenodeError } from '../errors.ts';
import type { StoredNode } from './node.ts';
import { validatePerms } from './perms.ts';
import type { PermList } from './types.ts';

export interface NodeRow {
  readonly path: string;
  readonly value: string;
  readonly perms: PermList;
  readonly generation: number;
}

const SCHEMA_VERSION = '1';
/** Quiet time after the last commit before the WAL is checkpointed. */
const CHECKPOINT_IDLE_MS = 200;
/** Commits after which a store that is never idle checkpoints anyway, so the WAL stays bounded. */
const CHECKPOINT_FORCE_COMMITS = 2000;

interface RawRow {
  path: string;
  value: string;
  perms: string;
  generation: number;
}

export class SqliteBackend {
  private readonly db: Database.Database;
  private readonly upsert: Database.Statement<[string, string, string, number]>;
  private readonly remove: Database.Statement<[string]>;
  private readonly applyAll: (changes: ReadonlyArray<readonly [string, StoredNode | null]>) => void;
  private commitsSinceCheckpoint = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(readonly file: string) {
    try {
      // No busy wait: another process holding the file is a second daemon, not a transient lock.
      this.db = new Database(file, { timeout: 0 });
    } catch (e) {
      throw new XenodeError('config', `cannot open control store database ${file}: ${errorText(e)}`, {
        hint: 'check that the directory exists and is writable',
      });
    }
    try {
      // Exclusive: the in-memory tree is the read path, so a second process
      // writing the same file would silently diverge. Taken now, held until close.
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      // Checkpoints are ours (checkpoint()), run when idle rather than in whichever commit crosses 1000 pages.
      this.db.pragma('wal_autocheckpoint = 0');
      this.db.exec('BEGIN EXCLUSIVE; COMMIT;');
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS nodes (
          path TEXT PRIMARY KEY,
          value TEXT NOT NULL,
          perms TEXT NOT NULL,
          generation INTEGER NOT NULL
        ) WITHOUT ROWID;
      `);
      const version = this.db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema'").get();
      if (version === undefined) {
        this.db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(SCHEMA_VERSION);
      } else if (version.value !== SCHEMA_VERSION) {
        throw new XenodeError('config', `control store database ${file} has schema ${version.value}`, {
          hint: `this xenoded understands schema ${SCHEMA_VERSION}`,
        });
      }
      this.upsert = this.db.prepare(
        `INSERT INTO nodes (path, value, perms, generation) VALUES (?, ?, ?, ?)
         ON CONFLICT (path) DO UPDATE SET value = excluded.value, perms = excluded.perms,
           generation = excluded.generation`,
      );
      this.remove = this.db.prepare('DELETE FROM nodes WHERE path = ?');
      this.applyAll = this.db.transaction((changes: ReadonlyArray<readonly [string, StoredNode | null]>) => {
        for (const [path, node] of changes) {
          if (node) this.upsert.run(path, node.value, JSON.stringify(node.perms), node.gen);
          else this.remove.run(path);
        }
      });
    } catch (e) {
      this.db.close();
      if (e instanceof XenodeError) throw e;
      if (e instanceof Error && 'code' in e && e.code === 'SQLITE_BUSY') {
        throw new XenodeError('state', `control store database ${file} is in use by another process`, {
          hint: 'is another xenoded running?',
        });
      }
      throw new XenodeError('state', `cannot use control store database ${file}: ${errorText(e)}`, {
        hint: 'run `xenoded --recover`: it keeps the file aside, and the store is rebuilt for the running domains',
      });
    }
  }

  load(): NodeRow[] {
    const rows = this.db.prepare<[], RawRow>('SELECT path, value, perms, generation FROM nodes').all();
    return rows.map((row) => {
      let perms: PermList;
      try {
        perms = validatePerms(JSON.parse(row.perms));
      } catch {
        throw new XenodeError('internal', `control store database ${this.file}: bad perms on ${row.path}`);
      }
      return { path: row.path, value: String(row.value), perms, generation: Number(row.generation) };
    });
  }

  /** Writes one committed change set atomically. */
  apply(changes: ReadonlyArray<readonly [string, StoredNode | null]>): void {
    this.applyAll(changes);
    if (++this.commitsSinceCheckpoint >= CHECKPOINT_FORCE_COMMITS) {
      this.checkpoint();
    } else if (this.idleTimer === undefined) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        this.checkpoint();
      }, CHECKPOINT_IDLE_MS);
      // Never what keeps a process alive: close() checkpoints anyway.
      this.idleTimer.unref();
    } else {
      this.idleTimer.refresh();
    }
  }

  /** Copies the WAL into the database file and empties it (the store is its only user: nothing to wait for). */
  checkpoint(): void {
    if (this.idleTimer !== undefined) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
    this.commitsSinceCheckpoint = 0;
    if (!this.db.open) return;
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // The WAL keeps the data; the next checkpoint tries again.
    }
  }

  close(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.db.close();
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
