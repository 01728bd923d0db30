// API tokens. Each belongs to a sponsor; only a hash is stored, so the token is
// shown once at creation and never again (nor logged).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Database from 'better-sqlite3';
import { XenodeError } from '../errors.ts';
import type { Principal } from './principal.ts';

export interface TokenInfo {
  id: string;
  sponsor: string;
  admin: boolean;
  created: number;
  label: string;
}

const SPONSOR_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

function hash(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class TokenStore {
  private db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS tokens (
      id TEXT PRIMARY KEY, sponsor TEXT NOT NULL, admin INTEGER NOT NULL,
      hash BLOB NOT NULL, created INTEGER NOT NULL, label TEXT NOT NULL)`);
  }

  create(sponsor: string, opts: { admin?: boolean; label?: string } = {}): { token: string; info: TokenInfo } {
    if (!SPONSOR_RE.test(sponsor)) {
      throw new XenodeError('usage', `invalid sponsor name '${sponsor}'`, {
        hint: 'use lowercase letters, digits, - and _',
      });
    }
    const id = randomBytes(4).toString('hex');
    const token = `xn_${id}_${randomBytes(24).toString('base64url')}`;
    const info: TokenInfo = { id, sponsor, admin: opts.admin ?? false, created: Date.now(), label: opts.label ?? '' };
    this.db
      .prepare('INSERT INTO tokens (id, sponsor, admin, hash, created, label) VALUES (?, ?, ?, ?, ?, ?)')
      .run(id, sponsor, info.admin ? 1 : 0, hash(token), info.created, info.label);
    return { token, info };
  }

  list(): TokenInfo[] {
    const rows = this.db
      .prepare('SELECT id, sponsor, admin, created, label FROM tokens ORDER BY created')
      .all() as Array<{
      id: string;
      sponsor: string;
      admin: number;
      created: number;
      label: string;
    }>;
    return rows.map((r) => ({ ...r, admin: r.admin === 1 }));
  }

  revoke(id: string): void {
    const r = this.db.prepare('DELETE FROM tokens WHERE id = ?').run(id);
    if (r.changes === 0)
      throw new XenodeError('not-found', `no token with id '${id}'`, { hint: 'see `xenode token list`' });
  }

  /** The principal a bearer token stands for, or undefined. */
  authenticate(token: string): Principal | undefined {
    const m = /^xn_([0-9a-f]{8})_/.exec(token);
    if (!m) return undefined;
    const row = this.db.prepare('SELECT sponsor, admin, hash FROM tokens WHERE id = ?').get(m[1]) as
      | { sponsor: string; admin: number; hash: Buffer }
      | undefined;
    if (!row) return undefined;
    const h = hash(token);
    if (h.length !== row.hash.length || !timingSafeEqual(h, row.hash)) return undefined;
    return { sponsor: row.sponsor, admin: row.admin === 1 };
  }

  close(): void {
    this.db.close();
  }
}
