// Each domain's run directory keeps a copy of its record (domain.json) next to
// its QEMU's sockets, so a lost domain table can be rebuilt from the run
// directories (`xenoded --recover`), and so no domid whose directory or QEMU
// still exists is handed out again.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configProblem } from '../config/config-check.ts';
import { findQemus } from '../engine/qemu-scan.ts';
import type { DomainRecord } from './domain-record.ts';

export const RECORD_FILE = 'domain.json';

/**
 * Writes the record beside the domain's QEMU; best effort, since the table row
 * is the record and this is its spare. A creating domain's directory is made
 * here; any later state only updates a directory that still exists, so a
 * torn-down domain's directory is not brought back.
 */
export function writeRunRecord(rec: DomainRecord): void {
  try {
    if (rec.state === 'creating') mkdirSync(rec.runDir, { recursive: true });
    else if (!existsSync(rec.runDir)) return;
    const file = join(rec.runDir, RECORD_FILE);
    writeFileSync(`${file}.tmp`, `${JSON.stringify(rec, null, 1)}\n`, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  } catch {
    /* the table row still holds it */
  }
}

/**
 * The record a run directory holds, if it is one for `domid` that still makes
 * sense; `checkConfig` false skips the (first-time costly) config check.
 */
export function readRunRecord(runDir: string, domid: number, checkConfig = true): DomainRecord | undefined {
  let rec: DomainRecord;
  try {
    rec = JSON.parse(readFileSync(join(runDir, RECORD_FILE), 'utf8')) as DomainRecord;
  } catch {
    return undefined;
  }
  if (typeof rec !== 'object' || rec === null || rec.domid !== domid) return undefined;
  if (typeof rec.name !== 'string' || typeof rec.uuid !== 'string' || typeof rec.sponsor !== 'string') return undefined;
  if (typeof rec.config !== 'object' || (checkConfig && configProblem(rec.config) !== undefined)) return undefined;
  return rec;
}

/** Domids that have a directory under `domainsDir`. */
export function runDirDomids(domainsDir: string): number[] {
  try {
    return readdirSync(domainsDir)
      .filter((n) => /^[1-9]\d{0,8}$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/** Every domid still in use on the host: a run directory or a live QEMU of ours. */
export function domidsInUse(domainsDir: string): number[] {
  const ids = new Set(runDirDomids(domainsDir));
  for (const q of findQemus(domainsDir)) ids.add(q.domid);
  return [...ids].sort((a, b) => a - b);
}
