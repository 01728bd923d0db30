// The flow log on disk without a daemon: records in and out, queries, rotation,
// retention, crash recovery, and verify finding edited, removed and reordered
// records, blocks and segments.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FlowLog } from '../../src/features/audit/flow-log.ts';
import type { FlowRecord } from '../../src/features/audit/records.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'xn-flowlog-'));
  dirs.push(d);
  return d;
}

const T0 = Date.UTC(2026, 11, 7, 12, 0, 0);

function rec(i: number, o: Partial<FlowRecord> = {}): FlowRecord {
  return {
    start: T0 + i * 1000,
    end: T0 + i * 1000 + 500,
    domid: 1 + (i % 3),
    devid: 0,
    domain: `vm${1 + (i % 3)}`,
    sponsor: i % 2 === 0 ? 'alice' : 'bob',
    proto: 6,
    src: '10.200.0.2',
    dst: '10.200.0.1',
    sport: 40000 + (i % 1000),
    dport: i % 10 === 0 ? 25 : 80,
    pktsOut: 10 + i,
    bytesOut: 1000 + i,
    pktsIn: 8,
    bytesIn: 5_000_000_000 + i,
    flagsOut: 0x1b,
    flagsIn: 0x12,
    action: i % 10 === 0 ? 'reject' : 'accept',
    rule: i % 10 === 0 ? 'smtp' : '',
    ...o,
  };
}

function segFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
}

/** Offsets of every block in a segment file: [type, offset, bodyLength]. */
function blockOffsets(file: string): Array<[number, number, number]> {
  const b = readFileSync(file);
  const out: Array<[number, number, number]> = [];
  for (let off = 56; off < b.length; ) {
    const len = b.readUInt32LE(off + 1);
    out.push([b[off] as number, off, len]);
    off += 5 + len + 32;
  }
  return out;
}

