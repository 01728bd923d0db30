// vif rate= between its xl spelling and the switch's limit: parse once with
// the config's grammar (src/config/vif.ts), and print a limit back in xl's
// syntax for network-list and network-status.

import { parseVifRate } from '../../config/vif.ts';
import type { RateSpec } from '../../net/control-protocol.ts';

/** The interval of a sponsor's aggregate limit (quota-set net-rate=): xl's default for rate=. */
export const SPONSOR_INTERVAL_US = 50_000;
/** Past this a limit limits nothing; the switch refuses more (precision). */
const MAX_BPS = 2 ** 50;

/** `rate=` as the switch enforces it; throws the config's error for a bad one. */
export function vifRateSpec(rate: string): RateSpec {
  const r = parseVifRate(rate);
  // 1b/s is 0 whole bytes a second: still a limit, and one that lets a frame through eventually.
  return { bytesPerSec: Math.min(MAX_BPS, Math.max(1, r.bytesPerSec)), intervalUs: r.intervalUs };
}

export function sponsorRateSpec(netBps: number | undefined): RateSpec | undefined {
  return netBps ? { bytesPerSec: Math.min(MAX_BPS, Math.max(1, netBps)), intervalUs: SPONSOR_INTERVAL_US } : undefined;
}

function scaled(n: number, unit: 'B' | 'b'): string {
  for (const [m, p] of [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'K'],
  ] as const) {
    if (n >= m && n % m === 0) return `${n / m}${p}${unit}/s`;
  }
  return `${n}${unit}/s`;
}

/** A limit in xl's rate= syntax, e.g. `8Mb/s@50ms` (parses back to the same limit). */
export function formatRate(r: RateSpec): string {
  // Bits, as network rates are usually written, unless bytes read better (1000 B/s, not 8Kb/s is a tie).
  const bits = r.bytesPerSec * 8;
  const rate = bits % 1000 === 0 || r.bytesPerSec % 1000 !== 0 ? scaled(bits, 'b') : scaled(r.bytesPerSec, 'B');
  const us = r.intervalUs;
  const at = us % 1_000_000 === 0 ? `${us / 1_000_000}s` : us % 1000 === 0 ? `${us / 1000}ms` : `${us}us`;
  return `${rate}@${at}`;
}
