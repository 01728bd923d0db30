// What the flow log holds: one record per flow per vif per aggregation window
// (the shape of AWS VPC flow logs), and the binary encoding of one record in a
// segment's block. Strings (sponsor, domain, rule) are numbered per segment.

import { isIPv4, isIPv6 } from 'node:net';
import type { FlowAction, FlowRecord } from '../../toolstack/lifecycle-hooks.ts';
import { ByteReader, type ByteWriter, DecodeError } from './varint.ts';

export type { FlowAction, FlowRecord } from '../../toolstack/lifecycle-hooks.ts';

export const FLOW_ACTIONS: readonly FlowAction[] = ['accept', 'reject', 'drop', 'throttle', 'quarantine'];

function zigzag(n: number): number {
  return n >= 0 ? n * 2 : -n * 2 - 1;
}

function unzigzag(n: number): number {
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
}

/** An address as 4 or 16 bytes; anything else (a non-IP flow) as none. */
export function ipBytes(s: string): Uint8Array {
  if (isIPv4(s)) return Uint8Array.from(s.split('.').map(Number));
  if (isIPv6(s)) {
    const out = new Uint8Array(16);
    const [head = '', tail = ''] = s.includes('::') ? s.split('::') : [s, ''];
    const hs = head ? head.split(':') : [];
    const ts = tail ? tail.split(':') : [];
    const groups = [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
    groups.forEach((g, i) => {
      const v = Number.parseInt(g, 16);
      out[i * 2] = v >> 8;
      out[i * 2 + 1] = v & 0xff;
    });
    return out;
  }
  return new Uint8Array(0);
}

export function ipString(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16) {
    const g: string[] = [];
    for (let i = 0; i < 16; i += 2) g.push((((b[i] as number) << 8) | (b[i + 1] as number)).toString(16));
    return g.join(':');
  }
  return '';
}

const COUNTS = [
  'start',
  'end',
  'domid',
  'devid',
  'sport',
  'dport',
  'pktsOut',
  'bytesOut',
  'pktsIn',
  'bytesIn',
] as const;

/** Why `r` cannot be logged, checked before any of a block is encoded (so no half block is written). */
export function recordProblem(r: FlowRecord): string | undefined {
  for (const k of COUNTS) {
    const v = r[k];
    if (!Number.isSafeInteger(v) || v < 0) return `${k} must be a whole number >= 0`;
  }
  if (r.end < r.start) return 'end before start';
  for (const k of ['proto', 'flagsOut', 'flagsIn'] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 0 || r[k] > 255) return `${k} must be a byte`;
  }
  if (r.sport > 65535 || r.dport > 65535) return 'ports go up to 65535';
  if (!FLOW_ACTIONS.includes(r.action)) return `unknown action ${String(r.action)}`;
  for (const k of ['sponsor', 'domain', 'rule', 'src', 'dst'] as const) {
    if (typeof r[k] !== 'string' || r[k].length > 256) return `${k} must be a string of at most 256 characters`;
  }
  return undefined;
}

/**
 * A block's body: its first record's index in the segment, the record count,
 * the time span, the strings its records use (so each block reads on its own,
 * and a query skips a block whose strings lack the sponsor or domain it wants),
 * then the records. `base` is the segment's creation time.
 */
export function encodeBlock(w: ByteWriter, first: number, records: readonly FlowRecord[], base: number): void {
  const ids = new Map<string, number>();
  const id = (s: string): number => {
    let v = ids.get(s);
    if (v === undefined) {
      v = ids.size;
      ids.set(s, v);
    }
    return v;
  };
  let minStart = Number.POSITIVE_INFINITY;
  let maxEnd = 0;
  for (const r of records) {
    id(r.sponsor);
    id(r.domain);
    id(r.rule);
    minStart = Math.min(minStart, Math.round(r.start));
    maxEnd = Math.max(maxEnd, Math.round(r.end));
  }
  if (records.length === 0) minStart = maxEnd = base;
  w.uv(first);
  w.uv(records.length);
  w.uv(zigzag(minStart - base));
  w.uv(maxEnd - minStart);
  w.uv(ids.size);
  for (const s of ids.keys()) w.str(s);
  for (const r of records) {
    const src = ipBytes(r.src);
    const dst = ipBytes(r.dst);
    const fam = src.length === dst.length ? src.length : 0;
    w.uv(zigzag(Math.round(r.start) - minStart));
    w.uv(Math.round(r.end) - Math.round(r.start));
    w.uv(r.domid);
    w.uv(r.devid);
    w.uv(id(r.sponsor));
    w.uv(id(r.domain));
    w.uv(id(r.rule));
    w.u8(r.proto);
    // Address family by length: 0 (none), 4 or 16 bytes, both sides the same family.
    w.u8(fam);
    if (fam) {
      w.bytes(src);
      w.bytes(dst);
    }
    w.uv(r.sport);
    w.uv(r.dport);
    w.uv(r.pktsOut);
    w.uv(r.bytesOut);
    w.uv(r.pktsIn);
    w.uv(r.bytesIn);
    w.u8(r.flagsOut);
    w.u8(r.flagsIn);
    w.u8(FLOW_ACTIONS.indexOf(r.action));
  }
}

