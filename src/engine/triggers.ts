// QMP for xl's trigger, sysrq and qemu-monitor-command: an NMI, keys on the
// guest's keyboard, and a line for QEMU's human monitor.

import type { QemuMachine } from './qemu-machine.ts';

/** Longest human-monitor command line accepted (QEMU's own readline buffer is 4 KiB). */
export const HMP_MAX_CHARS = 4096;

/** SysRq letters the keyboard can send: one of a-z or 0-9 (QEMU qcodes of the same name). */
export function isSysrqKey(key: string): boolean {
  return /^[a-z0-9]$/.test(key);
}

export class MachineTriggers {
  constructor(private readonly m: QemuMachine) {}

  private get qmp() {
    return this.m.qmpClient;
  }

  /** A non-maskable interrupt on every vCPU (xl trigger nmi). */
  async injectNmi(): Promise<void> {
    await this.qmp.execute('inject-nmi');
  }

  /**
   * Alt+SysRq+key on the emulated PS/2 keyboard: the guest kernel's magic
   * SysRq handler sees it as a Xen guest sees control/sysrq.
   */
  async sysrq(key: string): Promise<void> {
    if (!isSysrqKey(key)) throw new Error(`not a SysRq key: ${key}`);
    const keys = ['alt', 'sysrq', key].map((k) => ({ type: 'qcode', data: k }));
    await this.qmp.execute('send-key', { keys, 'hold-time': 200 });
  }

  /** One human-monitor line; QEMU's answer text (the admin's qemu-monitor-command). */
  async humanMonitor(line: string): Promise<string> {
    if (line.length > HMP_MAX_CHARS) throw new Error('monitor command too long');
    return this.qmp.execute<string>('human-monitor-command', { 'command-line': line }, 30_000);
  }
}
