// The domain table and the store are trusted only when whole. At start-up
// xenoded compares the table with what the host shows (run directories and
// live QEMUs) and refuses, naming the file, when the table is unreadable,
// empty or missing domains that still run. `xenoded --recover` then rebuilds
// the table from the run directories' domain.json and the QEMUs' own state,
// keeping everything else in the state database (tokens, sponsor limits,
// storage pools) whenever the file is still readable.

import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { loadConfigText } from '../config/load.ts';
import { quoteString } from '../config/parser.ts';
import { domainRunPaths } from '../engine/paths.ts';
import { processRunning } from '../engine/process.ts';
import { type FoundQemu, findQemus, probeQemu, type QemuSelf } from '../engine/qemu-scan.ts';
import { XenodeError } from '../errors.ts';
import type { XenodeDirs } from './dirs.ts';
import { INCOMING_SUFFIX } from './domain-record.ts';
import { type DomainRecord, type DomainState, DomainTable, unreadableTable } from './domain-table.ts';
import { readRunRecord, runDirDomids } from './run-dirs.ts';

const RECOVER_HINT = 'run `xenoded --recover` to rebuild it from the run directories and the running QEMUs';

type DbProbe = { kind: 'missing' } | { kind: 'unreadable'; why: string } | { kind: 'ok'; db: Database.Database };

/** Opens an SQLite file only to read it: missing, unreadable, or whole (the caller closes it). */
function probeDb(file: string, table: string): DbProbe {
  if (!existsSync(file)) return { kind: 'missing' };
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true, timeout: 0 });
    const check = db.pragma('quick_check', { simple: true });
    if (check !== 'ok') throw new Error(String(check));
    const has = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
    if (!has) {
      db.close();
      return { kind: 'missing' };
    }
    return { kind: 'ok', db };
  } catch (e) {
    db?.close();
    return { kind: 'unreadable', why: e instanceof Error ? e.message : String(e) };
  }
}

/** What the host shows of one domid. */
interface Trace {
  domid: number;
  /** Its run directory, when it exists. */
  runDir?: string;
  record?: DomainRecord;
  qemu?: FoundQemu;
}

function traces(dirs: XenodeDirs, checkConfig: boolean): Trace[] {
  const byId = new Map<number, Trace>();
  for (const domid of runDirDomids(dirs.domainsDir)) {
    const runDir = join(dirs.domainsDir, String(domid));
    byId.set(domid, { domid, runDir, record: readRunRecord(runDir, domid, checkConfig) });
  }
  for (const q of findQemus(dirs.domainsDir)) {
    const t = byId.get(q.domid) ?? { domid: q.domid };
    t.qemu = q;
    byId.set(q.domid, t);
  }
  return [...byId.values()].sort((a, b) => a.domid - b.domid);
}

/**
 * A domain the table must know: its QEMU runs from its run directory, or its
 * record says it was running when last written. A creating or dying record
 * without a QEMU is the leftover of a create or teardown cut short.
 */
