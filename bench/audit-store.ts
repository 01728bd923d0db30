// How to store the flow log, by measurement: Xenode's segment files (the
// hash-chained blocks of src/features/audit/flow-log.ts) against SQLite
// (better-sqlite3, WAL, indexes for sponsor, domain, port and time), with the
// same records: write rate, bytes per flow, query times. docs/audit.md quotes it.
//
//   node --import tsx bench/audit-store.ts [records=2000000] [--no-sqlite]

import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { FlowLog, type FlowQuery } from '../src/features/audit/flow-log.ts';
import type { FlowRecord } from '../src/features/audit/records.ts';

const N = Number(process.argv[2] ?? 2_000_000);
const T0 = Date.UTC(2026, 11, 1);
const SPONSORS = Array.from({ length: 50 }, (_, i) => `sponsor${i}`);
const PORTS = [22, 25, 53, 80, 443, 587, 3306, 8080];

function rec(i: number): FlowRecord {
  // One flow per record, ~100 records a second over the run's span.
  const start = T0 + i * 10 + (i % 7);
  const dom = i % 400;
  return {
    start,
    end: start + (i % 60_000),
    domid: dom + 1,
    devid: 0,
    domain: `vm${dom}`,
    sponsor: SPONSORS[dom % SPONSORS.length] as string,
    proto: i % 5 === 0 ? 17 : 6,
    src: `10.200.${(dom >> 8) & 255}.${dom & 255}`,
    dst: `93.184.${(i >> 8) & 255}.${i & 255}`,
    sport: 32768 + (i % 28000),
    dport: PORTS[i % PORTS.length] as number,
    pktsOut: i % 200,
    bytesOut: (i % 200) * 700,
    pktsIn: i % 150,
    bytesIn: (i % 150) * 1200,
    flagsOut: 0x1b,
    flagsIn: 0x1a,
    action: i % 97 === 0 ? 'reject' : 'accept',
    rule: i % 97 === 0 ? 'smtp' : '',
  };
}

function dirBytes(d: string): number {
  return readdirSync(d).reduce((a, f) => a + statSync(join(d, f)).size, 0);
}

function time<T>(f: () => T): [T, number] {
  const t = performance.now();
  const v = f();
  return [v, performance.now() - t];
}

const QUERIES: Array<[string, FlowQuery]> = [
  ['newest 1000', { limit: 1000 }],
  ['sponsor, newest 1000', { sponsor: 'sponsor7', limit: 1000 }],
  ['domain, newest 1000', { domain: 'vm123', limit: 1000 }],
  ['port 25, newest 1000', { port: 25, limit: 1000 }],
  ['one hour early in the log', { since: T0 + 3600_000, until: T0 + 7200_000, limit: 100_000 }],
  ['sponsor over one hour', { sponsor: 'sponsor7', since: T0 + 3600_000, until: T0 + 7200_000, limit: 100_000 }],
];

