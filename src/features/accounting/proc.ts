// What accounting reads of a QEMU process in /proc: its identity (pid and start
// time, so a reused pid is never taken for the same process) and its CPU time,
// the fallback when the domain has no cgroup.

import { readFileSync } from 'node:fs';

const HZ = 100; // USER_HZ on Linux

export interface ProcessInstance {
  /** `qemu:<pid>:<start time in ticks since boot>` */
  id: string;
  /** When it started, ms since epoch. */
  start: number;
  /** false for a zombie: exited, its times final, not yet reaped. */
  alive: boolean;
}

let bootMs: number | undefined;

function bootTimeMs(): number {
  if (bootMs === undefined) {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    bootMs = m ? Number(m[1]) * 1000 : 0;
  }
  return bootMs;
}

/** Fields of /proc/PID/stat after the command name, from field 3 (state) on. */
function statFields(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

export function processInstance(pid: number): ProcessInstance | undefined {
  const f = statFields(pid);
  const ticks = Number(f?.[19]); // field 22: starttime
  if (!f || !Number.isFinite(ticks)) return undefined;
  return { id: `qemu:${pid}:${ticks}`, start: bootTimeMs() + (ticks * 1000) / HZ, alive: f[0] !== 'Z' && f[0] !== 'X' };
}

/** utime + stime of the whole process (every thread, living or gone), seconds. */
export function processCpuSeconds(pid: number): number | undefined {
  const f = statFields(pid);
  if (!f) return undefined;
  const t = Number(f[11]) + Number(f[12]); // fields 14, 15
  return Number.isFinite(t) ? t / HZ : undefined;
}
