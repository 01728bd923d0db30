// What every boot contender provides, and the context they share.

import type { Cleanup } from './cleanup.ts';

export interface BootSample {
  /** Seconds from starting the command to the guest's ready line. */
  wall: number;
  /** The guest's uptime (from its ready line), in seconds. */
  uptime: number;
  /** QEMU's VmHWM right after the ready line, in MiB. */
  rssMiB?: number;
  /** QEMU's resident memory at the ready line by kind (MiB): anonymous (TCG code cache, heap), guest RAM (shared memfd), files. */
  rssParts?: { anon: number; shmem: number; file: number };
  /**
   * Seconds between QEMU writing the ready line to the console log (its chardev logfile=) and
   * the contender's reader seeing it: the console path's latency (xenode: daemon, WebSocket, CLI).
   */
  consoleLag?: number;
  /** CPU seconds QEMU used until the ready line (all its threads; 10 ms resolution). */
  qemuCpu?: number;
  /** CPU seconds the toolstack's own processes (CLI, daemons) used from command start to ready. */
  toolCpu?: number;
  /** Seconds from starting the command until QEMU's process started (10–20 ms resolution). */
  qemuExec?: number;
  /** Seconds from starting the command until the toolstack reported the domain running (xenode only). */
  created?: number;
}

export interface BenchContext {
  /** Repository root (for bin/xenode). */
  root: string;
  /** Private, world-readable temp dir for this bench run. */
  tmp: string;
  memoryMiB: number;
  vcpus: number;
  timeoutMs: number;
  cleanup: Cleanup;
  /** QEMU pids this bench started (to tell them from other people's). */
  ourPids: Set<number>;
  log: (s: string) => void;
}

export interface Contender {
  id: string;
  /** One line saying what exactly runs. */
  describe(): string;
  /** Informational rows are reported apart from the goals. */
  informational: boolean;
  /** One boot, from command start to ready, then teardown. Throws on failure (after cleaning up). */
  run(tag: string): Promise<BootSample>;
  /** Once, after all rounds. */
  close?(): Promise<void>;
}
