// Spawning QEMU so that it outlives the daemon that started it, and finding it
// again after a daemon restart.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { XenodeError } from '../errors.ts';
import type { DomainRunPaths } from './paths.ts';
import type { QemuCommand } from './qemu-args.ts';

export interface LaunchedQemu {
  pid: number;
  /** Resolves when QEMU exits, while this process is its parent. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Alive and not a zombie (PID 1 here reaps orphans only every 1-2 s). */
export function processRunning(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** True when `pid` is a QEMU started for this run directory (pids get reused). */
export function isOurQemu(pid: number, runDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
    // The slash: run directory .../domains/1 is not .../domains/10.
    return cmdline.includes(`${runDir}/`) && cmdline.includes('process=xenode-d') && state !== 'Z';
  } catch {
    return false;
  }
}

/**
 * A live QEMU of `runDir` found by its command line alone: for when the pid file
 * went with the run directory and the table's pid is stale.
 */
export function findQemuOf(runDir: string): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const ent of entries) {
    if (/^\d+$/.test(ent) && Number(ent) !== process.pid && isOurQemu(Number(ent), runDir)) return Number(ent);
  }
  return undefined;
}

/** SIGKILL a QEMU of `runDir`; resolves true once it is gone (a zombie counts as gone). */
export async function killQemu(pid: number, runDir: string, timeoutMs = 5000): Promise<boolean> {
  const start = startTime(pid);
  try {
    if (isOurQemu(pid, runDir)) process.kill(pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
  const end = Date.now() + timeoutMs;
  // Not just until its command line is gone: a dying process loses its memory (and
  // with it /proc/PID/cmdline) before it closes its files, and a QEMU started on
  // the same image meanwhile fails to take the image's lock. Done once it is a zombie.
  while (qemuLingers(pid, runDir, start)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

/** `pid` (started at `start`) still runs or is still dying with its files open. */
export function qemuLingers(pid: number, runDir: string, start: string | undefined): boolean {
  return isOurQemu(pid, runDir) || (start !== undefined && startTime(pid) === start && processRunning(pid));
}

/** Field 22 of /proc/PID/stat: tells a process from a later one given the same pid. */
export function startTime(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19];
  } catch {
    return undefined;
  }
}

export function readPidFile(paths: DomainRunPaths): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(paths.pidFile, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The last meaningful line QEMU wrote to its log: its own error message. */
export function lastQemuError(paths: DomainRunPaths): string | undefined {
  try {
    const lines = readFileSync(paths.qemuLog, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const last = lines.at(-1);
    return last?.replace(/^qemu-system-x86_64: /, '');
  } catch {
    return undefined;
  }
}

export function launchQemu(cmd: QemuCommand, paths: DomainRunPaths): Promise<LaunchedQemu> {
  mkdirSync(paths.runDir, { recursive: true });
  if (cmd.binary.includes('/') && !existsSync(cmd.binary)) {
    return Promise.reject(
      new XenodeError('engine', `QEMU binary '${cmd.binary}' not found`, {
        hint: 'install it with `apt-get install qemu-system-x86` or fix device_model_override',
      }),
    );
  }
  const log = openSync(paths.qemuLog, 'a');
  return new Promise((resolve, reject) => {
    // Detached, own session, no pipes: QEMU keeps running if the daemon dies.
    const child = spawn(cmd.binary, cmd.args, { detached: true, stdio: ['ignore', log, log, ...(cmd.passFds ?? [])] });
    closeSync(log);
    child.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(
          new XenodeError('engine', `QEMU binary '${cmd.binary}' not found`, {
            hint: 'install it with `apt-get install qemu-system-x86` or set XENODE_QEMU',
          }),
        );
      } else reject(new XenodeError('engine', `cannot start QEMU: ${e.message}`));
    });
    child.once('spawn', () => {
      child.unref();
      const pid = child.pid;
      if (pid === undefined) {
        reject(new XenodeError('engine', 'QEMU did not start'));
        return;
      }
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
        child.once('exit', (code, signal) => res({ code, signal })),
      );
      resolve({ pid, exited });
    });
  });
}
