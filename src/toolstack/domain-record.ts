// What xenoded records about a domain: one row of the domain table, also
// copied into the domain's run directory. Its own module so that both the
// table and the run directories use it without importing each other.

import type { DomainConfig } from '../config/types.ts';

/** The name suffix of a domain arriving by migration (xl's rename dance); core
 *  because crash recovery must strip it without knowing the migration feature. */
export const INCOMING_SUFFIX = '--incoming';

export type DomainState = 'creating' | 'running' | 'paused' | 'shutdown' | 'crashed' | 'dying';
export type ShutdownReason = 'poweroff' | 'reboot' | 'crash' | 'watchdog' | 'suspend';

export interface BootInfo {
  accel: 'kvm' | 'tcg';
  accelReason: string;
  machine: string;
  /** QEMU -cpu model; absent in records from before it was kept. */
  cpu?: string;
  kernel: string;
  initrd?: string;
  cmdline: string;
  qemuBinary: string;
  /** The template this domain's QEMU started from instead of booting (a start point's label). */
  template?: string;
}

export interface DomainRecord {
  domid: number;
  uuid: string;
  name: string;
  sponsor: string;
  config: DomainConfig;
  state: DomainState;
  shutdownReason?: ShutdownReason;
  pid?: number;
  runDir: string;
  /** ms since epoch when the current QEMU started running the guest. */
  startTime: number;
  /** How often the domain was restarted in place (on_reboot=restart). */
  restarts?: number;
  boot?: BootInfo;
  /** mem-set target and mem-max in MiB. */
  targetMiB: number;
  maxMiB: number;
  /** What the guest really has (balloon + hot-plugged), KiB; kept current by the memory controller. */
  actualKiB?: number;
}
