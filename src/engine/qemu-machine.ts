// One domain's QEMU process, seen in domain terms: start/attach, run control,
// and guest events (poweroff, reboot, crash, exit). The toolstack never sees QMP.

import { EventEmitter } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { XenodeError } from '../errors.ts';
import type { DomainRunPaths } from './paths.ts';
import { findQemuOf, isOurQemu, lastQemuError, launchQemu, pidAlive, qemuLingers, startTime } from './process.ts';
import type { QemuCommand } from './qemu-args.ts';
import { QmpClient, type QmpEvent } from './qmp.ts';

export type GuestEvent =
  | { type: 'poweroff' }
  | { type: 'reboot' }
  /** The guest reset itself and QEMU restarted it in place (reboot action "reset"). */
  | { type: 'reset' }
  | { type: 'crash'; detail: string }
  | { type: 'stopped' }
  | { type: 'resumed' }
  | { type: 'exited'; detail: string };

/** What reattaching finds of a domain's QEMU after a daemon restart. */
export type Reattached =
  | { kind: 'attached'; machine: QemuMachine }
  /** No live QEMU of the run directory. */
  | { kind: 'gone' }
  /** Ours and alive, but it cannot be controlled: no run directory, no QMP socket, no answer. */
  | { kind: 'unreachable'; pid: number; why: string };

export interface MachineEvents {
  guest: [GuestEvent];
}

/** QEMU run states (query-status) as the toolstack needs them. */
export type MachineRunState = 'running' | 'paused' | 'prelaunch' | 'shutdown' | 'crashed' | 'other';

export interface VcpuThread {
  vcpu: number;
  tid: number;
}

export class QemuMachine extends EventEmitter<MachineEvents> {
  private exitedEmitted = false;
  /** What a guest reset does; must match the -action reboot= QEMU was started with. */
  rebootAction: 'reset' | 'shutdown' = 'shutdown';

  private constructor(
    readonly pid: number,
    readonly paths: DomainRunPaths,
    private readonly qmp: QmpClient,
  ) {
    super();
    qmp.on('event', (e) => this.onQmpEvent(e));
    qmp.on('close', () => void this.watchExit());
  }

