// QEMU run directly, without a toolstack: Xenode's exact command line
// (qemu-same) and QEMU's plain defaults (qemu-default).

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext, BootSample, Contender } from './contender.ts';
import {
  bootClock,
  connectWhenReady,
  FileFollower,
  peakRssMiB,
  qemuFacts,
  ReadyScanner,
  rejectOnExit,
  stopPid,
  withTimeout,
} from './proc.ts';

/** Quote an argv for a shell-like display. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

async function stopChild(child: ChildProcess, gone: Promise<void>): Promise<void> {
  if (child.pid !== undefined) await stopPid(child.pid);
  await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
}

/**
 * Xenode's QEMU command line, captured from a xenode run (/proc/<pid>/cmdline), with
 * the domain's run directory moved to a temp dir and `-S` dropped so the guest runs at
 * once. QEMU is started as Xenode starts it (detached, stdio to a log file) and the
 * serial console is read from the same chardev socket, connected as soon as it exists.
 */
export class QemuSameContender implements Contender {
  readonly id = 'qemu-same';
  readonly informational = false;

  constructor(
    private readonly ctx: BenchContext,
    private readonly template: () => { argv: string[]; runDir: string } | undefined,
  ) {}

  private argvFor(dir: string): string[] {
    const t = this.template();
    if (!t) throw new Error('no xenode QEMU command line captured yet');
    return t.argv.filter((a) => a !== '-S').map((a) => a.replaceAll(t.runDir, dir));
  }

  describe(): string {
    const t = this.template();
    return t ? `\`${shellQuote(this.argvFor('$RUN'))}\`` : "Xenode's QEMU command line without -S (not captured)";
  }

  async run(): Promise<BootSample> {
    const { ctx } = this;
    const dir = mkdtempSync(join(ctx.tmp, 'same-'));
    const [bin, ...args] = this.argvFor(dir);
    if (!bin) throw new Error('empty command line');
    const scanner = new ReadyScanner();
    const log = openSync(join(dir, 'qemu.log'), 'a');
    const logScanner = new ReadyScanner();
    const follower = new FileFollower(join(dir, 'console.log'), (d) => logScanner.feed(d)).start();
    let sock: Socket | undefined;
    let stopped = false;

    const u0 = bootClock();
    const t0 = performance.now();
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    const gone = new Promise<void>((r) => child.once('close', () => r()));
    if (child.pid) ctx.ourPids.add(child.pid);
    const undo = ctx.cleanup.add(`kill qemu-same ${child.pid}`, () => stopChild(child, gone));
    try {
      const exited = rejectOnExit(child, 'qemu', () => scanner.tail());
      const serial = connectWhenReady(join(dir, 'serial.sock'), (d) => scanner.feed(d), {
        until: Date.now() + ctx.timeoutMs,
        cancelled: () => stopped,
      }).then((s) => {
        sock = s;
      });
      serial.catch(() => {});
      const hit = await withTimeout(
        Promise.race([Promise.all([serial, scanner.ready]).then(([, h]) => h), exited]),
        ctx.timeoutMs,
        'XENODE-READY from qemu-same',
      );
      const rssMiB = child.pid ? peakRssMiB(child.pid) : undefined;
      const facts = qemuFacts(child.pid, u0);
      const logHit = await Promise.race([logScanner.ready, sleep(1000).then(() => undefined)]);
      return {
        wall: (hit.at - t0) / 1000,
        uptime: hit.uptime,
        rssMiB,
        ...facts,
        toolCpu: 0,
        consoleLag: logHit ? (hit.at - logHit.at) / 1000 : undefined,
      };
    } finally {
      follower.stop();
      stopped = true;
      sock?.destroy();
      await stopChild(child, gone);
      undo();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

export interface QemuDefaultOptions {
  qemu: string;
  /** The bzImage (QEMU's own -kernel loader, as a user would give it). */
  kernel: string;
  initrd: string;
}

/** `qemu-system-x86_64 -M pc -accel tcg … -serial stdio -display none`, everything else QEMU's default. */
export class QemuDefaultContender implements Contender {
  readonly id = 'qemu-default';
  readonly informational = false;

  constructor(
    private readonly ctx: BenchContext,
    private readonly o: QemuDefaultOptions,
  ) {}

  argv(): string[] {
    const { ctx, o } = this;
    return [
      o.qemu,
      '-M',
      'pc',
      '-accel',
      'tcg',
      '-m',
      String(ctx.memoryMiB),
      '-smp',
      String(ctx.vcpus),
      '-kernel',
      o.kernel,
      '-initrd',
      o.initrd,
      '-append',
      'console=ttyS0 quiet',
      '-serial',
      'stdio',
      '-display',
      'none',
    ];
  }

  describe(): string {
    return `\`${shellQuote(this.argv())}\``;
  }

  async run(): Promise<BootSample> {
    const { ctx } = this;
    const [bin, ...args] = this.argv();
    if (!bin) throw new Error('empty command line');
    const scanner = new ReadyScanner();
    let stderr = '';
    const u0 = bootClock();
    const t0 = performance.now();
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const gone = new Promise<void>((r) => child.once('close', () => r()));
    if (child.pid) ctx.ourPids.add(child.pid);
    child.stdout.on('data', (d: Buffer) => scanner.feed(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const undo = ctx.cleanup.add(`kill qemu-default ${child.pid}`, () => stopChild(child, gone));
    try {
      const hit = await withTimeout(
        Promise.race([scanner.ready, rejectOnExit(child, 'qemu', () => `${stderr.trim()} ${scanner.tail()}`)]),
        ctx.timeoutMs,
        'XENODE-READY from qemu-default',
      );
      const rssMiB = child.pid ? peakRssMiB(child.pid) : undefined;
      return {
        wall: (hit.at - t0) / 1000,
        uptime: hit.uptime,
        rssMiB,
        ...qemuFacts(child.pid, u0),
        toolCpu: 0,
      };
    } finally {
      await stopChild(child, gone);
      undo();
    }
  }
}
