// API tokens and the web sessions opened with them. Each token belongs to a
// sponsor; only a hash is stored, so the token is shown once at creation and
// never again (nor logged). A web session is a random id of its own, stored
// as a hash next to its token, so it survives a daemon restart and dies with
// logout, expiry, or the token's revocation.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Database from 'better-sqlite3';
import { XenodeError } from '../errors.ts';
import { ADMIN_SPONSOR, type Principal } from './principal.ts';

export interface TokenInfo {
  id: string;
  sponsor: string;
  admin: boolean;
  created: number;
  label: string;
}

const SPONSOR_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;

function hash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

interface TokenRow {
  id: string;
  sponsor: string;
  admin: number;
}

function principal(row: TokenRow, sessionId?: string): Principal | undefined {
  // Tokens made before the sponsor name `admin` was reserved stand for nobody.
  if (row.admin !== 1 && row.sponsor === ADMIN_SPONSOR) return undefined;
  return { sponsor: row.sponsor, admin: row.admin === 1, tokenId: row.id, sessionId };
}

export class TokenStore {
  private db: Database.Database;
  private revokeListeners = new Set<(tokenId: string) => void>();

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS tokens (
      id TEXT PRIMARY KEY, sponsor TEXT NOT NULL, admin INTEGER NOT NULL,
      hash BLOB NOT NULL, created INTEGER NOT NULL, label TEXT NOT NULL)`);
    this.db.exec(`CREATE TABLE IF NOT EXISTS web_sessions (
      hash BLOB PRIMARY KEY, token_id TEXT NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL)`);
  }

  create(sponsor: string, opts: { admin?: boolean; label?: string } = {}): { token: string; info: TokenInfo } {
    if (!SPONSOR_RE.test(sponsor)) {
      throw new XenodeError('usage', `invalid sponsor name '${sponsor}'`, {
        hint: 'use lowercase letters, digits, - and _',
      });
    }
    if (sponsor === ADMIN_SPONSOR && !opts.admin) {
      throw new XenodeError('usage', `sponsor name '${ADMIN_SPONSOR}' is reserved for the admin`, {
        hint: 'add --admin for an admin token, or pick another sponsor name',
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

  /** Delete the token and its web sessions, then tell the listeners (which close its open sockets). */
  revoke(id: string): void {
    const r = this.db.transaction(() => {
      this.db.prepare('DELETE FROM web_sessions WHERE token_id = ?').run(id);
      return this.db.prepare('DELETE FROM tokens WHERE id = ?').run(id);
    })();
    if (r.changes === 0)
      throw new XenodeError('not-found', `no token with id '${id}'`, { hint: 'see `xenode token list`' });
    for (const fn of this.revokeListeners) fn(id);
  }

  /** Called with the id of every token revoked from now on; returns the unsubscribe function. */
  onRevoke(fn: (tokenId: string) => void): () => void {
    this.revokeListeners.add(fn);
    return () => this.revokeListeners.delete(fn);
  }

  /** The principal a bearer token stands for, or undefined. */
  authenticate(token: string): Principal | undefined {
    const m = /^xn_([0-9a-f]{8})_/.exec(token);
    if (!m) return undefined;
    const row = this.db.prepare('SELECT id, sponsor, admin, hash FROM tokens WHERE id = ?').get(m[1]) as
      | (TokenRow & { hash: Buffer })
      | undefined;
    if (!row) return undefined;
    const h = hash(token);
    if (h.length !== row.hash.length || !timingSafeEqual(h, row.hash)) return undefined;
    return principal(row);
  }

  /**
   * A new web session for a token that authenticated: the returned id goes in
   * the browser's cookie, only its hash is kept.
   */
  createSession(tokenId: string, ttlMs: number): string {
    const now = Date.now();
    this.db.prepare('DELETE FROM web_sessions WHERE expires <= ?').run(now);
    const id = randomBytes(32).toString('base64url');
    this.db
      .prepare('INSERT INTO web_sessions (hash, token_id, created, expires) VALUES (?, ?, ?, ?)')
      .run(hash(id), tokenId, now, now + ttlMs);
    return id;
  }

  /** The principal behind a live web session id, or undefined (unknown, ended, expired, token revoked). */
  authenticateSession(id: string): Principal | undefined {
    const h = hash(id);
    const row = this.db
      .prepare(
        `SELECT t.id, t.sponsor, t.admin FROM web_sessions s JOIN tokens t ON t.id = s.token_id
         WHERE s.hash = ? AND s.expires > ?`,
      )
      .get(h, Date.now()) as TokenRow | undefined;
    // The session's public name: a prefix of its hash, never the id itself.
    return row ? principal(row, h.toString('hex').slice(0, 16)) : undefined;
  }

  /** End a web session (logout). */
  endSession(id: string): void {
    this.db.prepare('DELETE FROM web_sessions WHERE hash = ?').run(hash(id));
  }

  close(): void {
    this.revokeListeners.clear();
    this.db.close();
  }
}
