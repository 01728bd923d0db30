// The daemon's own log: JSON lines on disk plus a ring kept in memory for
// `xenode dmesg`. Tokens never reach it (callers log sponsor names only).

import { appendFileSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogEntry {
  time: number;
  level: LogLevel;
  msg: string;
  domid?: number;
}

export class DaemonLog {
  private ring: LogEntry[] = [];

  constructor(
    private readonly file: string | undefined,
    private readonly capacity = 2000,
    private readonly echo = false,
  ) {}

  write(level: LogLevel, msg: string, domid?: number): void {
    const e: LogEntry = { time: Date.now(), level, msg, domid };
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    const line = `${JSON.stringify(e)}\n`;
    if (this.file) {
      try {
        appendFileSync(this.file, line);
      } catch {
        /* a full disk must not take the daemon down */
      }
    }
    if (this.echo) process.stderr.write(`${formatLogEntry(e)}\n`);
  }

  info(msg: string, domid?: number): void {
    this.write('info', msg, domid);
  }
  warn(msg: string, domid?: number): void {
    this.write('warn', msg, domid);
  }
  error(msg: string, domid?: number): void {
    this.write('error', msg, domid);
  }

  entries(): LogEntry[] {
    return [...this.ring];
  }

  clear(): void {
    this.ring = [];
  }
}

export function formatLogEntry(e: LogEntry): string {
  const t = new Date(e.time).toISOString().replace('T', ' ').replace('Z', '');
  return `[${t}] ${e.level.toUpperCase().padEnd(5)} ${e.domid !== undefined ? `d${e.domid}: ` : ''}${e.msg}`;
}
