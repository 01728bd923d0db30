// Disk limits: Xenode's extension of the xl disk spec (docs/disks.md, "Limits").
// The keys are QEMU's own throttle names (block_set_io_throttle, -drive
// bps=/iops_rd=/bps_max=...), chosen because xl's disk keys are a closed list
// (xl-disk-configuration(5), refused when unknown) with none of them, and if
// libxl ever passes limits to its QEMU backend these are the names it would
// inherit, with the same meaning. The rules are QEMU's (util/throttle.c,
// throttle_is_valid), checked here so a bad limit is refused at its config line
// and never reaches QEMU.

import { configError } from './location.ts';
import type { DiskThrottle, DiskThrottleKey } from './types.ts';

/** Every key, in the order they are printed. */
export const THROTTLE_KEYS = [
  'bps',
  'bps_rd',
  'bps_wr',
  'iops',
  'iops_rd',
  'iops_wr',
  'bps_max',
  'bps_rd_max',
  'bps_wr_max',
  'iops_max',
  'iops_rd_max',
  'iops_wr_max',
  'bps_max_length',
  'bps_rd_max_length',
  'bps_wr_max_length',
  'iops_max_length',
  'iops_rd_max_length',
  'iops_wr_max_length',
  'iops_size',
] as const satisfies readonly DiskThrottleKey[];

// Compile-time check that the list above names every key of the type.
type Missing = Exclude<DiskThrottleKey, (typeof THROTTLE_KEYS)[number]>;
const everyKey: Missing extends never ? true : never = true;
void everyKey;

/** QEMU's THROTTLE_VALUE_MAX: no rate or burst may exceed it. */
export const THROTTLE_VALUE_MAX = 1e15;

const KEY_SET: ReadonlySet<string> = new Set(THROTTLE_KEYS);
const HINT = 'e.g. bps=10M (bytes/s, K/M/G/T = 1024^n), iops=500, bps_max=20M, bps_max_length=5 (seconds)';

export function isThrottleKey(k: string): k is DiskThrottleKey {
  return KEY_SET.has(k);
}

type Kind = 'bytes' | 'ops' | 'seconds';

function kindOf(k: DiskThrottleKey): Kind {
  if (k.endsWith('_length')) return 'seconds';
  return k.startsWith('bps') || k === 'iops_size' ? 'bytes' : 'ops';
}

/** The value of one key: bytes with an optional K/M/G/T (binary, as quota-set's), ops and seconds plain. */
export function parseThrottleValue(key: DiskThrottleKey, value: string): number {
  const kind = kindOf(key);
  const re =
    kind === 'bytes'
      ? /^([0-9]{1,20})([kKmMgGtT]?)(\/s)?$/
      : kind === 'ops'
        ? /^([0-9]{1,20})(\/s)?$/
        : /^([0-9]{1,20})(s)?$/;
  const m = re.exec(value);
  if (!m) throw configError(`invalid ${key} '${value.slice(0, 24)}'`, undefined, HINT);
  const unit = kind === 'bytes' ? (m[2] ?? '').toLowerCase() : '';
  const n = Number(m[1]) * 1024 ** ' kmgt'.indexOf(unit || ' ');
  if (n > THROTTLE_VALUE_MAX) {
    throw configError(`${key} ${value} is over QEMU's limit of ${THROTTLE_VALUE_MAX}`, undefined, HINT);
  }
  return n;
}

/** Bytes as the parser reads them back: 4194304 -> 4M, 6291457 stays. */
function bytesWord(n: number): string {
  for (const [i, u] of [...'TGMK'].entries()) {
    const f = 1024 ** (4 - i);
    if (n >= f && n % f === 0) return `${n / f}${u}`;
  }
  return String(n);
}

function word(k: DiskThrottleKey, n: number): string {
  return kindOf(k) === 'bytes' ? bytesWord(n) : String(n);
}

/** `bps=4M,iops=100`, or `-` for none; parseThrottleWords reads it back exactly. */
export function formatThrottle(t: DiskThrottle | undefined): string {
  const parts = THROTTLE_KEYS.flatMap((k) => (t?.[k] === undefined ? [] : [`${k}=${word(k, t[k])}`]));
  return parts.length ? parts.join(',') : '-';
}

const FAMILIES = ['bps', 'iops'] as const;
const RW = ['rd', 'wr'] as const;