export interface BlockFilter {
  sponsor?: string;
  /** A domain name, or a domid in decimal. */
  domain?: string;
  port?: number;
  since?: number;
  until?: number;
}

export interface BlockInfo {
  first: number;
  count: number;
  minStart: number;
  maxEnd: number;
  /** The filter excluded the whole block by its header; its records were not read. */
  skipped: boolean;
}

/**
 * Read a block's records, calling `hit` for each that passes `f` (all without
 * one). Non-matching records never become objects: a query over millions
 * compares numbers. Throws DecodeError on a malformed block.
 */
export function decodeBlock(
  body: Uint8Array,
  base: number,
  f: BlockFilter | undefined,
  hit: (r: FlowRecord) => void,
): BlockInfo {
  const rd = new ByteReader(body);
  const first = rd.uv();
  const count = rd.uv();
  const minStart = base + unzigzag(rd.uv());
  const maxEnd = minStart + rd.uv();
  const n = rd.uv();
  if (n > 3 * count + 3) throw new DecodeError('too many strings');
  const strings: string[] = [];
  for (let i = 0; i < n; i++) strings.push(rd.str());
  const info = { first, count, minStart, maxEnd, skipped: false };
  let wantSponsor = -1;
  let wantDomain = -1;
  let wantDomid = -1;
  if (f) {
    if ((f.since !== undefined && maxEnd < f.since) || (f.until !== undefined && minStart > f.until)) {
      info.skipped = true;
      return info;
    }
    if (f.sponsor !== undefined) {
      wantSponsor = strings.indexOf(f.sponsor);
      if (wantSponsor < 0) info.skipped = true;
    }
    if (f.domain !== undefined) {
      wantDomain = strings.indexOf(f.domain);
      wantDomid = /^\d{1,9}$/.test(f.domain) ? Number(f.domain) : -1;
      if (wantDomain < 0 && wantDomid < 0) info.skipped = true;
    }
    if (info.skipped) return info;
  }
  const str = (id: number): string => {
    const s = strings[id];
    if (s === undefined) throw new DecodeError(`string ${id} not in the block`);
    return s;
  };
  for (let i = 0; i < count; i++) {
    const start = minStart + unzigzag(rd.uv());
    const end = start + rd.uv();
    const domid = rd.uv();
    const devid = rd.uv();
    const sponsor = rd.uv();
    const domain = rd.uv();
    const rule = rd.uv();
    const proto = rd.u8();
    const fam = rd.u8();
    if (fam !== 0 && fam !== 4 && fam !== 16) throw new DecodeError(`bad address length ${fam}`);
    const srcAt = rd.pos;
    rd.pos += 2 * fam;
    const sport = rd.uv();
    const dport = rd.uv();
    const pktsOut = rd.uv();
    const bytesOut = rd.uv();
    const pktsIn = rd.uv();
    const bytesIn = rd.uv();
    const flagsOut = rd.u8();
    const flagsIn = rd.u8();
    const action = FLOW_ACTIONS[rd.u8()];
    if (action === undefined) throw new DecodeError('unknown action');
    if (f) {
      if (wantSponsor >= 0 && sponsor !== wantSponsor) continue;
      if (f.domain !== undefined && domain !== wantDomain && domid !== wantDomid) continue;
      if (f.port !== undefined && sport !== f.port && dport !== f.port) continue;
      if (f.since !== undefined && end < f.since) continue;
      if (f.until !== undefined && start > f.until) continue;
    }
    hit({
      start,
      end,
      domid,
      devid,
      domain: str(domain),
      sponsor: str(sponsor),
      proto,
      src: ipString(body.subarray(srcAt, srcAt + fam)),
      dst: ipString(body.subarray(srcAt + fam, srcAt + 2 * fam)),
      sport,
      dport,
      pktsOut,
      bytesOut,
      pktsIn,
      bytesIn,
      flagsOut,
      flagsIn,
      action,
      rule: str(rule),
    });
  }
  if (!rd.done) throw new DecodeError('bytes after the last record');
  return info;
}
