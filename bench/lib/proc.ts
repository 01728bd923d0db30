// Processes for benchmarks: run a command, watch a stream for the guest's ready
// line, read a process's peak RSS, stop a process whether or not it is our child.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** The default guest prints this on its serial console once userspace is up. */
export const READY_RE = /XENODE-READY uptime=([\d.]+)\r?\n/;

export interface ReadyHit {
  /** performance.now() when the line was complete. */
  at: number;
  /** The guest's own uptime at that moment, in seconds. */
  uptime: number;
}

/** Feed it console bytes; `ready` resolves on the first complete ready line. */
export class ReadyScanner {
  private buf = '';
  private done = false;
  private resolveReady: (h: ReadyHit) => void = () => {};
  readonly ready: Promise<ReadyHit>;

  constructor() {
    this.ready = new Promise((r) => {
      this.resolveReady = r;
    });
  }

  feed(chunk: Buffer | string): void {
    if (this.done) return;
    const at = performance.now();
    this.buf += chunk.toString();
    const m = READY_RE.exec(this.buf);
    if (m) {
      this.done = true;
      this.resolveReady({ at, uptime: Number(m[1]) });
    } else if (this.buf.length > 8192) this.buf = this.buf.slice(-256);
  }

  /** Whatever the console said last (for error messages). */
  tail(n = 200): string {
    return this.buf.slice(-n).replace(/\s+/g, ' ').trim();
  }
}

/** Reject after `ms` with a message naming what was awaited. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * A promise that rejects when the child exits (for racing against "ready"). With
 * `cleanExitOk`, exit code 0 is not a failure (e.g. `virsh create` returns at once).
 * Never an unhandled rejection when nobody races it.
 */
export function rejectOnExit(
  child: ChildProcess,
  what: string,
  detail: () => string = () => '',
  cleanExitOk = false,
): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => {
      if (cleanExitOk && code === 0) return;
      const d = detail();
      reject(new Error(`${what} exited (${signal ?? `code ${code}`})${d ? `: ${d}` : ''}`));
    });
    child.once('error', (e) => reject(new Error(`${what}: ${e.message}`)));
  });
  p.catch(() => {});
  return p;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion (killed after `timeoutMs`). */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: stderr + e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie is dead for our purposes.
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopPid(pid: number, graceMs = 2000): Promise<void> {
  if (!pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < deadline) await sleep(10);
  if (pidAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    for (let i = 0; i < 300 && pidAlive(pid); i++) await sleep(10);
  }
}

/** Peak resident set size (VmHWM) of a live process, in MiB. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export function readPid(file: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Connect to a Unix socket as soon as it exists (retrying every `everyMs`) and feed
 * everything read to `onData`. The caller must keep reading: an undrained serial
 * socket stalls the guest's console.
 */
export async function connectWhenReady(
  path: string,
  onData: (d: Buffer) => void,
  opts: { until: number; everyMs?: number; cancelled?: () => boolean },
): Promise<Socket> {
  for (;;) {
    try {
      const s = await new Promise<Socket>((resolve, reject) => {
        const c = createConnection({ path });
        c.once('connect', () => resolve(c));
        c.once('error', reject);
      });
      s.removeAllListeners('error');
      s.on('error', () => {});
      s.on('data', onData);
      return s;
    } catch (e) {
      if (Date.now() >= opts.until || opts.cancelled?.()) throw e;
      await sleep(opts.everyMs ?? 5);
    }
  }
}

/** Seconds since boot from /proc/uptime (10 ms resolution), the clock of process start times. */
export function bootClock(): number {
  try {
    return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

/** When `pid` was exec'd/forked, in bootClock() seconds (field 22 of /proc/<pid>/stat, at 100 Hz). */
export function processStartClock(pid: number): number {
  try {
    const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '';
    // Fields after "comm)": state is field 3, so starttime (field 22) is index 19.
    return Number(rest.split(' ')[19]) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system, all threads) a live process has used, in seconds (10 ms resolution). */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const f = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
    // Fields after "comm)" start at field 3; utime and stime are fields 14 and 15.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * Follow a file that another process appends to (e.g. QEMU's chardev `logfile=`),
 * polling every `everyMs`, and feed new bytes to `onData`. Waits for the file to appear.
 */
export class FileFollower {
  private fd?: number;
  private offset = 0;
  private timer?: NodeJS.Timeout;
  private readonly buf = Buffer.alloc(65536);

  constructor(
    private readonly path: string,
    private readonly onData: (d: Buffer) => void,
  ) {}

  start(everyMs = 5): this {
    this.timer = setInterval(() => this.poll(), everyMs);
    this.poll();
    return this;
  }

  private poll(): void {
    try {
      this.fd ??= openSync(this.path, 'r');
      for (;;) {
        const n = readSync(this.fd, this.buf, 0, this.buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.onData(Buffer.from(this.buf.subarray(0, n)));
      }
    } catch {
      /* not there yet */
    }
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Current resident memory of a process by kind, in MiB: anonymous (heap, TCG code cache), shared memory (guest RAM in a memfd), file-backed. */
export function rssParts(pid: number | undefined): { anon: number; shmem: number; file: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, 'm').exec(s)?.[1] ?? Number.NaN) / 1024;
    return { anon: kb('RssAnon'), shmem: kb('RssShmem'), file: kb('RssFile') };
  } catch {
    return undefined;
  }
}

/**
 * What every boot contender reports about its QEMU right after the ready line:
 * when it was exec'd (seconds after `u0`, a bootClock() reading), its CPU time and
 * where its resident memory is.
 */
export function qemuFacts(
  pid: number | undefined,
  u0: number,
): { qemuExec?: number; qemuCpu: number; rssParts: ReturnType<typeof rssParts> } {
  return {
    qemuExec: pid ? processStartClock(pid) - u0 : undefined,
    qemuCpu: cpuSeconds(pid),
    rssParts: rssParts(pid),
  };
}