/** The first rule `t` breaks, QEMU's (throttle_is_valid) in Xenode's key names; undefined if none. */
export function throttleProblem(t: DiskThrottle): string | undefined {
  for (const [k, v] of Object.entries(t)) {
    if (!isThrottleKey(k)) return `unknown limit '${k.slice(0, 24)}'`;
    if (!Number.isSafeInteger(v) || v < 1 || v > THROTTLE_VALUE_MAX)
      return `${k} must be a whole number from 1 to ${THROTTLE_VALUE_MAX}`;
  }
  const fmt = (k: DiskThrottleKey) => word(k, t[k] as number);
  for (const f of FAMILIES) {
    for (const sfx of ['', '_max'] as const) {
      const total = `${f}${sfx}` as DiskThrottleKey;
      for (const rw of RW) {
        const part = `${f}_${rw}${sfx}` as DiskThrottleKey;
        if (t[total] !== undefined && t[part] !== undefined)
          return `${total} and ${part} cannot be used together (a total limit or read/write limits, as in QEMU)`;
      }
    }
    for (const scope of ['', '_rd', '_wr'] as const) {
      const avg = `${f}${scope}` as DiskThrottleKey;
      const max = `${avg}_max` as DiskThrottleKey;
      const len = `${max}_length` as DiskThrottleKey;
      const a = t[avg];
      const b = t[max];
      const l = t[len];
      if (b !== undefined && a === undefined) return `${max} needs ${avg}: a burst rate is above a rate`;
      if (b !== undefined && a !== undefined && b < a) return `${max} (${fmt(max)}) is lower than ${avg} (${fmt(avg)})`;
      if (l !== undefined && b === undefined) return `${len} needs ${max}: it is how long that burst may last`;
      if (l !== undefined && b !== undefined && l > THROTTLE_VALUE_MAX / b)
        return `${len} ${l} is too long for ${max} ${fmt(max)} (QEMU: burst length times rate at most ${THROTTLE_VALUE_MAX})`;
    }
  }
  if (t.iops_size !== undefined && t.iops === undefined && t.iops_rd === undefined && t.iops_wr === undefined)
    return 'iops_size needs iops, iops_rd or iops_wr: it sets the size counted as one operation';
  return undefined;
}

/** Throws the first broken rule as a config error (the caller adds file:line). */
export function checkThrottle(t: DiskThrottle): void {
  const p = throttleProblem(t);
  if (p) throw configError(p, undefined, 'the rules are QEMU\'s: docs/disks.md, "Limits"');
}

/**
 * One `key=value` item of a disk spec into `into`; false when `key` is not a
 * limit. A value of 0 means no limit, as in QEMU, and leaves the key out, except
 * a burst length, which QEMU refuses to be 0.
 */
export function takeThrottleItem(into: DiskThrottle, seen: Set<string>, key: string, value: string): boolean {
  if (!isThrottleKey(key)) return false;
  if (seen.has(key)) throw configError(`${key} given twice`, undefined, HINT);
  seen.add(key);
  const n = parseThrottleValue(key, value);
  if (n === 0 && key.endsWith('_length')) throw configError(`${key} must be at least 1 (seconds)`, undefined, HINT);
  if (n !== 0) into[key] = n;
  return true;
}

/**
 * `block-set-throttle`'s words: `key=value ...` in the disk spec's syntax, or
 * `none`. The result is the disk's whole set of limits.
 */
export function parseThrottleWords(words: readonly string[]): DiskThrottle {
  if (words.length === 0) throw configError('give limits (key=value ...) or none', undefined, HINT);
  if (words.includes('none')) {
    if (words.length > 1) throw configError("'none' clears every limit and stands alone", undefined, HINT);
    return {};
  }
  const out: DiskThrottle = {};
  const seen = new Set<string>();
  for (const w of words) {
    const eq = w.indexOf('=');
    if (eq < 1) throw configError(`'${w.slice(0, 40)}' is not key=value`, undefined, HINT);
    const k = w.slice(0, eq);
    if (!takeThrottleItem(out, seen, k, w.slice(eq + 1)))
      throw configError(`unknown limit '${k.slice(0, 24)}'`, undefined, `limits: ${THROTTLE_KEYS.join(', ')}`);
  }
  checkThrottle(out);
  return out;
}
