// How a sponsor's aggregate disk limit is split among its disks (docs/disks.md,
// "The sponsor aggregate"): max-min fair by observed demand. A disk that used
// less than HUNGRY of its share last interval asks for a little more than it
// used (at least a floor, so it can start again at once); a disk that used its
// share, or one never seen, asks for as much as its own limit lets it use. The
// aggregate is poured into the smallest asks first, the rest split evenly, and
// what nobody asked for is spread too, so the shares always sum to the
// aggregate and never above it (integers rounded down).

export interface ShareDemand {
  key: string;
  /** Units/s the disk moved over the last interval; undefined: not known yet. */
  used?: number;
  /** Its share now; undefined: a new disk. */
  current?: number;
  /** The most its own limit lets it use; undefined: no own limit. */
  cap?: number;
  /** Its QEMU cannot be reached now (starting): it keeps `current`. */
  pinned?: boolean;
}

/** A disk that used this much of its share wants more. */
export const HUNGRY = 0.7;
/** An idle disk asks for this much more than it used. */
const HEADROOM = 1.5;

/**
 * Shares by key. Each is at least 1 (QEMU reads 0 as "no limit"), so with fewer
 * units than disks the sum is the number of disks; otherwise it never exceeds
 * `total`, and a share never exceeds a disk's cap.
 */
export function allocateShares(total: number, disks: readonly ShareDemand[]): Map<string, number> {
  const out = new Map<string, number>();
  let remaining = total;
  const free: ShareDemand[] = [];
  for (const d of disks) {
    if (d.pinned && d.current !== undefined) {
      out.set(d.key, d.current);
      remaining -= d.current;
    } else free.push(d);
  }
  if (free.length === 0) return out;
  const floorShare = Math.max(1, Math.floor(total / (4 * disks.length)));
  const capOf = (d: ShareDemand) => Math.max(1, d.cap ?? Number.POSITIVE_INFINITY);
  const want = (d: ShareDemand): number => {
    if (d.used === undefined || d.current === undefined || d.used >= HUNGRY * d.current) return capOf(d);
    return Math.min(capOf(d), Math.max(floorShare, Math.ceil(d.used * HEADROOM)));
  };
  // Water-filling: the smallest asks are met first; each of the rest gets an even part of what is left.
  const asks = free.map((d) => ({ d, want: want(d) })).sort((a, b) => a.want - b.want);
  const given = new Map<string, number>();
  let k = asks.length;
  for (const { d, want: w } of asks) {
    const g = Math.max(1, Math.min(w, Math.floor(Math.max(0, remaining) / k)));
    given.set(d.key, g);
    remaining -= g;
    k--;
  }
  // What nobody asked for goes to whoever may still use it, evenly.
  for (;;) {
    const open = free.filter((d) => (given.get(d.key) ?? 0) < capOf(d));
    if (open.length === 0 || remaining < open.length) break;
    const each = Math.floor(remaining / open.length);
    for (const d of open) {
      const g = given.get(d.key) ?? 0;
      const add = Math.min(each, capOf(d) - g);
      given.set(d.key, g + add);
      remaining -= add;
    }
  }
  for (const d of free) out.set(d.key, given.get(d.key) ?? 1);
  return out;
}