const BATCH = 1000;
const base = mkdtempSync(join(tmpdir(), 'xn-bench-audit-'));
try {
  // ---- segment files --------------------------------------------------------
  const segDir = join(base, 'seg');
  let clock = T0;
  const log = new FlowLog({ dir: segDir, now: () => clock, retainBytes: Number.MAX_SAFE_INTEGER });
  const [, segWrite] = time(() => {
    for (let i = 0; i < N; i += BATCH) {
      clock = T0 + i * 10;
      log.append(Array.from({ length: Math.min(BATCH, N - i) }, (_, j) => rec(i + j)));
    }
  });
  const segBytes = dirBytes(segDir);
  console.log(`segments: ${N} records in ${(segWrite / 1000).toFixed(1)} s = ${Math.round(N / (segWrite / 1000))}/s`);
  console.log(`segments: ${segBytes} bytes on disk = ${(segBytes / N).toFixed(1)} bytes per flow`);
  for (const [name, q] of QUERIES) {
    const t0 = performance.now();
    const r = await log.query(q);
    const ms = performance.now() - t0;
    console.log(`segments: ${name}: ${r.length} rows in ${ms.toFixed(0)} ms`);
  }
  const t1 = performance.now();
  const v = await log.verify();
  const vms = performance.now() - t1;
  console.log(`segments: verify ${v.records} records in ${(vms / 1000).toFixed(1)} s (ok ${v.ok})`);
  log.close();

  // ---- SQLite ---------------------------------------------------------------
  if (process.argv.includes('--no-sqlite')) process.exit(0);
  const dbPath = join(base, 'flows.db');
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE flows (id INTEGER PRIMARY KEY, start INT, end INT, domid INT, devid INT, domain TEXT,
    sponsor TEXT, proto INT, src TEXT, dst TEXT, sport INT, dport INT, pkts_out INT, bytes_out INT, pkts_in INT,
    bytes_in INT, flags_out INT, flags_in INT, action TEXT, rule TEXT, chain BLOB);
    CREATE INDEX flows_sponsor ON flows(sponsor, start); CREATE INDEX flows_domain ON flows(domain, start);
    CREATE INDEX flows_dport ON flows(dport, start); CREATE INDEX flows_sport ON flows(sport, start);
    CREATE INDEX flows_start ON flows(start);`);
  const ins = db.prepare('INSERT INTO flows VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)');
  let chain = Buffer.alloc(32);
  const [, sqlWrite] = time(() => {
    for (let i = 0; i < N; i += BATCH) {
      db.transaction(() => {
        for (let j = i; j < Math.min(N, i + BATCH); j++) {
          const r = rec(j);
          // A per-row hash chain, as tamper evidence would need in a table.
          chain = createHash('sha256').update(chain).update(JSON.stringify(r)).digest();
          ins.run(
            r.start,
            r.end,
            r.domid,
            r.devid,
            r.domain,
            r.sponsor,
            r.proto,
            r.src,
            r.dst,
            r.sport,
            r.dport,
            r.pktsOut,
            r.bytesOut,
            r.pktsIn,
            r.bytesIn,
            r.flagsOut,
            r.flagsIn,
            r.action,
            r.rule,
            chain,
          );
        }
      })();
    }
  });
  db.pragma('wal_checkpoint(TRUNCATE)');
  const sqlBytes = statSync(dbPath).size;
  console.log(`sqlite: ${N} records in ${(sqlWrite / 1000).toFixed(1)} s = ${Math.round(N / (sqlWrite / 1000))}/s`);
  console.log(`sqlite: ${sqlBytes} bytes on disk = ${(sqlBytes / N).toFixed(1)} bytes per flow`);
  const sqlQ: Record<string, () => unknown[]> = {
    'newest 1000': () => db.prepare('SELECT * FROM flows ORDER BY id DESC LIMIT 1000').all(),
    'sponsor, newest 1000': () =>
      db.prepare('SELECT * FROM flows WHERE sponsor = ? ORDER BY start DESC LIMIT 1000').all('sponsor7'),
    'domain, newest 1000': () =>
      db.prepare('SELECT * FROM flows WHERE domain = ? ORDER BY start DESC LIMIT 1000').all('vm123'),
    'port 25, newest 1000': () =>
      db
        .prepare(
          'SELECT * FROM flows WHERE id IN (SELECT id FROM flows WHERE dport = 25 UNION SELECT id FROM flows WHERE sport = 25) ORDER BY id DESC LIMIT 1000',
        )
        .all(),
    'one hour early in the log': () =>
      db.prepare('SELECT * FROM flows WHERE start <= ? AND end >= ?').all(T0 + 7200_000, T0 + 3600_000),
    'sponsor over one hour': () =>
      db
        .prepare('SELECT * FROM flows WHERE sponsor = ? AND start <= ? AND end >= ?')
        .all('sponsor7', T0 + 7200_000, T0 + 3600_000),
  };
  for (const [name, f] of Object.entries(sqlQ)) {
    const [r, ms] = time(f);
    console.log(`sqlite: ${name}: ${r.length} rows in ${ms.toFixed(0)} ms`);
  }
  db.close();
} finally {
  rmSync(base, { recursive: true, force: true });
}
