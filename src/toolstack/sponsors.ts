// Per-sponsor limits set by the admin: how much of the host a sponsor may hold
// (domains, memory, vCPUs, disk bytes, volumes) and which Linux bridges its vifs
// may join. A sponsor without a row of its own gets the `*` row, if any; a limit
// left unset is unlimited. The admin itself is never limited.

import Database from 'better-sqlite3';
import { XenodeError } from '../errors.ts';

export interface SponsorLimits {
  /** Domains at once. */
  domains?: number;
  /** MiB of maxmem summed over the sponsor's domains. */
  memoryMiB?: number;
  /** vCPUs (maxvcpus) summed over the sponsor's domains. */
  vcpus?: number;
  /** Bytes of volumes (their apparent size) summed over the sponsor's pools. */
  diskBytes?: number;
  /** Volumes at once. */
  volumes?: number;
  /** Linux bridges the sponsor's vifs may name with bridge= (none by default). */
  bridges?: string[];
  /** VLAN ids the sponsor's vifs may name with vlan= (none by default: a VLAN on the host port may be the host's own). */
  vlans?: number[];
  /** CPU weight of the sponsor against other sponsors (credit's scale, 256 when unset);
   *  its domains' cpu_weight only divide the sponsor's share among themselves. */
  cpuWeight?: number;
  /** CPU cap over all the sponsor's domains, percent of one host CPU. */
  cpuCap?: number;
  /** Disk bytes/s over all the sponsor's disks (reads and writes together). */
  diskBps?: number;
  /** Disk operations/s over all the sponsor's disks. */
  diskIops?: number;
  /** Network bytes/s sent by all the sponsor's vifs together. */
  netBps?: number;
}

export const LIMIT_KEYS = ['domains', 'memoryMiB', 'vcpus', 'diskBytes', 'volumes'] as const;
export type NumericLimit = (typeof LIMIT_KEYS)[number];

/** Limits on rates rather than holdings: applied to the sponsor's running domains
 *  at once (LifecycleHooks.onSponsorLimits), never counted at admission. */
export const RATE_KEYS = ['cpuWeight', 'cpuCap', 'diskBps', 'diskIops', 'netBps'] as const;
export type RateLimit = (typeof RATE_KEYS)[number];

/** The name `quota-set` gives each rate limit. */
export const RATE_CLI_KEY: Record<RateLimit, string> = {
  cpuWeight: 'cpu-weight',
  cpuCap: 'cpu-cap',
  diskBps: 'disk-bps',
  diskIops: 'disk-iops',
  netBps: 'net-rate',
};
const RATE_RANGE: Record<RateLimit, [number, number]> = {
  cpuWeight: [1, 65535],
  cpuCap: [1, 100 * 1024],
  diskBps: [1, 2 ** 50],
  diskIops: [1, 2 ** 31],
  netBps: [1, 2 ** 50],
};

/** What the sponsor holds now, for `quota show` and the admission checks. */
export type SponsorUsage = Record<NumericLimit, number>;

/** The name `quota-set` gives each limit. */
export const CLI_KEY: Record<NumericLimit, string> = {
  domains: 'domains',
  memoryMiB: 'memory',
  vcpus: 'vcpus',
  diskBytes: 'disk',
  volumes: 'volumes',
};

/** `*` stands for every sponsor without a row of its own. */
export const DEFAULT_SPONSOR = '*';
const SPONSOR_RE = /^([a-z0-9][a-z0-9_-]{0,31}|\*)$/;
const BRIDGE_RE = /^[A-Za-z0-9_.:-]{1,15}$/;

