// The flow log on disk: append-only segment files of hash-chained blocks.
//
//   flows-00000001.seg  header: magic, seq, created, the previous segment's head hash
//                       blocks: 0xB1 | u32 body length | body | SHA-256(prev hash | type | length | body)
//                               body = first record index, count, time span, strings, records (records.ts)
//                       seal:   0x5E | u32 length | JSON summary | SHA-256 (last block of a closed segment)
//   flows-00000001.idx  the summary again, for queries to skip segments (never trusted by verify)
//   anchor.json         the head after the last block written: records or segments cut from the end
//   pruned.json         the head of the last segment retention removed
//
// A block's hash covers the hash before it, so the chain runs from the first
// segment to the newest block: editing, removing or reordering a record (or a
// block, or a segment) breaks it from there on, and `verify` says where.
// Recovery after a crash cuts only a torn last block; a complete block whose
// hash is wrong is kept (it is evidence) and reported by verify.

import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { decodeBlock, encodeBlock, type FlowRecord, recordProblem } from './records.ts';
import { ByteWriter } from './varint.ts';

const MAGIC = Buffer.from('XNFLOW1\n', 'latin1');
const HEADER_LEN = 56;
const BLOCK_DATA = 0xb1;
const BLOCK_SEAL = 0x5e;
const HASH_LEN = 32;
/** Entries per block at most: a block is the unit verify can point at. */
const MAX_BLOCK_RECORDS = 1024;
const ZERO_HASH = Buffer.alloc(HASH_LEN);
/** Queries and verify run in the daemon: they let other work in every this many blocks. */
const YIELD_BLOCKS = 32;

