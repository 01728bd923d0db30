// A domain's console: the serial stream kept in a ring buffer (scroll-back for
// late attachers) and fanned out to every attached client; input from any
// client goes to the guest. A client that stops reading is dropped once its
// backlog passes a limit, rather than buffered for without end.

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { SerialPort } from '../engine/serial.ts';

export interface ConsoleClient {
  send(data: Buffer): void;
  /** Bytes sent to this client and not yet taken by it (a WebSocket's bufferedAmount). */
  backlog?(): number;
  /** Called once when the mux drops the client for not reading; it should disconnect. */
  dropped?(): void;
}

/** A client that lets more than this pile up unread is dropped, so a reader that never reads costs a bounded amount. */
export const CONSOLE_MAX_BACKLOG = 1024 * 1024;

export class ConsoleMux {
  private chunks: Buffer[] = [];
  private size = 0;
  private clients = new Set<ConsoleClient>();
  private serial?: SerialPort;

  constructor(
    private readonly capacity = 256 * 1024,
    private readonly maxBacklog = CONSOLE_MAX_BACKLOG,
  ) {}

  /** Fill the ring from the tail of QEMU's console log (after a daemon restart). */
  preloadFromLog(logPath: string): void {
    try {
      const st = statSync(logPath);
      const len = Math.min(st.size, this.capacity);
      const buf = Buffer.alloc(len);
      const fd = openSync(logPath, 'r');
      readSync(fd, buf, 0, len, st.size - len);
      closeSync(fd);
      this.push(buf);
    } catch {
      /* no log yet */
    }
  }

  async attachSerial(path: string): Promise<void> {
    const s = new SerialPort(path);
    await s.connect();
    this.serial = s;
    s.on('data', (d) => {
      this.push(d);
      for (const c of this.clients) this.deliver(c, d);
    });
  }

  private deliver(c: ConsoleClient, d: Buffer): void {
    if ((c.backlog?.() ?? 0) > this.maxBacklog) {
      this.clients.delete(c);
      c.dropped?.();
      return;
    }
    c.send(d);
  }

  private push(d: Buffer): void {
    this.chunks.push(d);
    this.size += d.length;
    while (this.size > this.capacity && this.chunks.length > 1) {
      const first = this.chunks.shift();
      if (first) this.size -= first.length;
    }
  }

  scrollback(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Attach a client; it first receives the scroll-back. Returns a detach function. */
  attach(client: ConsoleClient, withScrollback = true): () => void {
    if (withScrollback && this.size > 0) client.send(this.scrollback());
    this.clients.add(client);
    return () => this.clients.delete(client);
  }

  input(data: Buffer | string): void {
    this.serial?.write(data);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  close(): void {
    this.serial?.close();
    this.serial = undefined;
  }
}