describe('flow log', () => {
  it('gives back what went in, filtered by sponsor, domain, port and time', async () => {
    const dir = tmp();
    const log = new FlowLog({ dir, now: () => T0 });
    const all = Array.from({ length: 3000 }, (_, i) => rec(i));
    log.append(all.slice(0, 1500));
    log.append(all.slice(1500));
    assert.deepEqual(await log.query({ limit: 100_000 }), all);
    assert.deepEqual(
      await log.query({ sponsor: 'alice', limit: 100_000 }),
      all.filter((r) => r.sponsor === 'alice'),
    );
    assert.deepEqual(
      await log.query({ domain: 'vm2', port: 25, limit: 100_000 }),
      all.filter((r) => r.domain === 'vm2' && r.dport === 25),
    );
    assert.deepEqual(
      (await log.query({ domain: '3', limit: 100_000 })).map((r) => r.domid),
      all.filter((r) => r.domid === 3).map((r) => r.domid),
    );
    const since = T0 + 100_000;
    const until = T0 + 200_000;
    assert.deepEqual(
      await log.query({ since, until, limit: 100_000 }),
      all.filter((r) => r.end >= since && r.start <= until),
    );
    // The newest `limit`, oldest first.
    assert.deepEqual(await log.query({ limit: 5 }), all.slice(-5));
    log.close();
    // Reopened: the same, and appending continues the chain.
    const again = new FlowLog({ dir, now: () => T0 });
    assert.equal((await again.query({ limit: 100_000 })).length, 3000);
    again.append([rec(3000)]);
    assert.equal((await again.verify()).ok, true);
    assert.equal((await again.verify()).records, 3001);
  });

  it('rotates into sealed segments whose summaries skip what a query cannot match', async () => {
    const dir = tmp();
    let now = T0;
    const log = new FlowLog({ dir, now: () => now, maxSegmentBytes: 20_000 });
    for (let i = 0; i < 40; i++) log.append(Array.from({ length: 100 }, (_, j) => rec(i * 100 + j)));
    assert.ok(segFiles(dir).length >= 5, `segments: ${segFiles(dir).join(' ')}`);
    assert.equal((await log.verify()).ok, true);
    assert.equal((await log.verify()).records, 4000);
    assert.equal((await log.query({ sponsor: 'carol' })).length, 0);
    assert.equal((await log.query({ port: 25, limit: 100_000 })).length, 400);
    // Age closes a segment too.
    now += 2 * 3600_000;
    const before = segFiles(dir).length;
    log.append([rec(5000)]);
    assert.equal(segFiles(dir).length, before + 1);
    log.close();
  });

  it('keeps about 40 bytes per flow on disk', async () => {
    const dir = tmp();
    const log = new FlowLog({ dir, now: () => T0 });
    for (let i = 0; i < 10; i++) log.append(Array.from({ length: 1000 }, (_, j) => rec(i * 1000 + j)));
    const s = log.stats();
    assert.equal(s.records, 10_000);
    const per = s.bytes / s.records;
    assert.ok(per < 48, `bytes per flow: ${per}`);
    log.close();
  });

  it('finds one edited byte in a closed segment', async () => {
    const dir = tmp();
    const log = new FlowLog({ dir, now: () => T0 });
    log.append(Array.from({ length: 50 }, (_, i) => rec(i)));
    log.append(Array.from({ length: 50 }, (_, i) => rec(50 + i)));
    log.seal();
    log.append([rec(100)]);
    assert.equal((await log.verify()).ok, true);
    const first = join(dir, segFiles(dir)[0] as string);
    const [, off] = blockOffsets(first)[1] as [number, number, number];
    const b = readFileSync(first);
    // A byte inside the second block's records: e.g. a counter.
    b[off + 5 + 30] = (b[off + 5 + 30] as number) ^ 0x01;
    writeFileSync(first, b);
    const r = await log.verify();
    assert.equal(r.ok, false);
    const p = r.problems.find((x) => x.segment === 1 && x.offset === off);
    assert.ok(p, JSON.stringify(r.problems));
    assert.deepEqual(p.records, [50, 99]);
    log.close();
  });

  it('finds a removed block, reordered blocks and records cut from the end', async () => {
    const dir = tmp();
    const log = new FlowLog({ dir, now: () => T0 });
    for (let i = 0; i < 4; i++) log.append(Array.from({ length: 10 }, (_, j) => rec(i * 10 + j)));
    log.close();
    const file = join(dir, segFiles(dir)[0] as string);
    const orig = readFileSync(file);
    const bl = blockOffsets(file);
    const slice = (k: number) => {
      const [, off, len] = bl[k] as [number, number, number];
      return orig.subarray(off, off + 5 + len + 32);
    };
    const fresh = () => new FlowLog({ dir, now: () => T0 });

    // Block 1 removed.
    writeFileSync(file, Buffer.concat([orig.subarray(0, 56), slice(0), slice(2), slice(3)]));
    let r = await fresh().verify();
    assert.ok(
      r.problems.some((p) => /records 10-19 missing/.test(p.problem)),
      JSON.stringify(r.problems),
    );

    // Blocks 1 and 2 swapped.
    writeFileSync(file, Buffer.concat([orig.subarray(0, 56), slice(0), slice(2), slice(1), slice(3)]));
    r = await fresh().verify();
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => /hash mismatch|out of order|missing/.test(p.problem)));

    // The last block cut off at a block boundary: only the anchor knows.
    writeFileSync(file, orig);
    assert.equal((await fresh().verify()).ok, true);
    truncateSync(file, (bl[3] as [number, number, number])[1]);
    r = await fresh().verify();
    assert.ok(
      r.problems.some((p) => /records 30-39 missing at the end/.test(p.problem)),
      JSON.stringify(r.problems),
    );
  });

  it('finds a removed middle segment, and accepts retention removing the oldest', async () => {
    const dir = tmp();
    const log = new FlowLog({ dir, now: () => T0 });
    for (let i = 0; i < 4; i++) {
      log.append(Array.from({ length: 10 }, (_, j) => rec(i * 10 + j)));
      log.seal();
    }
    log.append([rec(99)]);
    assert.equal((await log.verify()).ok, true);
    // Retention by bytes: keep about two segments.
    const seg = statSync(join(dir, segFiles(dir)[0] as string)).size;
    log.close();
    const kept = new FlowLog({ dir, now: () => T0, retainBytes: seg * 2.5 });
    kept.prune();
    assert.ok(segFiles(dir).length < 5);
    assert.equal((await kept.verify()).ok, true, JSON.stringify((await kept.verify()).problems));
    kept.close();
    // A segment taken out of the middle.
    const files = segFiles(dir);
    rmSync(join(dir, files[1] as string));
    const r = await new FlowLog({ dir, now: () => T0 }).verify();
    assert.equal(r.ok, false);
    assert.ok(
      r.problems.some((p) => /missing/.test(p.problem)),
      JSON.stringify(r.problems),
    );
  });

  it('cuts a torn last block after a crash and goes on', async () => {
    const dir = tmp();
    const log = new FlowLog({ dir, now: () => T0 });
    log.append(Array.from({ length: 10 }, (_, i) => rec(i)));
    log.append(Array.from({ length: 10 }, (_, i) => rec(10 + i)));
    log.close();
    const file = join(dir, segFiles(dir)[0] as string);
    const [, off] = blockOffsets(file)[1] as [number, number, number];
    // The second write was torn; its block never completed (the anchor had not been written either).
    truncateSync(file, off + 20);
    writeFileSync(
      join(dir, 'anchor.json'),
      JSON.stringify({
        seq: 1,
        records: 10,
        head: readFileSync(file)
          .subarray(off - 32, off)
          .toString('hex'),
      }),
    );
    const again = new FlowLog({ dir, now: () => T0 });
    assert.equal(again.recovered.length, 1);
    assert.equal((await again.query({ limit: 1000 })).length, 10);
    again.append([rec(20)]);
    assert.equal((await again.verify()).ok, true, JSON.stringify((await again.verify()).problems));
    assert.equal((await again.query({ limit: 1000 })).length, 11);
    again.close();
  });

  it('refuses a record it cannot encode rather than write half of it', async () => {
    const dir = tmp();
    const log = new FlowLog({ dir, now: () => T0 });
    assert.throws(() => log.append([rec(1, { pktsOut: -1 })]), RangeError);
    log.append([rec(2)]);
    assert.equal((await log.verify()).ok, true);
    assert.equal((await log.query({})).length, 1);
    log.close();
  });
});