function yieldNow(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export interface FlowLogOptions {
  dir: string;
  /** Close a segment once it is this big (16 MiB). */
  maxSegmentBytes?: number;
  /** ... or this old (1 h), so closed segments come regularly. */
  maxSegmentAgeMs?: number;
  /** Retention: remove the oldest closed segments beyond this many bytes in all (1 GiB) ... */
  retainBytes?: number;
  /** ... or whose newest record is older than this (90 days). */
  retainMs?: number;
  now?: () => number;
  /** A segment was closed: its head hash, for the daemon log (an anchor outside the log). */
  onSeal?: (seq: number, head: string, records: number) => void;
}

/** What a closed segment holds, for skipping it in a query. */
export interface SegmentSummary {
  seq: number;
  records: number;
  /** ms; Infinity/-Infinity when empty. */
  minStart: number;
  maxEnd: number;
  sponsors: string[];
  domains: string[];
  domids: number[];
  /** Every sport and dport, one bit each (8 KiB), base64. */
  ports: string;
  head: string;
}

export interface FlowQuery {
  sponsor?: string;
  /** A domain name or domid. */
  domain?: string;
  /** Source or destination port. */
  port?: number;
  /** Flows that overlap [since, until] (ms). */
  since?: number;
  until?: number;
  /** The newest this many (1000). */
  limit?: number;
}

export interface VerifyProblem {
  segment: number;
  /** Byte offset of the block in the segment file. */
  offset?: number;
  /** Record indexes (within the segment) the problem covers. */
  records?: [number, number];
  problem: string;
}

export interface VerifyReport {
  ok: boolean;
  segments: number;
  records: number;
  bytes: number;
  head: string;
  problems: VerifyProblem[];
}

function segName(seq: number, ext: 'seg' | 'idx'): string {
  return `flows-${String(seq).padStart(8, '0')}.${ext}`;
}

function blockHash(prev: Uint8Array, type: number, body: Uint8Array): Buffer {
  const h = createHash('sha256');
  h.update(prev);
  const hdr = Buffer.alloc(5);
  hdr[0] = type;
  hdr.writeUInt32LE(body.length, 1);
  h.update(hdr);
  h.update(body);
  return h.digest();
}

function header(seq: number, created: number, prev: Uint8Array): Buffer {
  const b = Buffer.alloc(HEADER_LEN);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(seq, 8);
  b.writeDoubleLE(created, 16);
  Buffer.from(prev).copy(b, 24);
  return b;
}

interface Block {
  type: number;
  offset: number;
  body: Uint8Array;
  hash: Uint8Array;
  /** Offset just past the block. */
  next: number;
}

/** The blocks of a segment file's bytes; stops at a torn or unknown block (`tail` says where). */
function* blocks(buf: Uint8Array): Generator<Block, { tail: number; why?: string }> {
  let off = HEADER_LEN;
  while (off < buf.length) {
    const type = buf[off] as number;
    if (type !== BLOCK_DATA && type !== BLOCK_SEAL)
      return { tail: off, why: `unknown block type 0x${type.toString(16)}` };
    if (off + 5 > buf.length) return { tail: off, why: 'torn block header' };
    const len = Buffer.from(buf.buffer, buf.byteOffset + off + 1, 4).readUInt32LE(0);
    const next = off + 5 + len + HASH_LEN;
    if (next > buf.length) return { tail: off, why: 'torn block' };
    yield {
      type,
      offset: off,
      body: buf.subarray(off + 5, off + 5 + len),
      hash: buf.subarray(off + 5 + len, next),
      next,
    };
    off = next;
  }
  return { tail: off };
}

interface Header {
  seq: number;
  created: number;
  prev: Buffer;
}

function readHeader(buf: Buffer): Header | undefined {
  if (buf.length < HEADER_LEN || !buf.subarray(0, 8).equals(MAGIC)) return undefined;
  return { seq: buf.readUInt32LE(8), created: buf.readDoubleLE(16), prev: buf.subarray(24, 24 + HASH_LEN) };
}

/** Accumulates a segment's summary as records go in. */
class SummaryBuilder {
  records = 0;
  minStart = Number.POSITIVE_INFINITY;
  maxEnd = Number.NEGATIVE_INFINITY;
  readonly sponsors = new Set<string>();
  readonly domains = new Set<string>();
  readonly domids = new Set<number>();
  readonly ports = new Uint8Array(8192);

  add(r: FlowRecord): void {
    this.records++;
    if (r.start < this.minStart) this.minStart = r.start;
    if (r.end > this.maxEnd) this.maxEnd = r.end;
    this.sponsors.add(r.sponsor);
    this.domains.add(r.domain);
    this.domids.add(r.domid);
    for (const p of [r.sport, r.dport]) {
      const i = p & 0xffff;
      this.ports[i >> 3] = (this.ports[i >> 3] as number) | (1 << (i & 7));
    }
  }

  done(seq: number, head: string): SegmentSummary {
    return {
      seq,
      records: this.records,
      minStart: this.minStart,
      maxEnd: this.maxEnd,
      sponsors: [...this.sponsors],
      domains: [...this.domains],
      domids: [...this.domids],
      ports: Buffer.from(this.ports).toString('base64'),
      head,
    };
  }
}

function portBit(ports: Uint8Array, p: number): boolean {
  return (((ports[p >> 3] as number) >> (p & 7)) & 1) === 1;
}

/** Can this segment hold a record the query wants? */
function mayMatch(s: SegmentSummary, q: FlowQuery, portBits: Uint8Array): boolean {
  if (s.records === 0) return false;
  if (q.since !== undefined && s.maxEnd < q.since) return false;
  if (q.until !== undefined && s.minStart > q.until) return false;
  if (q.sponsor !== undefined && !s.sponsors.includes(q.sponsor)) return false;
  if (q.domain !== undefined && !s.domains.includes(q.domain) && !s.domids.map(String).includes(q.domain)) return false;
  if (q.port !== undefined && !portBit(portBits, q.port)) return false;
  return true;
}

interface OpenSegment {
  seq: number;
  fd: number;
  created: number;
  size: number;
  records: number;
  head: Buffer;
  summary: SummaryBuilder;
}

export class FlowLog {
  private readonly dir: string;
  private readonly maxSegmentBytes: number;
  private readonly maxSegmentAgeMs: number;
  private readonly retainBytes: number;
  private readonly retainMs: number;
  private readonly now: () => number;
  /** Closed segments, oldest first. */
  private closed: SegmentSummary[] = [];
  private open?: OpenSegment;
  private readonly w = new ByteWriter(1 << 16);
  /** Where recovery cut a torn tail, for the daemon log. */
  readonly recovered: string[] = [];

  constructor(private readonly o: FlowLogOptions) {
    this.dir = o.dir;
    this.maxSegmentBytes = o.maxSegmentBytes ?? 16 * 1024 * 1024;
    this.maxSegmentAgeMs = o.maxSegmentAgeMs ?? 3600_000;
    this.retainBytes = o.retainBytes ?? 1024 * 1024 * 1024;
    this.retainMs = o.retainMs ?? 90 * 86400_000;
    this.now = o.now ?? Date.now;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.load();
  }

  private segmentSeqs(): number[] {
    return readdirSync(this.dir)
      .map((f) => /^flows-(\d{8})\.seg$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private path(seq: number, ext: 'seg' | 'idx' = 'seg'): string {
    return join(this.dir, segName(seq, ext));
  }

  /** Summaries of closed segments; the newest, if it has no seal, is reopened for appending. */
  private load(): void {
    const seqs = this.segmentSeqs();
    for (const seq of seqs) {
      const last = seq === seqs[seqs.length - 1];
      const idx = this.path(seq, 'idx');
      if (!last || existsSync(idx)) {
        const s = existsSync(idx) ? this.readIdx(idx) : undefined;
        this.closed.push(s ?? this.scanSummary(seq));
        continue;
      }
      this.reopen(seq);
    }
  }

  private readIdx(p: string): SegmentSummary | undefined {
    try {
      const s = JSON.parse(readFileSync(p, 'utf8')) as SegmentSummary;
      s.minStart = s.minStart ?? Number.POSITIVE_INFINITY;
      s.maxEnd = s.maxEnd ?? Number.NEGATIVE_INFINITY;
      return s;
    } catch {
      return undefined;
    }
  }

  /** A summary from the segment's own records (an index file lost or unreadable). */
  private scanSummary(seq: number): SegmentSummary {
    const sb = new SummaryBuilder();
    let head = '';
    const buf = readFileSync(this.path(seq));
    const h = readHeader(buf);
    if (h) {
      for (const b of blocks(buf)) {
        head = Buffer.from(b.hash).toString('hex');
        if (b.type !== BLOCK_DATA) continue;
        try {
          decodeBlock(b.body, h.created, undefined, (r) => sb.add(r));
        } catch {
          /* verify reports it */
        }
      }
    }
    return sb.done(seq, head);
  }

  /** The newest segment had no seal: continue it, cutting a torn last block. */
  private reopen(seq: number): void {
    const p = this.path(seq);
    const buf = readFileSync(p);
    const h = readHeader(buf);
    if (!h || h.seq !== seq) {
      // Not a segment we can continue: keep it for verify, start the next one.
      this.closed.push(this.scanSummary(seq));
      return;
    }
    const summary = new SummaryBuilder();
    let head: Buffer = blockHash(ZERO_HASH, 0, buf.subarray(0, HEADER_LEN));
    let records = 0;
    const it = blocks(buf);
    let r = it.next();
    for (; !r.done; r = it.next()) {
      const b = r.value;
      head = Buffer.from(b.hash);
      if (b.type === BLOCK_SEAL) {
        // Sealed, but the daemon stopped before writing its index.
        const s = summary.done(seq, head.toString('hex'));
        writeFileSync(this.path(seq, 'idx'), JSON.stringify(s), { mode: 0o600 });
        this.closed.push(s);
        return;
      }
      try {
        const got = decodeBlock(b.body, h.created, undefined, (f) => summary.add(f));
        records = Math.max(records, got.first + got.count);
      } catch {
        /* verify reports it */
      }
    }
    const tail = r.value.tail;
    const fd = openSync(p, 'r+');
    if (tail < buf.length) {
      ftruncateSync(fd, tail);
      this.recovered.push(`segment ${seq}: cut ${buf.length - tail} bytes of a torn last block (${r.value.why})`);
    }
    this.open = { seq, fd, created: h.created, size: tail, records, head, summary };
  }

  private newSegment(): OpenSegment {
    const last = this.closed[this.closed.length - 1];
    const seq = (last?.seq ?? this.pruned()?.seq ?? 0) + 1;
    const prev = last ? Buffer.from(last.head, 'hex') : Buffer.from(this.pruned()?.head ?? '', 'hex');
    const created = this.now();
    const hdr = header(seq, created, prev.length === HASH_LEN ? prev : ZERO_HASH);
    const fd = openSync(this.path(seq), 'wx', 0o600);
    writeSync(fd, hdr);
    return {
      seq,
      fd,
      created,
      size: HEADER_LEN,
      records: 0,
      head: blockHash(ZERO_HASH, 0, hdr),
      summary: new SummaryBuilder(),
    };
  }

  private pruned(): { seq: number; head: string } | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'pruned.json'), 'utf8')) as { seq: number; head: string };
    } catch {
      return undefined;
    }
  }

  /** Append records: one block per MAX_BLOCK_RECORDS, written at once. */
  append(records: readonly FlowRecord[]): void {
    for (const r of records) {
      const why = recordProblem(r);
      if (why) throw new RangeError(`flow record not logged: ${why}`);
    }
    for (let i = 0; i < records.length; i += MAX_BLOCK_RECORDS) {
      this.rotateIfDue();
      const seg = this.open ?? this.newSegment();
      this.open = seg;
      const chunk = records.slice(i, i + MAX_BLOCK_RECORDS);
      const w = this.w;
      w.reset();
      encodeBlock(w, seg.records, chunk, seg.created);
      for (const r of chunk) seg.summary.add(r);
      const body = w.view();
      const hash = blockHash(seg.head, BLOCK_DATA, body);
      const hdr = Buffer.alloc(5);
      hdr[0] = BLOCK_DATA;
      hdr.writeUInt32LE(body.length, 1);
      // One write, so a crash leaves at most one torn block at the end.
      const data = Buffer.concat([hdr, body, hash]);
      writeSync(seg.fd, data, 0, data.length, seg.size);
      seg.size += 5 + body.length + HASH_LEN;
      seg.records += chunk.length;
      seg.head = hash;
    }
    if (records.length > 0) this.writeAnchor();
    this.rotateIfDue();
  }

  private writeAnchor(): void {
    const s = this.open;
    if (!s) return;
    const tmp = join(this.dir, 'anchor.json.tmp');
    writeFileSync(tmp, JSON.stringify({ seq: s.seq, records: s.records, head: s.head.toString('hex') }), {
      mode: 0o600,
    });
    renameSync(tmp, join(this.dir, 'anchor.json'));
  }

  /** Close the open segment if it is big or old enough; then apply retention. */
  rotateIfDue(): void {
    const s = this.open;
    if (!s) return;
    if (s.size >= this.maxSegmentBytes || (s.records > 0 && this.now() - s.created >= this.maxSegmentAgeMs)) {
      this.seal();
      this.prune();
    }
  }

  /** Close the open segment now: a seal block, its summary beside it. */
  seal(): void {
    const s = this.open;
    if (!s) return;
    const summary = s.summary.done(s.seq, '');
    const body = Buffer.from(JSON.stringify({ ...summary, ports: undefined, head: undefined }));
    const hash = blockHash(s.head, BLOCK_SEAL, body);
    const hdr = Buffer.alloc(5);
    hdr[0] = BLOCK_SEAL;
    hdr.writeUInt32LE(body.length, 1);
    const data = Buffer.concat([hdr, body, hash]);
    writeSync(s.fd, data, 0, data.length, s.size);
    closeSync(s.fd);
    summary.head = hash.toString('hex');
    writeFileSync(this.path(s.seq, 'idx'), JSON.stringify(summary), { mode: 0o600 });
    this.closed.push(summary);
    this.open = undefined;
    writeFileSync(
      join(this.dir, 'anchor.json'),
      JSON.stringify({ seq: s.seq, records: s.records, head: summary.head, sealed: true }),
      { mode: 0o600 },
    );
    this.o.onSeal?.(s.seq, summary.head, s.records);
  }

  /** Remove the oldest closed segments beyond the byte or age limit; their head goes to pruned.json. */
  prune(): void {
    const sizes = this.closed.map((s) => this.fileSize(s.seq));
    let total = sizes.reduce((a, b) => a + b, 0) + (this.open?.size ?? 0);
    const cutoff = this.now() - this.retainMs;
    while (this.closed.length > 0) {
      const s = this.closed[0] as SegmentSummary;
      const old = s.records > 0 && s.maxEnd < cutoff;
      if (total <= this.retainBytes && !old) break;
      writeFileSync(join(this.dir, 'pruned.json'), JSON.stringify({ seq: s.seq, head: s.head }), { mode: 0o600 });
      rmSync(this.path(s.seq), { force: true });
      rmSync(this.path(s.seq, 'idx'), { force: true });
      total -= sizes.shift() ?? 0;
      this.closed.shift();
    }
  }

  private fileSize(seq: number): number {
    try {
      return statSync(this.path(seq)).size;
    } catch {
      return 0;
    }
  }

  /** The number of the segment being written, if one is. */
  openSegment(): number | undefined {
    return this.open?.seq;
  }

  /** Bytes and records on disk now. */
  stats(): { segments: number; records: number; bytes: number } {
    const open = this.open;
    const records = this.closed.reduce((a, s) => a + s.records, 0) + (open?.records ?? 0);
    const bytes = this.closed.reduce((a, s) => a + this.fileSize(s.seq), 0) + (open ? fstatSync(open.fd).size : 0);
    return { segments: this.closed.length + (open ? 1 : 0), records, bytes };
  }

  /** The newest `limit` records matching `q`, oldest first (in the order they were logged). */
  async query(q: FlowQuery): Promise<FlowRecord[]> {
    const limit = Math.max(1, Math.min(q.limit ?? 1000, 100_000));
    const found: FlowRecord[][] = [];
    let n = 0;
    const segs: Array<{ seq: number; summary?: SegmentSummary }> = this.closed.map((s) => ({ seq: s.seq, summary: s }));
    if (this.open) segs.push({ seq: this.open.seq });
    // Newest segment and block first; stop once `limit` are found.
    for (let i = segs.length - 1; i >= 0 && n < limit; i--) {
      const s = segs[i] as { seq: number; summary?: SegmentSummary };
      if (s.summary && !mayMatch(s.summary, q, Buffer.from(s.summary.ports, 'base64'))) continue;
      n += await this.scanSegment(s.seq, q, limit - n, found);
    }
    const out: FlowRecord[] = [];
    for (let i = found.length - 1; i >= 0; i--) out.push(...(found[i] as FlowRecord[]));
    return out.slice(Math.max(0, out.length - limit));
  }

  /** Matching records of one segment, newest block first, into `found`; returns how many. */
  private async scanSegment(seq: number, q: FlowQuery, want: number, found: FlowRecord[][]): Promise<number> {
    let buf: Buffer;
    try {
      buf = readFileSync(this.path(seq));
    } catch {
      return 0;
    }
    const h = readHeader(buf);
    if (!h) return 0;
    const data = [...blocks(buf)].filter((b) => b.type === BLOCK_DATA);
    let n = 0;
    for (let i = data.length - 1; i >= 0 && n < want; i--) {
      if (i % YIELD_BLOCKS === 0) await yieldNow();
      const hits: FlowRecord[] = [];
      try {
        decodeBlock((data[i] as Block).body, h.created, q, (r) => hits.push(r));
      } catch {
        /* a damaged block: verify reports it; the query shows the rest */
      }
      if (hits.length > 0) {
        found.push(hits);
        n += hits.length;
      }
    }
    return n;
  }

  /** Walk every segment's chain: what was edited, removed or reordered, and where. */
  async verify(): Promise<VerifyReport> {
    const problems: VerifyProblem[] = [];
    const seqs = this.segmentSeqs();
    const pruned = this.pruned();
    let expectSeq = (pruned?.seq ?? 0) + 1;
    let prevHead: Buffer = pruned ? Buffer.from(pruned.head, 'hex') : ZERO_HASH;
    let records = 0;
    let bytes = 0;
    let head = '';
    let lastSeq = 0;
    let lastRecords = 0;
    let lastHeads = new Map<number, string>();
    for (const seq of seqs) {
      if (seq !== expectSeq) {
        problems.push({
          segment: seq,
          problem:
            seq > expectSeq
              ? `segments ${expectSeq}${seq - 1 > expectSeq ? `-${seq - 1}` : ''} missing`
              : 'segment out of sequence',
        });
      }
      expectSeq = seq + 1;
      const buf = readFileSync(this.path(seq));
      bytes += buf.length;
      const h = readHeader(buf);
      if (!h || h.seq !== seq) {
        problems.push({ segment: seq, offset: 0, problem: 'not a flow log segment (header damaged)' });
        prevHead = ZERO_HASH;
        continue;
      }
      if (!Buffer.from(h.prev).equals(prevHead)) {
        problems.push({
          segment: seq,
          offset: 0,
          problem: 'does not follow the segment before it (a segment removed, replaced or reordered)',
        });
      }
      let chain: Buffer = blockHash(ZERO_HASH, 0, buf.subarray(0, HEADER_LEN));
      let next = 0;
      let sealed = false;
      const heads = new Map<number, string>();
      const it = blocks(buf);
      let r = it.next();
      let k = 0;
      for (; !r.done; r = it.next()) {
        if (++k % YIELD_BLOCKS === 0) await yieldNow();
        const b = r.value;
        if (sealed) problems.push({ segment: seq, offset: b.offset, problem: 'block after the seal' });
        const want = blockHash(chain, b.type, b.body);
        let span: [number, number] | undefined;
        let decoded = true;
        if (b.type === BLOCK_DATA) {
          try {
            const got = decodeBlock(b.body, h.created, undefined, () => {});
            span = [got.first, got.first + got.count - 1];
            if (got.first !== next) {
              problems.push({
                segment: seq,
                offset: b.offset,
                records: span,
                problem:
                  got.first > next
                    ? `records ${next}-${got.first - 1} missing before this block`
                    : 'block out of order (records repeated or moved)',
              });
            }
            next = got.first + got.count;
          } catch (e) {
            decoded = false;
            problems.push({ segment: seq, offset: b.offset, problem: `block unreadable: ${(e as Error).message}` });
          }
        } else {
          sealed = true;
          try {
            const s = JSON.parse(Buffer.from(b.body).toString('utf8')) as { records?: number };
            if (s.records !== next)
              problems.push({
                segment: seq,
                offset: b.offset,
                problem: `seal counts ${s.records} records, the segment holds ${next}`,
              });
          } catch {
            problems.push({ segment: seq, offset: b.offset, problem: 'seal unreadable' });
          }
        }
        if (!want.equals(b.hash) && decoded) {
          problems.push({
            segment: seq,
            offset: b.offset,
            records: span,
            problem: 'hash mismatch: a record in this block was edited, removed or reordered',
          });
        }
        // Go on from the stored hash, so one edit is reported once.
        chain = Buffer.from(b.hash);
        heads.set(next, chain.toString('hex'));
      }
      if (r.value.why)
        problems.push({ segment: seq, offset: r.value.tail, problem: `${r.value.why}: the segment ends there` });
      if (!sealed && seq !== seqs[seqs.length - 1])
        problems.push({ segment: seq, problem: 'not sealed, but a newer segment exists (cut short?)' });
      records += next;
      prevHead = chain;
      head = chain.toString('hex');
      lastSeq = seq;
      lastRecords = next;
      lastHeads = heads;
    }
    // The anchor holds the head after the last write: records cut from the end show here.
    try {
      const a = JSON.parse(readFileSync(join(this.dir, 'anchor.json'), 'utf8')) as {
        seq: number;
        records: number;
        head: string;
      };
      if (a.seq > lastSeq)
        problems.push({ segment: a.seq, problem: `segments ${lastSeq + 1}-${a.seq} missing at the end` });
      else if (a.seq === lastSeq) {
        if (a.records > lastRecords)
          problems.push({
            segment: a.seq,
            records: [lastRecords, a.records - 1],
            problem: `records ${lastRecords}-${a.records - 1} missing at the end`,
          });
        else if (lastHeads.get(a.records) !== a.head && !problems.some((p) => p.segment === a.seq))
          problems.push({ segment: a.seq, problem: 'the chain does not reach the head last written (anchor.json)' });
      }
    } catch {
      /* no anchor yet: nothing was written */
    }
    return { ok: problems.length === 0, segments: seqs.length, records, bytes, head, problems };
  }

  close(): void {
    if (this.open) {
      closeSync(this.open.fd);
      this.open = undefined;
    }
  }
}
