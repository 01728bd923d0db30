// A vif's rate limit as Xen's netback enforces `rate=` (drivers/net/xen-netback,
// tx_credit_exceeded / tx_add_credit): a credit of bytesPerSec x interval is
// added once per interval; a frame goes when it fits in the credit left, else
// the sender waits for the next interval. Credit adds up only while a frame
// waits (so a frame bigger than one interval's credit goes once enough has
// built up), never over idle time, and never beyond MAX_BURST (or one
// interval's credit if that is more). No I/O and no timers: the caller gives
// the time and arms its own timer for waitUntil.

/** A limit as the switch takes it: `rate=` parsed (src/config/vif.ts parseVifRate). */
export interface RateSpec {
  bytesPerSec: number;
  /** Replenishment interval in µs (xl's default: 50 ms). */
  intervalUs: number;
}

/** netback's cap on saved-up credit: enough for a 128 KiB frame, so no frame can seize the interface. */
export const MAX_BURST = 131072;
/** Rates above this are no limit anyone means (and would lose precision). */
const MAX_BYTES_PER_SEC = 2 ** 50;
const MAX_INTERVAL_US = 0xffffffff;

/** Why `r` is not a usable limit, or undefined when it is. */
export function rateProblem(r: unknown): string | undefined {
  if (typeof r !== 'object' || r === null) return 'rate must be {bytesPerSec, intervalUs}';
  const { bytesPerSec, intervalUs } = r as Record<string, unknown>;
  if (typeof bytesPerSec !== 'number' || !Number.isSafeInteger(bytesPerSec) || bytesPerSec < 1)
    return 'rate bytesPerSec must be a whole number >= 1';
  if (bytesPerSec > MAX_BYTES_PER_SEC) return `rate bytesPerSec must be at most ${MAX_BYTES_PER_SEC}`;
  if (typeof intervalUs !== 'number' || !Number.isSafeInteger(intervalUs) || intervalUs < 1)
    return 'rate intervalUs must be a whole number >= 1';
  if (intervalUs > MAX_INTERVAL_US) return `rate intervalUs must be at most ${MAX_INTERVAL_US}`;
  return undefined;
}

export function sameRate(a: RateSpec | undefined, b: RateSpec | undefined): boolean {
  return a?.bytesPerSec === b?.bytesPerSec && a?.intervalUs === b?.intervalUs;
}

export class CreditBucket {
  private spec!: RateSpec;
  /** Bytes of credit per interval (fractional: 1 B/s @ 50 ms is 0.05). */
  creditPerInterval = 0;
  private intervalMs = 0;
  private remaining = 0;
  private windowStart = 0;
  /** Set while a frame waits: the time (ms) its credit comes (netback's credit_timeout). */
  waitUntil: number | undefined;

  constructor(spec: RateSpec, now: number) {
    this.reset(spec, now);
  }

  get rate(): RateSpec {
    return this.spec;
  }

  /** Start again with `spec` and a full interval's credit (a limit changed at runtime). */
  reset(spec: RateSpec, now: number): void {
    const why = rateProblem(spec);
    if (why) throw new RangeError(why);
    this.spec = { bytesPerSec: spec.bytesPerSec, intervalUs: spec.intervalUs };
    this.creditPerInterval = (spec.bytesPerSec * spec.intervalUs) / 1e6;
    this.intervalMs = spec.intervalUs / 1000;
    this.remaining = this.creditPerInterval;
    this.windowStart = now;
    this.waitUntil = undefined;
  }

  /** tx_add_credit, `n` intervals' worth. */
  private add(n: number): void {
    const credit = this.creditPerInterval * n;
    this.remaining = Math.min(this.remaining + credit, Math.max(MAX_BURST, credit));
  }

  /** May `size` bytes go at `now` (ms)? If not, waitUntil says when to ask again. */
  check(size: number, now: number): boolean {
    const need = Math.min(size, MAX_BURST);
    if (this.waitUntil !== undefined) {
      if (now < this.waitUntil) return false;
      // The credit timer is due. A timer in a user process fires late (an interval may be
      // shorter than a timer tick): count every whole interval that passed while waiting.
      const late = Math.floor((now - this.waitUntil) / this.intervalMs);
      this.add(1 + late);
      this.windowStart = this.waitUntil + late * this.intervalMs;
      this.waitUntil = undefined;
    }
    if (now >= this.windowStart + this.intervalMs) {
      // First frame after a quiet spell: one interval's credit, whatever the time idle.
      this.windowStart = now;
      this.add(1);
    }
    if (need > this.remaining) {
      const next = this.windowStart + this.intervalMs;
      this.windowStart = next;
      this.waitUntil = next;
      return false;
    }
    return true;
  }

  /** Spend the credit of a frame that check() let go. */
  take(size: number): void {
    this.remaining -= Math.min(size, MAX_BURST);
  }
}