function mustBeListed(t: Trace): boolean {
  if (t.qemu && t.runDir) return true;
  return t.record !== undefined && t.record.state !== 'dying' && t.record.state !== 'creating';
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function domidList(ts: Trace[]): string {
  const ids = ts.map((t) => t.domid);
  return `${ids.length === 1 ? 'domid' : 'domids'} ${ids.join(', ')}`;
}

/**
 * Refuses to start on a state database or store that is not whole. Call before
 * anything opens them: opening would make an empty table look whole.
 */
export function checkStateFiles(dirs: XenodeDirs): void {
  const table = probeDb(dirs.stateDb, 'domains');
  if (table.kind === 'unreadable') throw unreadableTable(dirs.stateDb, table.why);
  const listed = new Set<number>();
  if (table.kind === 'ok') {
    for (const r of table.db.prepare('SELECT domid FROM domains').all() as Array<{ domid: number }>)
      listed.add(r.domid);
    table.db.close();
  }
  const missing = traces(dirs, false).filter((t) => mustBeListed(t) && !listed.has(t.domid));
  if (table.kind === 'missing' && missing.length > 0) {
    const live = missing.filter((t) => t.qemu).length;
    throw new XenodeError(
      'state',
      `domain table ${dirs.stateDb} is ${existsSync(dirs.stateDb) ? 'empty' : 'missing'}, but ${plural(missing.length, 'domain still exists', 'domains still exist')} in ${dirs.domainsDir} (${domidList(missing)}; ${plural(live, 'QEMU', 'QEMUs')} running)`,
      { hint: RECOVER_HINT },
    );
  }
  // A whole table may miss a record whose QEMU is gone (teardown cut short), never a running one.
  const lost = missing.filter((t) => t.qemu && t.runDir);
  if (lost.length > 0) {
    throw new XenodeError(
      'state',
      `domain table ${dirs.stateDb} lacks ${domidList(lost)}, whose ${lost.length === 1 ? 'QEMU still runs' : 'QEMUs still run'} from ${dirs.domainsDir}`,
      { hint: RECOVER_HINT },
    );
  }
  const store = probeDb(dirs.storeDb, 'nodes');
  if (store.kind === 'ok') store.db.close();
  if (store.kind === 'unreadable') {
    throw new XenodeError('state', `control store ${dirs.storeDb} is unreadable (${store.why})`, {
      hint: 'run `xenoded --recover`: it keeps the file aside, and the store is rebuilt for the running domains',
    });
  }
}

function runningDaemon(dirs: XenodeDirs): number | undefined {
  try {
    const pid = Number(readFileSync(dirs.pidFile, 'utf8'));
    if (!pid || pid === process.pid || !processRunning(pid)) return undefined;
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('xenoded') || cmd.includes('daemon-main') ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Moves an unreadable database (and its WAL files) aside, kept for a post-mortem. */
function setAside(file: string): string {
  const aside = `${file}.broken-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(file, aside);
  for (const ext of ['-wal', '-shm']) if (existsSync(file + ext)) renameSync(file + ext, aside + ext);
  return aside;
}

/** The table's state for a domain whose QEMU answered. */
function liveState(recorded: DomainState, self: QemuSelf): DomainState {
  // A create cut short or a teardown under way: the restarted daemon finishes those.
  if (recorded === 'creating' || recorded === 'dying') return recorded;
  if (self.state === 'running') return 'running';
  if (self.state === 'paused' || self.state === 'prelaunch') return 'paused';
  return recorded;
}

/** A record from the QEMU's command line, for a run directory without domain.json. */
function recordFromQemu(dirs: XenodeDirs, q: FoundQemu, self: QemuSelf): DomainRecord {
  let name = self.name ?? q.name;
  if (name.endsWith(INCOMING_SUFFIX)) name = name.slice(0, -INCOMING_SUFFIX.length);
  const lines = [`name = ${quoteString(name)}`];
  const uuid = self.uuid ?? q.uuid;
  if (uuid) lines.push(`uuid = ${quoteString(uuid)}`);
  if (q.memoryMiB) lines.push(`memory = ${q.memoryMiB}`, `maxmem = ${q.maxmemMiB ?? q.memoryMiB}`);
  if (q.vcpus) lines.push(`vcpus = ${q.vcpus}`, `maxvcpus = ${q.maxvcpus ?? q.vcpus}`);
  const { config } = loadConfigText(`${lines.join('\n')}\n`, {
    file: `${q.runDir} (QEMU command line)`,
    baseDir: dirs.base,
    checkFiles: false,
  });
  return {
    domid: q.domid,
    uuid: config.uuid ?? uuid ?? '',
    name: config.name,
    sponsor: config.sponsor,
    config,
    state: 'running',
    pid: q.pid,
    runDir: q.runDir,
    startTime: Date.now(),
    targetMiB: config.memory,
    maxMiB: config.maxmem,
  };
}

export interface RecoverReport {
  /** One line per domain put back, set aside or left alone. */
  lines: string[];
  recovered: number;
}

/**
 * `xenoded --recover`: sets unreadable databases aside and puts back in the
 * table every domain the host still shows, with its domid. The daemon must be
 * stopped; the next start reattaches the domains and rebuilds their store
 * entries if the store was lost.
 */
export async function recoverState(dirs: XenodeDirs): Promise<RecoverReport> {
  const other = runningDaemon(dirs);
  if (other) {
    throw new XenodeError('conflict', `xenoded is running (pid ${other}) in ${dirs.base}`, {
      hint: 'stop it first; --recover rebuilds the table of a stopped daemon',
    });
  }
  const lines: string[] = [];
  const tableProbe = probeDb(dirs.stateDb, 'domains');
  if (tableProbe.kind === 'ok') tableProbe.db.close();
  if (tableProbe.kind === 'unreadable') {
    const aside = setAside(dirs.stateDb);
    lines.push(
      `set aside unreadable ${dirs.stateDb} as ${aside} (${tableProbe.why}); tokens, sponsor limits and storage pools it held must be made again`,
    );
  }
  const storeProbe = probeDb(dirs.storeDb, 'nodes');
  if (storeProbe.kind === 'ok') storeProbe.db.close();
  if (storeProbe.kind === 'unreadable') {
    const aside = setAside(dirs.storeDb);
    lines.push(`set aside unreadable ${dirs.storeDb} as ${aside}; the store is rebuilt for the running domains`);
  }
  const table = new DomainTable(dirs.stateDb, { domainsDir: dirs.domainsDir });
  let recovered = 0;
  try {
    const known = new Set(table.domids());
    const names = new Set(table.all().map((r) => r.name));
    for (const t of traces(dirs, true)) {
      if (known.has(t.domid)) {
        lines.push(`domid ${t.domid}: already in the table`);
        continue;
      }
      let rec: DomainRecord | undefined;
      let how = '';
      if (t.qemu && !t.runDir) {
        lines.push(
          `domid ${t.domid}: QEMU pid ${t.qemu.pid} has no run directory, so no control socket; not recovered (stop it with kill ${t.qemu.pid})`,
        );
        continue;
      }
      if (t.qemu && t.runDir) {
        const self = await probeQemu(domainRunPaths(t.runDir), t.qemu.pid);
        if (!self) {
          lines.push(`domid ${t.domid}: QEMU pid ${t.qemu.pid} does not answer on its QMP socket; not recovered`);
          continue;
        }
        try {
          rec = t.record ?? recordFromQemu(dirs, t.qemu, self);
        } catch (e) {
          lines.push(`domid ${t.domid}: cannot rebuild a config from its QEMU: ${e instanceof Error ? e.message : e}`);
          continue;
        }
        if (!t.record) how = ', rebuilt from its QEMU without domain.json: sponsor and devices unknown';
        // The QEMU is the truth for what runs.
        if (self.uuid && self.uuid !== rec.uuid)
          rec = { ...rec, uuid: self.uuid, config: { ...rec.config, uuid: self.uuid } };
        rec = { ...rec, pid: t.qemu.pid, runDir: t.runDir, state: liveState(rec.state, self) };
      } else if (t.record && mustBeListed(t)) {
        rec = t.record;
        how = ', QEMU gone';
      } else {
        lines.push(`domid ${t.domid}: a run directory left by a create or destroy cut short; its domid stays taken`);
        continue;
      }
      if (names.has(rec.name)) {
        const name = `${rec.name}-${rec.domid}`;
        how += `, renamed from ${rec.name} (name taken)`;
        rec = { ...rec, name, config: { ...rec.config, name } };
      }
      table.put(rec);
      known.add(rec.domid);
      names.add(rec.name);
      recovered++;
      lines.push(
        `domid ${rec.domid}: ${rec.name} (sponsor ${rec.sponsor}, ${rec.state}${rec.pid ? `, QEMU pid ${rec.pid}` : ''}${how})`,
      );
    }
    // Past every domid the host still shows, whatever the table remembered.
    table.setMeta('next_domid', String(table.nextDomid()));
  } finally {
    table.close();
  }
  return { lines, recovered };
}
