// Accounting's own SQLite database in the daemon's state directory. Per domain
// (one row per domid and uuid, kept after it is destroyed): the last cumulative
// value of each counter series and the usage recorded per minute. A sample
// updates both in one transaction, so a daemon killed at any point has either
// counted a reading and moved its reference, or neither: the next daemon
// computes the delta from what was persisted, and no interval is lost or
// counted twice.

import Database from 'better-sqlite3';
import {
  counterDelta,
  type MemoryReading,
  type MemoryState,
  memoryDelta,
  type SeriesReading,
  type SeriesState,
} from './delta.ts';
import { expandPriceKey, type PriceTable, priceTable } from './prices.ts';
import { addUsage, USAGE_KEYS, type Usage, zeroUsage } from './usage.ts';

export interface DomainKey {
  uuid: string;
  domid: number;
  name: string;
  sponsor: string;
}

/** What one sample of a domain read. */
export interface Reading {
  /** ms since epoch */
  t: number;
  series: SeriesReading[];
  memory?: MemoryReading;
}

export interface ReportQuery {
  /** ms; undefined: from the start */
  since?: number;
  until: number;
  sponsor?: string;
  /** name, domid or uuid */
  domain?: string;
}

export interface DomainAccount {
  sponsor: string;
  domid: number;
  name: string;
  uuid: string;
  /** ms since epoch: first sampled */
  firstSeen: number;
  /** ms since epoch; null while it lives */
  destroyed: number | null;
  /** When its counters were last read (ms since epoch), null before that. */
  lastSample: number | null;
  usage: Usage;
}

export interface SponsorAccount {
  sponsor: string;
  domains: number;
  usage: Usage;
}

