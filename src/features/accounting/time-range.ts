// The time ranges `account` and `bill` take: ISO 8601 times (UTC unless a zone
// is given) or times relative to now (-30m, -1h, -2d, -1w), and `now`. One
// parser for the CLI and the API, so both refuse the same input the same way.

import { XenodeError } from '../../errors.ts';

const HINT = 'give an ISO time (2025-06-01T12:00Z) or one relative to now (-30m, -1h, -2d, -1w)';
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const RELATIVE = /^-(\d{1,9}(?:\.\d{1,6})?)([smhdw])$/;
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2})?)?$/;
/** Nothing Xenode accounted is older than this, nor newer than this far ahead. */
const EARLIEST = Date.UTC(2000, 0, 1);
const AHEAD_MS = 366 * 86_400_000;

function bad(s: string, why = 'is not a time'): XenodeError {
  const shown = s.length > 40 ? `${s.slice(0, 40)}…` : s;
  return new XenodeError('usage', `'${shown}' ${why}`, { hint: HINT });
}

export function parseTime(s: string, now: number): number {
  if (s === 'now') return now;
  const rel = RELATIVE.exec(s);
  if (rel) {
    const t = now - Math.round(Number(rel[1]) * (UNIT_MS[rel[2] as string] as number));
    if (t < EARLIEST) throw bad(s, 'is too far back');
    return t;
  }
  const m = ISO.exec(s);
  if (!m) throw bad(s);
  const [y, mo, d, h = '0', mi = '0', sec = '0', ms = '0', zone = 'Z'] = m.slice(1);
  const parts = [y, mo, d, h, mi, sec].map(Number) as [number, number, number, number, number, number];
  const local = Date.UTC(parts[0], parts[1] - 1, parts[2], parts[3], parts[4], parts[5], Number(ms.padEnd(3, '0')));
  // Date.UTC rolls over (Feb 30 -> Mar 2): a field out of range is refused instead.
  const back = new Date(local);
  if (
    back.getUTCFullYear() !== parts[0] ||
    back.getUTCMonth() !== parts[1] - 1 ||
    back.getUTCDate() !== parts[2] ||
    back.getUTCHours() !== parts[3] ||
    back.getUTCMinutes() !== parts[4]
  )
    throw bad(s);
  let offsetMin = 0;
  if (zone !== 'Z') {
    const zh = Number(zone.slice(1, 3));
    const zm = Number(zone.slice(4, 6));
    if (zh > 23 || zm > 59) throw bad(s, 'has no such time zone');
    offsetMin = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm);
  }
  const t = local - offsetMin * 60_000;
  if (t < EARLIEST || t > now + AHEAD_MS) throw bad(s, 'is out of range');
  return t;
}

export interface TimeRange {
  /** undefined: from the first usage recorded */
  since: number | undefined;
  until: number;
}

export function parseRange(since: string | undefined, until: string | undefined, now: number): TimeRange {
  const s = since === undefined ? undefined : parseTime(since, now);
  const u = until === undefined ? now : parseTime(until, now);
  if (s !== undefined && u < s)
    throw new XenodeError('usage', `--until ${until} is before --since ${since}`, { hint: 'swap them' });
  return { since: s, until: u };
}
