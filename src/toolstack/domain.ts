// One domain at runtime: its persistent record, its QEMU machine and its console.

import { EventEmitter } from 'node:events';
import type { QemuMachine } from '../engine/qemu-machine.ts';
import { ConsoleMux } from './console-mux.ts';
import type { DomainRecord, DomainState } from './domain-table.ts';
import { threadStat } from './proc-stats.ts';

export interface DomainEvents {
  change: [DomainRecord];
  gone: [];
}

// Allowed lifecycle transitions; anything else is a bug and is refused.
const TRANSITIONS: Record<DomainState, DomainState[]> = {
  creating: ['running', 'paused', 'dying'],
  running: ['paused', 'shutdown', 'crashed', 'dying', 'running'],
  paused: ['running', 'shutdown', 'crashed', 'dying'],
  shutdown: ['running', 'dying'],
  crashed: ['running', 'dying'],
  dying: [],
};

export class Domain extends EventEmitter<DomainEvents> {
  machine?: QemuMachine;
  readonly console = new ConsoleMux();
  vcpuTids: number[] = [];
  /** Set while the toolstack itself is stopping QEMU, so its exit is not a crash. */
  expectingExit = false;
  /** When the guest last reset, to fold the firmware's extra resets into one reboot. */
  lastReset = 0;
  /** Serialises lifecycle actions on this domain. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(public rec: DomainRecord) {
    super();
  }

  get domid(): number {
    return this.rec.domid;
  }
  get name(): string {
    return this.rec.name;
  }

  canTransition(to: DomainState): boolean {
    return TRANSITIONS[this.rec.state].includes(to);
  }

  /** Run lifecycle actions one at a time per domain. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  cpuSeconds(): number {
    if (!this.rec.pid) return 0;
    let total = 0;
    for (const tid of this.vcpuTids) total += threadStat(this.rec.pid, tid)?.cpuSeconds ?? 0;
    return total;
  }

  /** xl's six state letters: r b p s <reason> d. */
  stateLetters(): string {
    const s = ['-', '-', '-', '-', '-', '-'];
    switch (this.rec.state) {
      case 'running': {
        const running = this.rec.pid
          ? this.vcpuTids.some((t) => threadStat(this.rec.pid ?? 0, t)?.state === 'R')
          : false;
        s[running ? 0 : 1] = running ? 'r' : 'b';
        break;
      }
      case 'paused':
      case 'creating':
        s[2] = 'p';
        break;
      case 'shutdown':
        s[3] = 's';
        s[4] = this.rec.shutdownReason === 'reboot' ? 'r' : this.rec.shutdownReason === 'suspend' ? 's' : '-';
        break;
      case 'crashed':
        s[3] = 's';
        s[4] = 'c';
        break;
      case 'dying':
        s[5] = 'd';
        break;
    }
    return s.join('');
  }

  /** Wait until `pred` holds for the record, the domain is gone, or time runs out. */
  waitFor(pred: (r: DomainRecord | undefined) => boolean, timeoutMs: number): Promise<boolean> {
    if (pred(this.rec)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onChange = (r: DomainRecord) => {
        if (pred(r)) done(true);
      };
      const onGone = () => done(pred(undefined));
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.off('change', onChange);
        this.off('gone', onGone);
        resolve(v);
      };
      this.on('change', onChange);
      this.on('gone', onGone);
    });
  }
}