export interface AccountReport {
  since: number | null;
  until: number;
  /** When the last sample was recorded (ms since epoch), null before the first. */
  sampledAt: number | null;
  /** Usage is kept per minute: a minute counts when it starts in [since, until). */
  resolutionMs: number;
  domains: DomainAccount[];
  sponsors: SponsorAccount[];
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const MEMORY_SERIES = 'mem';
const cols = USAGE_KEYS.map((k) => `"${k}"`);

/** How long history is kept: per minute for `minuteDays`, then per hour, and nothing past `keepDays`. */
export interface RetentionPolicy {
  minuteDays: number;
  /** 0: keep forever. */
  keepDays: number;
}

export interface CompactResult {
  /** Minute rows folded into hour rows. */
  rolledUp: number;
  /** Rows dropped past the retention. */
  dropped: number;
  /** Destroyed domains with no usage left, forgotten. */
  domainsDropped: number;
}

export class AccountStore {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL survives a killed process (the WAL is written); only a power cut may lose the last sample.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS acct_domains (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL, domid INTEGER NOT NULL,
        name TEXT NOT NULL, sponsor TEXT NOT NULL, first_seen INTEGER NOT NULL, last_sample INTEGER, destroyed INTEGER);
      CREATE INDEX IF NOT EXISTS acct_domains_live ON acct_domains (uuid, domid) WHERE destroyed IS NULL;
      CREATE TABLE IF NOT EXISTS acct_series (domain INTEGER NOT NULL, key TEXT NOT NULL, epoch TEXT NOT NULL,
        state TEXT NOT NULL, PRIMARY KEY (domain, key));
      CREATE TABLE IF NOT EXISTS acct_usage (domain INTEGER NOT NULL, minute INTEGER NOT NULL,
        ${cols.map((c) => `${c} REAL NOT NULL DEFAULT 0`).join(', ')}, PRIMARY KEY (domain, minute));
      CREATE TABLE IF NOT EXISTS acct_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS acct_prices (key TEXT PRIMARY KEY, text TEXT NOT NULL);`);
  }

  close(): void {
    this.db.close();
  }

  /** The row of a living domain, made when first seen. */
  domainRow(k: DomainKey, t: number): number {
    const row = this.liveRow(k.uuid, k.domid);
    if (row !== undefined) return row;
    return Number(
      this.db
        .prepare('INSERT INTO acct_domains (uuid, domid, name, sponsor, first_seen) VALUES (?, ?, ?, ?, ?)')
        .run(k.uuid, k.domid, k.name, k.sponsor, t).lastInsertRowid,
    );
  }

  /** The row of a living domain, if it has one. */
  liveRow(uuid: string, domid: number): number | undefined {
    const row = this.db
      .prepare('SELECT id FROM acct_domains WHERE uuid = ? AND domid = ? AND destroyed IS NULL')
      .get(uuid, domid) as { id: number } | undefined;
    return row?.id;
  }

  /** Which life of a counter series the domain is accounted from. */
  seriesEpoch(domain: number, key: string): string | undefined {
    return this.series(domain, key)?.epoch;
  }

  private series(domain: number, key: string): SeriesState | undefined {
    const r = this.db.prepare('SELECT epoch, state FROM acct_series WHERE domain = ? AND key = ?').get(domain, key) as
      | { epoch: string; state: string }
      | undefined;
    return r ? { epoch: r.epoch, values: JSON.parse(r.state) as Record<string, number> } : undefined;
  }

  private putSeries(domain: number, key: string, epoch: string, state: object): void {
    this.db
      .prepare(
        'INSERT INTO acct_series (domain, key, epoch, state) VALUES (?, ?, ?, ?) ON CONFLICT (domain, key) DO UPDATE SET epoch = excluded.epoch, state = excluded.state',
      )
      .run(domain, key, epoch, JSON.stringify(state));
  }

  /** Count one reading of a domain: returns what it added. One transaction. */
  apply(domain: number, r: Reading, name?: string): Usage {
    return this.db.transaction((): Usage => {
      const add = zeroUsage();
      for (const s of r.series) {
        const prev = this.series(domain, s.key);
        addUsage(add, counterDelta(prev, s));
        const kept = prev && prev.epoch === s.epoch ? prev.values : {};
        const values: Record<string, number> = { ...kept };
        for (const [k, v] of Object.entries(s.values)) if (Number.isFinite(v) && v >= 0) values[k] = v;
        this.putSeries(domain, s.key, s.epoch, values);
      }
      if (r.memory) {
        const m = this.series(domain, MEMORY_SERIES);
        const prev = m ? ({ instance: m.epoch, ...m.values } as MemoryState) : undefined;
        const { usage, next } = memoryDelta(prev, r.memory);
        addUsage(add, usage);
        const { instance, ...state } = next;
        this.putSeries(domain, MEMORY_SERIES, instance, state);
      }
      if (USAGE_KEYS.some((k) => add[k] > 0)) {
        const minute = Math.floor(r.t / MINUTE) * MINUTE;
        this.db
          .prepare(
            `INSERT INTO acct_usage (domain, minute, ${cols.join(', ')}) VALUES (?, ?, ${cols.map(() => '?').join(', ')})
             ON CONFLICT (domain, minute) DO UPDATE SET ${cols.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`,
          )
          .run(domain, minute, ...USAGE_KEYS.map((k) => add[k]));
      }
      this.db
        .prepare(
          'UPDATE acct_domains SET last_sample = MAX(COALESCE(last_sample, 0), ?), name = COALESCE(?, name) WHERE id = ?',
        )
        .run(r.t, name ?? null, domain);
      this.db
        .prepare(
          "INSERT INTO acct_meta (key, value) VALUES ('sampled_at', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .run(String(r.t));
      return add;
    })();
  }

  /**
   * Bound the history: minute rows older than `minuteDays` become one row per
   * hour (the row of the hour's start, so sums over whole hours stay exact), rows
   * older than `keepDays` go, and so do destroyed domains with nothing left.
   */
  compact(now: number, p: RetentionPolicy): CompactResult {
    if (!(Number.isInteger(p.minuteDays) && p.minuteDays >= 1))
      throw new Error('minute history must be at least 1 day');
    if (!(Number.isInteger(p.keepDays) && p.keepDays >= 0)) throw new Error('keep days must be 0 (forever) or more');
    if (p.keepDays !== 0 && p.keepDays < p.minuteDays)
      throw new Error(`cannot keep ${p.keepDays} days and minutes for ${p.minuteDays}`);
    // Hours wholly before the horizon only: a partly rolled-up hour would be counted twice.
    const horizon = Math.floor((now - p.minuteDays * DAY) / HOUR) * HOUR;
    return this.db.transaction((): CompactResult => {
      const sums = cols.map((c) => `SUM(${c})`).join(', ');
      const loose = `minute < ? AND minute % ${HOUR} != 0`;
      // `WHERE true` lets SQLite read the ON CONFLICT as the upsert's, not the join's.
      this.db
        .prepare(
          `INSERT INTO acct_usage (domain, minute, ${cols.join(', ')})
           SELECT domain, (minute / ${HOUR}) * ${HOUR} AS hour, ${sums} FROM acct_usage
           WHERE minute < ? AND (domain, (minute / ${HOUR}) * ${HOUR}) IN
             (SELECT domain, (minute / ${HOUR}) * ${HOUR} FROM acct_usage WHERE ${loose})
           GROUP BY domain, hour
           ON CONFLICT (domain, minute) DO UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}`,
        )
        .run(horizon, horizon);
      const rolledUp = this.db.prepare(`DELETE FROM acct_usage WHERE ${loose}`).run(horizon).changes;
      let dropped = 0;
      let domainsDropped = 0;
      if (p.keepDays > 0) {
        const cutoff = now - p.keepDays * DAY;
        dropped = this.db.prepare('DELETE FROM acct_usage WHERE minute < ?').run(cutoff).changes;
        domainsDropped = this.db
          .prepare(
            `DELETE FROM acct_domains WHERE destroyed IS NOT NULL AND destroyed < ?
             AND NOT EXISTS (SELECT 1 FROM acct_usage u WHERE u.domain = acct_domains.id)`,
          )
          .run(cutoff).changes;
      }
      return { rolledUp, dropped, domainsDropped };
    })();
  }

  /** How many usage rows are kept (for tests and the daemon log). */
  usageRows(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM acct_usage').get() as { n: number }).n;
  }

  /** The domain is gone: its usage stays, its counter references go. */
  destroyed(domain: number, t: number): void {
    this.db.transaction(() => {
      this.db.prepare('UPDATE acct_domains SET destroyed = ? WHERE id = ? AND destroyed IS NULL').run(t, domain);
      this.db.prepare('DELETE FROM acct_series WHERE domain = ?').run(domain);
    })();
  }

  /**
   * After a daemon restart: rows of domains that no longer exist (gone while no
   * daemon ran, or before their teardown reached accounting) end at their last sample.
   */
  closeMissing(live: ReadonlyArray<Pick<DomainKey, 'uuid' | 'domid'>>): number {
    const keep = new Set(live.map((k) => `${k.uuid}/${k.domid}`));
    const rows = this.db
      .prepare('SELECT id, uuid, domid, first_seen, last_sample FROM acct_domains WHERE destroyed IS NULL')
      .all() as Array<{ id: number; uuid: string; domid: number; first_seen: number; last_sample: number | null }>;
    let n = 0;
    for (const r of rows) {
      if (keep.has(`${r.uuid}/${r.domid}`)) continue;
      this.destroyed(r.id, r.last_sample ?? r.first_seen);
      n++;
    }
    return n;
  }

  sampledAt(): number | null {
    const r = this.db.prepare("SELECT value FROM acct_meta WHERE key = 'sampled_at'").get() as
      | { value: string }
      | undefined;
    return r ? Number(r.value) : null;
  }

  report(q: ReportQuery): AccountReport {
    const since = q.since === undefined ? undefined : Math.floor(q.since / MINUTE) * MINUTE;
    const where = ['d.first_seen < @until', '(d.destroyed IS NULL OR d.destroyed >= @since)'];
    if (q.sponsor !== undefined) where.push('d.sponsor = @sponsor');
    if (q.domain !== undefined)
      where.push(`(d.name = @domain OR d.uuid = @domain${/^\d{1,9}$/.test(q.domain) ? ' OR d.domid = @domid' : ''})`);
    const rows = this.db
      .prepare(
        `SELECT d.sponsor, d.domid, d.name, d.uuid, d.first_seen AS firstSeen, d.destroyed, d.last_sample AS lastSample,
           ${USAGE_KEYS.map((k) => `COALESCE(SUM(u."${k}"), 0) AS "${k}"`).join(', ')}
         FROM acct_domains d LEFT JOIN acct_usage u ON u.domain = d.id AND u.minute >= @since AND u.minute < @until
         WHERE ${where.join(' AND ')} GROUP BY d.id ORDER BY d.sponsor, d.first_seen, d.id`,
      )
      .all({
        since: since ?? 0,
        until: q.until,
        sponsor: q.sponsor ?? null,
        domain: q.domain ?? null,
        domid: q.domain !== undefined && /^\d{1,9}$/.test(q.domain) ? Number(q.domain) : null,
      }) as Array<Omit<DomainAccount, 'usage'> & Usage>;
    const domains: DomainAccount[] = rows.map((r) => {
      const usage = zeroUsage();
      for (const k of USAGE_KEYS) usage[k] = r[k];
      return {
        sponsor: r.sponsor,
        domid: r.domid,
        name: r.name,
        uuid: r.uuid,
        firstSeen: r.firstSeen,
        destroyed: r.destroyed,
        lastSample: r.lastSample,
        usage,
      };
    });
    const bySponsor = new Map<string, SponsorAccount>();
    for (const d of domains) {
      const s = bySponsor.get(d.sponsor) ?? { sponsor: d.sponsor, domains: 0, usage: zeroUsage() };
      bySponsor.set(d.sponsor, s);
      s.domains++;
      addUsage(s.usage, d.usage);
    }
    return {
      since: since ?? null,
      until: q.until,
      sampledAt: this.sampledAt(),
      resolutionMs: MINUTE,
      domains,
      sponsors: [...bySponsor.values()].sort((a, b) => (a.sponsor < b.sponsor ? -1 : 1)),
    };
  }

  prices(): PriceTable {
    const rows = this.db.prepare('SELECT key, text FROM acct_prices').all() as Array<{ key: string; text: string }>;
    return priceTable(Object.fromEntries(rows.map((r) => [r.key, r.text])));
  }

  /** Set (text) or remove (null) entries; `replace` clears the table first. Input already checked. */
  setPrices(change: Record<string, string | null>, replace: boolean): PriceTable {
    this.db.transaction(() => {
      if (replace) this.db.prepare('DELETE FROM acct_prices').run();
      for (const [k, v] of Object.entries(change)) {
        // Kept expanded: disk=X is disk-read=X and disk-write=X, so either may change alone later.
        for (const key of expandPriceKey(k)) {
          if (v === null) this.db.prepare('DELETE FROM acct_prices WHERE key = ?').run(key);
          else
            this.db
              .prepare(
                'INSERT INTO acct_prices (key, text) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET text = excluded.text',
              )
              .run(key, v);
        }
      }
    })();
    return this.prices();
  }
}
