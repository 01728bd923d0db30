// What a benchmark report says about the machine it ran on.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';

export interface HostFacts {
  nproc: number;
  cpuModel: string;
  ramGiB: number;
  kernel: string;
  qemuVersion: string;
  nodeVersion: string;
  /** Why Xenode uses TCG (or that KVM looks real). */
  accelNote: string;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0] ?? '';
  } catch {
    return 'not found';
  }
}

export function hostFacts(qemu = 'qemu-system-x86_64'): HostFacts {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const flags = /^flags\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  let accelNote: string;
  if (!existsSync('/dev/kvm')) accelNote = 'TCG: /dev/kvm does not exist';
  else if (existsSync('/sys/module/kvm_pvm'))
    accelNote =
      'TCG: /dev/kvm is kvm_pvm, a software KVM without hardware virtualization (no vmx/svm); the Debian kernel faults under it, so Xenode chooses TCG';
  else if (!flags.includes('vmx') && !flags.includes('svm')) accelNote = 'TCG: the CPU reports neither vmx nor svm';
  else accelNote = 'KVM may be usable on this host (the bench still forces TCG for the peers it builds itself)';
  return {
    nproc: cpus().length,
    cpuModel: model,
    ramGiB: totalmem() / 2 ** 30,
    kernel: release(),
    qemuVersion: firstLine(qemu, ['--version']),
    nodeVersion: process.version,
    accelNote,
  };
}

/** 1-minute load average. */
export function loadAvg1(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

/** QEMU processes on the host that are not in `ours` (other people's work). */
export function foreignQemus(ours: ReadonlySet<number>): string[] {
  const out: string[] = [];
  let pids: string[];
  try {
    pids = execFileSync('pgrep', ['-f', '^(/usr/bin/)?qemu-system'], { encoding: 'utf8' }).trim().split('\n');
  } catch {
    return out;
  }
  for (const p of pids) {
    const pid = Number(p);
    if (!pid || ours.has(pid)) continue;
    try {
      out.push(`${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 160)}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Jiffies from the aggregate `cpu` line of /proc/stat: [busy, total]. */
export function cpuTimes(): [number, number] {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return [total - idle, total];
  } catch {
    return [0, 0];
  }
}

/** Fraction of all CPUs busy between two cpuTimes() snapshots. */
export function busyBetween(a: [number, number], b: [number, number]): number {
  const dt = b[1] - a[1];
  return dt > 0 ? (b[0] - a[0]) / dt : Number.NaN;
}

/**
 * Wait until the host's CPUs are at most `threshold` busy over a `sampleMs` window,
 * for at most `maxWaitMs`. Returns the last busy fraction seen and how long it waited.
 */
export async function waitQuiet(
  threshold: number,
  maxWaitMs: number,
  sampleMs = 500,
): Promise<{ busy: number; waitedMs: number }> {
  const start = Date.now();
  for (;;) {
    const a = cpuTimes();
    await new Promise((r) => setTimeout(r, sampleMs));
    const busy = busyBetween(a, cpuTimes());
    const waitedMs = Date.now() - start;
    if (!(busy > threshold) || waitedMs >= maxWaitMs) return { busy, waitedMs };
  }
}
