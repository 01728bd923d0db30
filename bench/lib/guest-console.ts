// A guest's serial console for benchmarks, over the daemon's WebSocket or a
// QEMU chardev socket: send shell commands, wait for output, and know when
// (performance.now()) the output that matched arrived.

import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { connectWhenReady } from './proc.ts';

export class GuestConsole {
  private text = '';
  /** Arrival time of the chunk that ended at each text length (ascending). */
  private marks: Array<{ end: number; at: number }> = [];
  private waiters: Array<() => void> = [];
  private seq = 0;
  closed = false;

  private constructor(
    private readonly write: (s: string) => void,
    private readonly end: () => void,
  ) {}

  static async overWebSocket(url: string): Promise<GuestConsole> {
    const ws = new WebSocket(url);
    const c = new GuestConsole(
      (s) => ws.send(Buffer.from(s)),
      () => ws.close(),
    );
    ws.on('message', (d: Buffer) => c.feed(d));
    ws.on('close', () => c.onClose());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return c;
  }

  /** Connect to a serial chardev socket (retrying until it exists). Keep reading: QEMU stalls otherwise. */
  static async overSocket(path: string, timeoutMs: number): Promise<GuestConsole> {
    let sock: Socket | undefined;
    const c = new GuestConsole(
      (s) => sock?.write(s),
      () => sock?.destroy(),
    );
    sock = await connectWhenReady(path, (d) => c.feed(d), { until: Date.now() + timeoutMs });
    sock.on('close', () => c.onClose());
    return c;
  }

  private feed(d: Buffer): void {
    this.text += d.toString('latin1');
    this.marks.push({ end: this.text.length, at: performance.now() });
    for (const w of this.waiters.splice(0)) w();
  }

  private onClose(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
  }

  get length(): number {
    return this.text.length;
  }

  send(s: string): void {
    this.write(s);
  }

  /** Wait for `re` in the output after `from`; `at` is when the matching bytes arrived. */
  async expect(re: RegExp, timeoutMs: number, from = 0): Promise<{ m: RegExpExecArray; at: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.text.slice(from));
      if (m) {
        const end = from + m.index + m[0].length;
        const at = this.marks.find((k) => k.end >= end)?.at ?? performance.now();
        return { m, at };
      }
      if (this.closed) throw new Error(`console closed while waiting for ${re}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; console: ${this.text.slice(-300)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** A marker the echoed command line cannot match (the quotes split it). */
  marker(kind: string): { typed: string; re: (tail?: string) => RegExp } {
    const n = ++this.seq;
    return { typed: `"__${kind}""${n}__"`, re: (tail = '') => new RegExp(`__${kind}${n}__${tail}`) };
  }

  /** Run a command and return its output. */
  async run(cmd: string, timeoutMs = 60_000): Promise<string> {
    const s = this.marker('S');
    const e = this.marker('E');
    const from = this.length;
    this.send(`echo ${s.typed}; ${cmd}; echo ${e.typed}\n`);
    const start = await this.expect(s.re('\\r?\\n'), timeoutMs, from);
    const endAt = from + start.m.index + start.m[0].length;
    const done = await this.expect(e.re(), timeoutMs, endAt);
    return this.text
      .slice(endAt, endAt + done.m.index)
      .replace(/\r/g, '')
      .trim();
  }

  close(): void {
    this.end();
  }
}
