// The per-sponsor aggregate disk limit (quota-set alice disk-bps=20M disk-iops=500)
// over all the sponsor's disks, across its domains and so across QEMU processes,
// which share no throttle group. The daemon splits the aggregate into one share
// per disk (share.ts), writes each into that disk's share group in its QEMU
// (src/engine/disk-throttle.ts), and every second moves the shares towards the
// disks that use them. Lowered shares are written before raised ones, so the
// shares in force never sum above the aggregate, and a disk's own limit (a
// separate group above the share) still caps it. docs/disks.md has the design.

import type { DiskSpec, DiskThrottle } from '../../config/types.ts';
import { diskStats } from '../../engine/disk-hotplug.ts';
import { readThrottle, type ShareLimits, setShareThrottle } from '../../engine/disk-throttle.ts';
import type { QemuMachine } from '../../engine/qemu-machine.ts';
import { errorMessage, XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { SponsorLimits, SponsorPolicy } from '../../toolstack/sponsors.ts';
import { allocateShares, type ShareDemand } from './share.ts';

/** How often shares follow demand. */
export const REBALANCE_MS = 1000;

type Dim = 'bps' | 'iops';
const DIMS: readonly Dim[] = ['bps', 'iops'];

/** One disk the sponsor holds: open in a running QEMU, or about to be. */
export interface ShareDisk {
  d: Domain;
  devnum: number;
  spec: DiskSpec;
}

interface Entry {
  /** The share in force in QEMU (or on the command line being launched); undefined = none. */
  share: ShareLimits;
  /** Counters at the last sample, to measure use. */
  last?: { at: number; bytes: number; ops: number };
  used?: Record<Dim, number>;
  /** Its QEMU has no share group (started before disk limits): left alone. */
  stuck?: boolean;
}

const keyOf = (domid: number, devnum: number) => `${domid}:${devnum}`;

/** The most a disk's own limits let it move, per dimension (undefined: no bound). */
function capOf(t: DiskThrottle | undefined, dim: Dim): number | undefined {
  if (!t) return undefined;
  const total = t[dim];
  if (total !== undefined) return total;
  const rd = t[`${dim}_rd`];
  const wr = t[`${dim}_wr`];
  return rd !== undefined && wr !== undefined ? rd + wr : undefined;
}

function live(d: Domain): QemuMachine | undefined {
  return d.machine?.alive ? d.machine : undefined;
}

export class SponsorShares {
  private entries = new Map<string, Entry>();
  /** Disks reserved for a hot-plug in progress (not yet among the open disks). */
  private pending = new Map<string, ShareDisk>();
  private queue: Promise<unknown> = Promise.resolve();
  private timer?: NodeJS.Timeout;

  constructor(
    /** Every disk with an image the daemon has open or is opening, across all domains. */
    private readonly disks: () => ShareDisk[],
    private readonly policy: () => SponsorPolicy | undefined,
    private readonly log: Pick<DaemonLog, 'warn'>,
  ) {}

  /** One change at a time: the tick, launches, hot-plugs and quota-set all move the same shares. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  start(): void {
    this.timer ??= setInterval(() => {
      void this.serial(() => this.tick()).catch((e: unknown) => this.log.warn(`disk shares: ${String(e)}`));
    }, REBALANCE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A sponsor's aggregate, or undefined where none applies (the admin is never limited). */
  private aggregate(sponsor: string, given?: SponsorLimits): Partial<Record<Dim, number>> | undefined {
    if (sponsor === 'admin') return undefined;
    const l = given ?? this.policy()?.limits(sponsor);
    if (l?.diskBps === undefined && l?.diskIops === undefined) return undefined;
    return { bps: l.diskBps, iops: l.diskIops };
  }

  /** The share of each disk in force now (for views). */
  shareOf(domid: number, devnum: number): ShareLimits | undefined {
    return this.entries.get(keyOf(domid, devnum))?.share;
  }

  /**
   * Shares for disks about to get a QEMU (a launch, or a hot-plug when `hotplug`):
   * the sponsor's other disks are lowered in QEMU first to make room.
   */
  reserve(d: Domain, disks: readonly ShareDisk[], hotplug: boolean): Promise<Map<number, ShareLimits>> {
    return this.serial(async () => {
      if (!hotplug) this.dropDomain(d.domid);
      for (const x of disks) {
        const key = keyOf(d.domid, x.devnum);
        this.entries.set(key, { share: {} });
        if (hotplug) this.pending.set(key, x);
      }
      const agg = this.aggregate(d.rec.sponsor);
      const fresh = new Set(disks.map((x) => keyOf(d.domid, x.devnum)));
      if (agg) await this.rebalance(d.rec.sponsor, agg, fresh);
      return new Map(disks.map((x) => [x.devnum, this.entries.get(keyOf(d.domid, x.devnum))?.share ?? {}]));
    });
  }

  /** A hot-plug finished (the disk is open now) or failed (forget it). */
  settle(domid: number, devnum: number, ok: boolean): void {
    const key = keyOf(domid, devnum);
    this.pending.delete(key);
    if (!ok) this.entries.delete(key);
  }

  /** A disk or a whole domain is gone; its share goes back to the others at the next tick. */
  forget(domid: number, devnum?: number): void {
    if (devnum === undefined) this.dropDomain(domid);
    else {
      this.entries.delete(keyOf(domid, devnum));
      this.pending.delete(keyOf(domid, devnum));
    }
  }

  private dropDomain(domid: number): void {
    for (const k of [...this.entries.keys()]) if (k.startsWith(`${domid}:`)) this.entries.delete(k);
    for (const k of [...this.pending.keys()]) if (k.startsWith(`${domid}:`)) this.pending.delete(k);
  }

  /** A restarted daemon learns the shares its QEMUs hold. */
  adopt(d: Domain, m: QemuMachine, devnums: readonly number[]): Promise<void> {
    return this.serial(async () => {
      for (const devnum of devnums) {
        const t = await readThrottle(m, devnum).catch(() => undefined);
        if (t) this.entries.set(keyOf(d.domid, devnum), { share: t.share });
      }
    });
  }

  /** The admin changed the sponsor's limits: split again now. */
  apply(sponsor: string, limits: SponsorLimits): Promise<void> {
    return this.serial(async () => {
      await this.sample(sponsor);
      await this.rebalance(sponsor, this.aggregate(sponsor, limits) ?? {}, new Set());
    });
  }

  private sponsorDisks(sponsor: string): ShareDisk[] {
    const out = this.disks().filter((x) => x.d.rec.sponsor === sponsor && x.spec.target !== '');
    const seen = new Set(out.map((x) => keyOf(x.d.domid, x.devnum)));
    for (const [k, x] of this.pending) if (x.d.rec.sponsor === sponsor && !seen.has(k)) out.push(x);
    return out;
  }

  private async tick(): Promise<void> {
    const sponsors = new Set<string>();
    for (const x of this.disks()) sponsors.add(x.d.rec.sponsor);
    for (const s of sponsors) {
      const agg = this.aggregate(s);
      const held = this.sponsorDisks(s).some((x) => {
        const e = this.entries.get(keyOf(x.d.domid, x.devnum));
        return e?.share.bps !== undefined || e?.share.iops !== undefined;
      });
      // Nothing to do for a sponsor without an aggregate whose disks hold no share.
      if (!agg && !held) continue;
      if (agg) await this.sample(s);
      await this.rebalance(s, agg ?? {}, new Set());
    }
  }

  /** Measure each live disk's use since the last sample (query-blockstats, one call per domain). */
  private async sample(sponsor: string): Promise<void> {
    const byDomain = new Map<Domain, ShareDisk[]>();
    for (const x of this.sponsorDisks(sponsor)) {
      if (!live(x.d)) continue;
      byDomain.set(x.d, [...(byDomain.get(x.d) ?? []), x]);
    }
    for (const [d, xs] of byDomain) {
      const m = live(d);
      if (!m) continue;
      let stats: Awaited<ReturnType<typeof diskStats>>;
      try {
        stats = await diskStats(m);
      } catch {
        continue; // dying: its shares go at teardown
      }
      const now = Date.now();
      for (const x of xs) {
        const e = this.entries.get(keyOf(d.domid, x.devnum));
        const s = stats.get(x.devnum);
        if (!e || !s) continue;
        const bytes = s.rdBytes + s.wrBytes;
        const ops = s.rdOps + s.wrOps;
        const dt = e.last ? (now - e.last.at) / 1000 : 0;
        e.used =
          e.last && dt > 0.2 && bytes >= e.last.bytes && ops >= e.last.ops
            ? { bps: (bytes - e.last.bytes) / dt, iops: (ops - e.last.ops) / dt }
            : undefined;
        e.last = { at: now, bytes, ops };
      }
    }
  }

  /**
   * New shares for every disk of the sponsor, written to QEMU lowest first.
   * `fresh` disks have no QEMU yet: their share is only recorded (the caller
   * puts it on the command line or in the hot-plug).
   */
  private async rebalance(sponsor: string, agg: Partial<Record<Dim, number>>, fresh: Set<string>): Promise<void> {
    const disks = this.sponsorDisks(sponsor);
    const next = new Map<string, ShareLimits>();
    for (const x of disks) next.set(keyOf(x.d.domid, x.devnum), {});
    for (const dim of DIMS) {
      const total = agg[dim];
      if (total === undefined) continue;
      const demands: ShareDemand[] = disks.map((x) => {
        const key = keyOf(x.d.domid, x.devnum);
        const e = this.entries.get(key);
        const dem: ShareDemand = { key };
        const cur = e?.share[dim];
        if (cur !== undefined) dem.current = cur;
        const used = e?.used?.[dim];
        if (used !== undefined) dem.used = used;
        const cap = capOf(x.spec.throttle, dim);
        if (cap !== undefined) dem.cap = cap;
        // A disk whose QEMU cannot take a new share now keeps the one it has.
        if (!fresh.has(key) && (!live(x.d) || this.pending.has(key) || e?.stuck)) dem.pinned = true;
        return dem;
      });
      for (const [key, v] of allocateShares(total, demands)) {
        const s = next.get(key);
        if (s) s[dim] = v;
      }
    }
    const lower: Array<[ShareDisk, ShareLimits]> = [];
    const higher: Array<[ShareDisk, ShareLimits]> = [];
    for (const x of disks) {
      const key = keyOf(x.d.domid, x.devnum);
      const want = next.get(key) ?? {};
      const e = this.entries.get(key) ?? { share: {} };
      this.entries.set(key, e);
      if (fresh.has(key)) {
        e.share = want;
        continue;
      }
      if (!live(x.d) || this.pending.has(key) || e.stuck || same(e.share, want)) continue;
      (isLower(e.share, want) ? lower : higher).push([x, want]);
    }
    for (const [x, want] of [...lower, ...higher]) {
      const m = live(x.d);
      if (!m) continue;
      try {
        await setShareThrottle(m, x.devnum, want);
        const e = this.entries.get(keyOf(x.d.domid, x.devnum));
        if (e) e.share = want;
      } catch (err) {
        // A dying domain, or one started before disk limits (no share group): it keeps what it has.
        const e = this.entries.get(keyOf(x.d.domid, x.devnum));
        if (err instanceof XenodeError && err.kind === 'state' && e) e.stuck = true;
        if (x.d.machine?.alive) this.log.warn(`disk share of ${x.spec.vdev}: ${errorMessage(err)}`, x.d.domid);
      }
    }
  }
}

/** Nothing worth telling QEMU: equal, or a rise of at most 2% (a fall always goes, to keep the sum). */
function same(a: ShareLimits, b: ShareLimits): boolean {
  return DIMS.every((k) => {
    const x = a[k];
    const y = b[k];
    if (x === undefined || y === undefined) return x === y;
    return y >= x && y - x <= 0.02 * y;
  });
}

/** `b` limits something more than `a` does (no limit counts as infinite). */
function isLower(a: ShareLimits, b: ShareLimits): boolean {
  return DIMS.some((k) => (b[k] ?? Number.POSITIVE_INFINITY) < (a[k] ?? Number.POSITIVE_INFINITY));
}
