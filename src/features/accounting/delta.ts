// What usage a new reading adds, given the last one persisted. Counters are
// cumulative (QEMU's block stats, the switch's port counters, CPU time); each
// series carries an epoch naming the counter's life (a QEMU process, a device,
// a cgroup). A new epoch started at zero, so all of it is new usage; a counter
// that went backwards in the same epoch was reset, so only its new value is.
// Neither can be negative, and nothing is counted twice: the worst a reset does
// is lose what the counter gained between the last reading and the reset.

import { isUsageKey, type UsageKey } from './usage.ts';

/** The last cumulative values of one counter series, as persisted. */
export interface SeriesState {
  epoch: string;
  values: Record<string, number>;
}

/** One reading of a counter series: `key` names the series within its domain. */
export interface SeriesReading {
  key: string;
  epoch: string;
  values: Record<string, number>;
}

function counterValue(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

export function counterDelta(
  prev: SeriesState | undefined,
  r: Pick<SeriesReading, 'epoch' | 'values'>,
): Partial<Record<UsageKey, number>> {
  const out: Partial<Record<UsageKey, number>> = {};
  const same = prev !== undefined && prev.epoch === r.epoch;
  for (const [k, cur] of Object.entries(r.values)) {
    if (!isUsageKey(k) || !counterValue(cur)) continue;
    const before = same ? prev.values[k] : undefined;
    // No earlier value in this life: the counter counted from zero, unseen.
    out[k] = counterValue(before) && cur >= before ? cur - before : cur;
  }
  return out;
}

/** Memory as last sampled for one QEMU process (instance). */
export interface MemoryState {
  instance: string;
  /** ms since epoch */
  t: number;
  targetMiB: number;
  rssMiB: number;
}

export interface MemoryReading {
  instance: string;
  /** When the instance (QEMU process) started, ms since epoch. */
  start: number;
  t: number;
  targetMiB: number;
  /** undefined: not readable now (the last value holds). */
  rssMiB: number | undefined;
}

/**
 * Memory held between the last sample and this one, in MiB-seconds
 * (trapezoid). A new instance is counted from its own start (its resident
 * memory from zero), so a QEMU restart neither loses nor repeats time.
 */
export function memoryDelta(
  prev: MemoryState | undefined,
  r: MemoryReading,
): { usage: Pick<Record<UsageKey, number>, 'memTargetMiBSeconds' | 'memRssMiBSeconds'>; next: MemoryState } {
  const same = prev !== undefined && prev.instance === r.instance;
  const from = same ? prev.t : Math.min(r.start, r.t);
  const rss = r.rssMiB ?? (same ? prev.rssMiB : 0);
  if (r.t <= from) {
    // A clock that went backwards: nothing, and the later time stays the reference.
    const next = same ? prev : { instance: r.instance, t: r.t, targetMiB: r.targetMiB, rssMiB: rss };
    return { usage: { memTargetMiBSeconds: 0, memRssMiBSeconds: 0 }, next };
  }
  const dt = (r.t - from) / 1000;
  const t0 = same ? prev.targetMiB : r.targetMiB;
  const m0 = same ? prev.rssMiB : 0;
  return {
    usage: { memTargetMiBSeconds: ((t0 + r.targetMiB) / 2) * dt, memRssMiBSeconds: ((m0 + rss) / 2) * dt },
    next: { instance: r.instance, t: r.t, targetMiB: r.targetMiB, rssMiB: rss },
  };
}
