// The times `flows --since/--until` take: relative to now (-30s, 10m, -2h, 1d,
// 1w: that long ago), `now`, an ISO 8601 time (UTC unless it names a zone), or
// milliseconds since the epoch. The API parses them, so every client refuses
// the same input the same way.

import { XenodeError } from '../../errors.ts';

const HINT = 'give a time relative to now (-10m, -2h, -1d), an ISO time (2026-12-07T12:00Z) or ms since the epoch';
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const RELATIVE = /^-?(\d{1,9})([smhdw])$/;
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})?)?$/;

export function parseFlowTime(s: string, now: number, what: string): number {
  const shown = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  if (s === 'now') return now;
  const rel = RELATIVE.exec(s);
  if (rel) return now - Number(rel[1]) * (UNIT_MS[rel[2] as string] as number);
  if (/^\d{1,15}$/.test(s)) return Number(s);
  if (ISO.test(s)) {
    // Without a zone, UTC (Date.parse would take a date-time as local time).
    const withZone = /[T ]\d{2}:\d{2}/.test(s) && !/(Z|[+-]\d{2}:\d{2})$/.test(s) ? `${s.replace(' ', 'T')}Z` : s;
    const t = Date.parse(withZone);
    if (Number.isFinite(t)) return t;
  }
  throw new XenodeError('usage', `${what} '${shown}' is not a time`, { hint: HINT });
}