  /** Launch QEMU and connect to it. On any failure nothing is left running. */
  static async start(cmd: QemuCommand, paths: DomainRunPaths, timeoutMs = 15_000): Promise<QemuMachine> {
    rmSync(paths.qmpSock, { force: true });
    rmSync(paths.serialSock, { force: true });
    const launched = await launchQemu(cmd, paths);
    const qmp = new QmpClient(paths.qmpSock);
    let exitedEarly = false;
    const exitWatch = launched.exited.then(() => {
      exitedEarly = true;
    });
    try {
      await Promise.race([
        qmp.connect({ retryUntil: Date.now() + timeoutMs }),
        exitWatch.then(() => {
          throw new Error('exited');
        }),
      ]);
    } catch (e) {
      qmp.close();
      if (!exitedEarly) {
        try {
          process.kill(launched.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await launched.exited;
      }
      const why = lastQemuError(paths) ?? (e instanceof Error ? e.message : String(e));
      throw new XenodeError('engine', `QEMU failed to start: ${why}`, { hint: `see ${paths.qemuLog}` });
    }
    const m = new QemuMachine(launched.pid, paths, qmp);
    void launched.exited.then(() => m.emitExited('QEMU exited'));
    return m;
  }

  /**
   * Find the QEMU an earlier daemon left for this run directory (by the pids
   * given, e.g. pid file and table, else by its command line) and reattach to it.
   */
  static async reattach(paths: DomainRunPaths, pids: ReadonlyArray<number | undefined>): Promise<Reattached> {
    const pid =
      pids.find((p): p is number => p !== undefined && isOurQemu(p, paths.runDir)) ?? findQemuOf(paths.runDir);
    if (pid === undefined) return { kind: 'gone' };
    if (!existsSync(paths.runDir)) return { kind: 'unreachable', pid, why: 'its run directory is gone' };
    if (!existsSync(paths.qmpSock)) return { kind: 'unreachable', pid, why: 'its QMP socket is gone' };
    const qmp = new QmpClient(paths.qmpSock);
    try {
      await qmp.connect({ timeoutMs: 5000 });
    } catch (e) {
      qmp.close();
      // It may have exited meanwhile: then it is simply gone.
      if (!isOurQemu(pid, paths.runDir)) return { kind: 'gone' };
      return { kind: 'unreachable', pid, why: `QMP does not answer (${e instanceof Error ? e.message : String(e)})` };
    }
    return { kind: 'attached', machine: new QemuMachine(pid, paths, qmp) };
  }

  /** Reattach to a QEMU left running by an earlier daemon. */
  static async attach(paths: DomainRunPaths, pid: number): Promise<QemuMachine | undefined> {
    if (!isOurQemu(pid, paths.runDir)) return undefined;
    const qmp = new QmpClient(paths.qmpSock);
    try {
      await qmp.connect({ timeoutMs: 5000 });
    } catch {
      return undefined;
    }
    return new QemuMachine(pid, paths, qmp);
  }

  private onQmpEvent(e: QmpEvent): void {
    const reason = typeof e.data?.reason === 'string' ? e.data.reason : '';
    switch (e.event) {
      case 'SHUTDOWN':
        if (reason === 'guest-shutdown') this.emit('guest', { type: 'poweroff' });
        else if (reason === 'guest-reset') this.emit('guest', { type: 'reboot' });
        else if (reason === 'guest-panic') this.emit('guest', { type: 'crash', detail: 'guest panic' });
        break;
      case 'RESET':
        if (e.data?.guest === true) this.emit('guest', { type: 'reset' });
        break;
      case 'GUEST_PANICKED':
        this.emit('guest', { type: 'crash', detail: 'guest panic' });
        break;
      case 'STOP':
        this.emit('guest', { type: 'stopped' });
        break;
      case 'RESUME':
        this.emit('guest', { type: 'resumed' });
        break;
    }
  }

  // After QMP closes, QEMU is exiting; we may not be its parent, so poll briefly.
  private async watchExit(): Promise<void> {
    // Until its files are closed too (see killQemu): a restart reuses its image.
    const start = startTime(this.pid);
    for (let i = 0; i < 500 && qemuLingers(this.pid, this.paths.runDir, start); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    this.emitExited('QEMU exited');
  }

  private emitExited(detail: string): void {
    if (this.exitedEmitted) return;
    this.exitedEmitted = true;
    this.qmp.close();
    this.emit('guest', { type: 'exited', detail });
  }

  get alive(): boolean {
    return !this.exitedEmitted && pidAlive(this.pid);
  }

  async runState(): Promise<MachineRunState> {
    const s = await this.qmp.execute<{ status: string }>('query-status');
    switch (s.status) {
      case 'running':
        return 'running';
      case 'paused':
      case 'postmigrate':
      case 'suspended':
        return 'paused';
      case 'prelaunch':
        return 'prelaunch';
      case 'shutdown':
        return 'shutdown';
      case 'guest-panicked':
      case 'internal-error':
        return 'crashed';
      default:
        return 'other';
    }
  }

  async resume(): Promise<void> {
    await this.qmp.execute('cont');
  }

  async pause(): Promise<void> {
    await this.qmp.execute('stop');
  }

  /** ACPI power button. */
  async powerButton(): Promise<void> {
    await this.qmp.execute('system_powerdown');
  }

  /** Hard reset and run again (in-place restart). */
  async resetAndRun(): Promise<void> {
    // The reset happens asynchronously in QEMU's main loop; `cont` before the
    // RESET event fails with "Resetting the Virtual Machine is required".
    // With -action reboot=shutdown even our own system_reset would become a
    // shutdown, so allow resets for this one and restore the policy afterwards.
    const reset = this.qmp.waitEvent('RESET', 10_000);
    if (this.rebootAction === 'shutdown') await this.qmp.execute('set-action', { reboot: 'reset' });
    try {
      await this.qmp.execute('system_reset');
      await reset;
    } finally {
      if (this.rebootAction === 'shutdown') await this.qmp.execute('set-action', { reboot: 'shutdown' });
    }
    const status = await this.runState();
    if (status !== 'running') await this.qmp.execute('cont');
  }

  async vcpuThreads(): Promise<VcpuThread[]> {
    const cpus = await this.qmp.execute<Array<{ 'cpu-index': number; 'thread-id': number }>>('query-cpus-fast');
    return cpus.map((c) => ({ vcpu: c['cpu-index'], tid: c['thread-id'] }));
  }

  /** Stop QEMU: quit over QMP, SIGKILL if it does not go. Resolves once it is gone. */
  async destroy(): Promise<void> {
    if (!this.exitedEmitted) {
      const gone = new Promise<void>((r) => {
        if (this.exitedEmitted) r();
        this.on('guest', (e) => {
          if (e.type === 'exited') r();
        });
      });
      try {
        await this.qmp.execute('quit', undefined, 2000);
      } catch {
        /* QMP dead or slow: fall through to SIGKILL */
      }
      const t = setTimeout(() => {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 3000);
      await gone;
      clearTimeout(t);
    }
  }

  /** Write the guest's memory to `file` as an ELF core (on_crash=coredump-*). */
  async dumpGuestMemory(file: string, timeoutMs = 60_000): Promise<void> {
    await this.qmp.execute('dump-guest-memory', { paging: false, protocol: `file:${file}` }, timeoutMs);
  }

  /** Let go of QMP without touching QEMU (daemon exit: the domain keeps running). */
  detach(): void {
    this.qmp.close();
  }

  /** Raw QMP for engine-internal helpers (balloon, migration); outside src/engine, use the methods above. */
  get qmpClient(): QmpClient {
    return this.qmp;
  }
}
