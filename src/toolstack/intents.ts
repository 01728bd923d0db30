// The intent journal: every multi-step operation on a domain (save, both sides
// of a migration, mem-set with a deadline) writes what it is about to do into
// the domain's run directory before it acts, and the step it has reached as it
// goes. A daemon killed at any instruction finds the entry when it starts again
// and completes or rolls back the operation (intent-recovery.ts); a finished
// operation removes its entry. Create and teardown need no entry of their own:
// the record's `creating` and `dying` states are theirs.
//
// Entries are small JSON files, written to a temporary name and renamed, not
// fsynced: they are there for a killed daemon, whose writes the kernel keeps;
// a host that loses power loses the QEMUs they speak of too.
//
// XENODE_CRASH_AT=<op>.<step>[,...] (tests only) makes the daemon SIGKILL
// itself right after it records that step (test/crash-kill.test.ts).

import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Domain } from './domain.ts';
import type { DomainState } from './domain-table.ts';
import type { DaemonLog } from './log.ts';
import type { DomainStoreSink } from './store-sink.ts';

export type IntentOp = 'save' | 'migrate-out' | 'migrate-in' | 'mem-set';

interface IntentBase {
  op: IntentOp;
  /** The last step recorded (each op's steps are listed with its type). */
  step: string;
  /** When the step was recorded (ms since the epoch). */
  at: number;
}

/** save: begin → paused → streaming → finishing → written (the commit: the file is complete under its name). */
export interface SaveIntent extends IntentBase {
  op: 'save';
  file: string;
  partial: string;
  status: string;
  /** The partial file's inode: the save is committed once `file` is this inode. */
  ino: number;
  /** Where an existing file of the same name is moved while the new one takes its name. */
  aside: string;
  /** xl save without -c/-p: the domain goes once the file is complete. */
  destroying: boolean;
  leavePaused: boolean;
  wasRunning: boolean;
}

/** The source QEMU's last migration as seen before this one started (a paused domain only). */
export interface MigrationPrint {
  status: string;
  totalMs?: number;
  transferredBytes: number;
}

/**
 * migrate-out: begin → streaming → switchover (QEMU is told to send the device
 * state) → completed (the commit: the target's QEMU loaded every byte) → confirmed.
 */
export interface MigrateOutIntent extends IntentBase {
  op: 'migrate-out';
  name: string;
  target: string;
  wasRunning: boolean;
  /** The QEMU's migration before this one, when it may have had one (see MigrationPrint). */
  prior?: MigrationPrint;
}

/** migrate-in: prepared → accepted (QEMU holds the stream) → loaded (the commit) → go → running; or refused. */
export interface MigrateInIntent extends IntentBase {
  op: 'migrate-in';
  /** The name the domain takes once it is here (it waits as NAME--incoming). */
  name: string;
  source: string;
  /** The guest runs here once loaded (it ran on the source and -p was not given). */
  run: boolean;
  /** The memory target and maximum the source had (`go` brings them too). */
  targetMiB: number;
  maxMiB: number;
}

/** mem-set with a deadline: recorded → driven; the verdict removes it. */
export interface MemSetIntent extends IntentBase {
  op: 'mem-set';
  targetKiB: number;
  direction: 'down' | 'up';
  deadlineMs: number;
  /** When the mem-set was asked for: the deadline counts from here. */
  started: number;
}

export type Intent = SaveIntent | MigrateOutIntent | MigrateInIntent | MemSetIntent;

/** Stands for Omit<T, 'step' | 'at'> of each member. */
export type IntentInit<T extends Intent> = Omit<T, 'step' | 'at'>;

const PREFIX = 'intent-';

function entryPath(runDir: string, op: IntentOp): string {
  return join(runDir, `${PREFIX}${op}.json`);
}

const crashAt = new Set((process.env.XENODE_CRASH_AT ?? '').split(',').filter(Boolean));

/** Tests only: die here, as kill -9 would, if XENODE_CRASH_AT names this point. */
export function crashPoint(name: string): void {
  if (crashAt.size > 0 && crashAt.has(name)) process.kill(process.pid, 'SIGKILL');
}

/**
 * Record that `intent.op` reached `step` (the first call records the
 * intent itself), before the step acts. Returns the entry as written.
 */
export function recordStep<T extends Intent>(runDir: string, intent: IntentInit<T> | T, step: string): T {
  const entry = { ...intent, step, at: Date.now() } as T;
  const file = entryPath(runDir, entry.op);
  writeFileSync(`${file}.tmp`, JSON.stringify(entry), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  crashPoint(`${entry.op}.${step}`);
  return entry;
}

/** The operation is over (done or undone): its entry goes. */
export function clearIntent(runDir: string, op: IntentOp): void {
  rmSync(entryPath(runDir, op), { force: true });
  rmSync(`${entryPath(runDir, op)}.tmp`, { force: true });
}

const OPS: ReadonlySet<string> = new Set<IntentOp>(['save', 'migrate-out', 'migrate-in', 'mem-set']);

function isIntent(v: unknown): v is Intent {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.op === 'string' && OPS.has(o.op) && typeof o.step === 'string' && typeof o.at === 'number';
}

export interface JournalRead {
  intents: Intent[];
  /** Entries that could not be read (named by file), removed. */
  unreadable: string[];
}

/** The entries a run directory holds; unreadable ones are removed and named. */
export function readIntents(runDir: string): JournalRead {
  const out: JournalRead = { intents: [], unreadable: [] };
  let names: string[];
  try {
    names = readdirSync(runDir).filter((n) => n.startsWith(PREFIX));
  } catch {
    return out;
  }
  for (const n of names) {
    const file = join(runDir, n);
    if (n.endsWith('.tmp')) {
      rmSync(file, { force: true });
      continue;
    }
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
      if (isIntent(v) && n === `${PREFIX}${v.op}.json`) {
        out.intents.push(v);
        continue;
      }
    } catch {
      /* unreadable: named below */
    }
    out.unreadable.push(n);
    rmSync(file, { force: true });
  }
  return out;
}

/** One entry of a run directory, if there is one for `op`. */
export function readIntent<T extends Intent>(runDir: string, op: T['op']): T | undefined {
  try {
    const v = JSON.parse(readFileSync(entryPath(runDir, op), 'utf8')) as unknown;
    return isIntent(v) && v.op === op ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What settling an entry needs of the toolstack: the core passes it to the
 * feature that journaled the operation (LifecycleHooks.settleIntent).
 */
export interface IntentHost {
  readonly log: DaemonLog;
  readonly store: DomainStoreSink;
  destroy(d: Domain): Promise<void>;
  pause(d: Domain): Promise<void>;
  rename(d: Domain, name: string): void;
  /** Record a changed record (table, store watchers). */
  touch(d: Domain): void;
  /** The lifecycle's own transition, recorded in the table and the store. */
  setState(d: Domain, state: DomainState): void;
  /** Run the guest again (unless QEMU already does) and record it running. */
  resume(d: Domain): Promise<void>;
}
