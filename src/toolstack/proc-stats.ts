// Per-thread CPU accounting from /proc: the time and run state of each vCPU
// thread of a QEMU process.

import { readFileSync } from 'node:fs';

const HZ = 100; // USER_HZ on Linux

export interface ThreadStat {
  state: string; // R, S, D, T, Z ...
  cpuSeconds: number;
  lastCpu: number;
}

export function threadStat(pid: number, tid: number): ThreadStat | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime = field 14, stime = 15, processor = 39
    return {
      state: rest[0],
      cpuSeconds: (Number(rest[11]) + Number(rest[12])) / HZ,
      lastCpu: Number(rest[36]),
    };
  } catch {
    return undefined;
  }
}

export function threadAffinity(pid: number, tid: number): string {
  try {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(status);
    return m ? m[1] : 'all';
  } catch {
    return 'all';
  }
}

/** Resident set size of a process in KiB, from /proc/PID/status. */
export function processRssKiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s*(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function hostCpuCount(): number {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('processor')).length;
  } catch {
    return 1;
  }
}
