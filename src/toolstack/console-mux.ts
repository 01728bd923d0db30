// A domain's console: the serial stream kept in a ring buffer (scroll-back for
// late attachers) and fanned out to every attached client; input from any
// client goes to the guest. A client that stops reading is dropped once its
// backlog passes a limit, rather than buffered for without end. The console
// log on disk is written here, from the bytes the daemon read: QEMU's own
// chardev logfile= logs a byte twice whenever its socket write fails with
// EAGAIN (a slow reader) and the UART retries it, so it is not used.

import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
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
  private logFd?: number;

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

  /** Read the guest's serial port; with `logPath`, append every byte read to that file. */
  async attachSerial(path: string, logPath?: string): Promise<void> {
    const s = new SerialPort(path);
    await s.connect();
    this.serial = s;
    this.closeLog();
    // Appends, synchronously, so the file holds exactly the stream in its order
    // (others append notes to it too: restore, migration).
    if (logPath !== undefined) this.logFd = openSync(logPath, 'a', 0o600);
    s.on('data', (d) => {
      this.log(d);
      this.push(d);
      for (const c of this.clients) this.deliver(c, d);
    });
  }

  private log(d: Buffer): void {
    if (this.logFd === undefined) return;
    try {
      for (let off = 0; off < d.length; ) off += writeSync(this.logFd, d, off);
    } catch {
      // A full disk loses log bytes, never the console itself.
    }
  }

  private closeLog(): void {
    if (this.logFd === undefined) return;
    try {
      closeSync(this.logFd);
    } catch {
      /* already closed */
    }
    this.logFd = undefined;
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
    this.closeLog();
  }
}