export class SponsorPolicy {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec('CREATE TABLE IF NOT EXISTS sponsor_limits (sponsor TEXT PRIMARY KEY, limits TEXT NOT NULL)');
  }

  /** The limits that apply to `sponsor` (its own row, else `*`, else none). */
  limits(sponsor: string): SponsorLimits {
    return this.row(sponsor) ?? this.row(DEFAULT_SPONSOR) ?? {};
  }

  /** The sponsor's own row only (undefined: it inherits `*`). */
  row(sponsor: string): SponsorLimits | undefined {
    const r = this.db.prepare('SELECT limits FROM sponsor_limits WHERE sponsor = ?').get(sponsor) as
      | { limits: string }
      | undefined;
    return r ? (JSON.parse(r.limits) as SponsorLimits) : undefined;
  }

  list(): Array<{ sponsor: string; limits: SponsorLimits }> {
    const rows = this.db.prepare('SELECT sponsor, limits FROM sponsor_limits ORDER BY sponsor').all() as Array<{
      sponsor: string;
      limits: string;
    }>;
    return rows.map((r) => ({ sponsor: r.sponsor, limits: JSON.parse(r.limits) as SponsorLimits }));
  }

  /** Merge `change` into the sponsor's row (null clears a limit). */
  set(sponsor: string, change: { [K in keyof SponsorLimits]?: SponsorLimits[K] | null }): SponsorLimits {
    if (!SPONSOR_RE.test(sponsor) || sponsor === 'admin') {
      throw new XenodeError('usage', `invalid sponsor name '${sponsor}'`, {
        hint: "lowercase letters, digits, - and _, or '*' for every sponsor; the admin has no limits",
      });
    }
    const next: SponsorLimits = { ...(this.row(sponsor) ?? {}) };
    for (const k of LIMIT_KEYS) {
      const v = change[k];
      if (v === undefined) continue;
      if (v === null) delete next[k];
      else if (!Number.isSafeInteger(v) || v < 0)
        throw new XenodeError('usage', `limit ${k} must be a whole number >= 0, not ${v}`);
      else next[k] = v;
    }
    for (const k of RATE_KEYS) {
      const v = change[k];
      if (v === undefined) continue;
      const [lo, hi] = RATE_RANGE[k];
      if (v === null) delete next[k];
      else if (!Number.isSafeInteger(v) || v < lo || v > hi)
        throw new XenodeError('usage', `limit ${RATE_CLI_KEY[k]} must be a whole number from ${lo} to ${hi}, not ${v}`);
      else next[k] = v;
    }
    if (change.bridges !== undefined) {
      if (change.bridges === null || change.bridges.length === 0) delete next.bridges;
      else {
        for (const b of change.bridges)
          if (!BRIDGE_RE.test(b)) throw new XenodeError('usage', `invalid bridge name '${b}'`);
        next.bridges = [...new Set(change.bridges)].sort();
      }
    }
    if (change.vlans !== undefined) {
      if (change.vlans === null || change.vlans.length === 0) delete next.vlans;
      else {
        for (const v of change.vlans)
          if (!Number.isInteger(v) || v < 1 || v > 4094)
            throw new XenodeError('usage', `invalid VLAN id '${v}'`, { hint: 'VLAN ids are 1 to 4094' });
        next.vlans = [...new Set(change.vlans)].sort((a, b) => a - b);
      }
    }
    this.db
      .prepare(
        'INSERT INTO sponsor_limits (sponsor, limits) VALUES (?, ?) ON CONFLICT(sponsor) DO UPDATE SET limits = ?',
      )
      .run(sponsor, JSON.stringify(next), JSON.stringify(next));
    return next;
  }

  remove(sponsor: string): void {
    const r = this.db.prepare('DELETE FROM sponsor_limits WHERE sponsor = ?').run(sponsor);
    if (r.changes === 0) throw new XenodeError('not-found', `no limits are set for sponsor '${sponsor}'`);
  }

  close(): void {
    this.db.close();
  }
}

/** Refuses `want` more of `key` when the sponsor would go over its limit. */
export function checkLimit(
  sponsor: string,
  limits: SponsorLimits,
  key: NumericLimit,
  used: number,
  want: number,
): void {
  const max = limits[key];
  if (max === undefined || used + want <= max) return;
  const unit: Record<NumericLimit, string> = {
    domains: 'domains',
    memoryMiB: 'MiB of memory',
    vcpus: 'vCPUs',
    diskBytes: 'bytes of volumes',
    volumes: 'volumes',
  };
  throw new XenodeError(
    'quota',
    `sponsor ${sponsor} would hold ${used + want} ${unit[key]}, over its limit of ${max}`,
    {
      hint: `free some first, or ask the admin to raise it: xenode quota-set ${sponsor} ${CLI_KEY[key]}=N`,
    },
  );
}
