// QMP client: one JSON object per line each way. Replies are matched by id;
// events may arrive between a request and its reply and are routed separately.

import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { sendWithFd, socketFd } from './fd-passing.ts';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** QEMU answered a command with an error. */
/** The longest QMP line accepted (query-qmp-schema, the largest reply Xenode asks for, is about 200 KB). */
const MAX_QMP_LINE = 64 * 2 ** 20;

export class QmpError extends Error {
  constructor(
    readonly errorClass: string,
    readonly desc: string,
    readonly command: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

/** The QMP connection failed, closed or timed out. */
export class QmpConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpConnectionError';
  }
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface QmpClientEvents {
  event: [QmpEvent];
  close: [];
}

function commandLine(id: number, command: string, args: Record<string, unknown> | undefined): string {
  const msg: Record<string, unknown> = { execute: command, id };
  if (args) msg.arguments = args;
  return `${JSON.stringify(msg)}\n`;
}

export class QmpClient extends EventEmitter<QmpClientEvents> {
  private sock?: Socket;
  private buf = '';
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private greetingResolve?: (v: unknown) => void;
  private closed = false;
  version?: { major: number; minor: number; micro: number };

  constructor(
    readonly path: string,
    readonly defaultTimeoutMs = 10_000,
  ) {
    super();
  }

  /** Connect, read the greeting and negotiate capabilities. Retries while QEMU creates the socket. */
  async connect(opts: { timeoutMs?: number; retryUntil?: number } = {}): Promise<void> {
    const deadline = opts.retryUntil ?? Date.now();
    for (;;) {
      try {
        await this.connectOnce(opts.timeoutMs ?? this.defaultTimeoutMs);
        break;
      } catch (e) {
        if (Date.now() >= deadline) throw e;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    await this.execute('qmp_capabilities');
  }

  private connectOnce(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = createConnection({ path: this.path });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new QmpConnectionError(`QMP greeting timed out on ${this.path}`));
      }, timeoutMs);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(new QmpConnectionError(`cannot connect to QMP socket ${this.path}: ${e.message}`));
      });
      this.greetingResolve = (g) => {
        clearTimeout(timer);
        const v = (g as { QMP?: { version?: { qemu?: { major: number; minor: number; micro: number } } } }).QMP;
        this.version = v?.version?.qemu;
        sock.removeAllListeners('error');
        sock.on('error', () => this.handleClose());
        // Only a connection that got its greeting counts; failed retries must not mark us closed.
        sock.on('close', () => this.handleClose());
        resolve();
      };
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => this.onData(d));
      this.sock = sock;
    });
  }

  private onData(d: string): void {
    // Search only the new chunk: rescanning what was buffered would make a long line cost its square.
    let nl = d.indexOf('\n');
    if (nl < 0) {
      this.buf += d;
      // A QEMU that never ends its line (a broken or subverted one) must not grow the daemon without end.
      if (this.buf.length > MAX_QMP_LINE) {
        this.buf = '';
        this.sock?.destroy(new Error(`QMP reply longer than ${MAX_QMP_LINE} bytes`));
      }
      return;
    }
    let rest = this.buf + d;
    nl += this.buf.length;
    this.buf = '';
    while (nl >= 0) {
      const line = rest.slice(0, nl).trim();
      rest = rest.slice(nl + 1);
      if (line) this.onMessage(line);
      if (this.closed) return;
      nl = rest.indexOf('\n');
    }
    this.buf = rest;
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // QEMU never sends non-JSON on QMP; ignore rather than crash the daemon
    }
    // Nor a bare string, number or null (the `in` below would throw out of the socket handler).
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return;
    if ('QMP' in msg) {
      this.greetingResolve?.(msg);
      this.greetingResolve = undefined;
      return;
    }
    if ('event' in msg) {
      this.emit('event', msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === 'number' ? msg.id : undefined;
    const p = id !== undefined ? this.pending.get(id) : undefined;
    if (!p || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(err.class ?? 'GenericError', err.desc ?? 'unknown error', p.command));
    } else {
      p.resolve(msg.return);
    }
  }

  private handleClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new QmpConnectionError(`QMP connection closed during ${p.command}`));
      this.pending.delete(id);
    }
    this.emit('close');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.defaultTimeoutMs): Promise<T> {
    const sock = this.sock;
    if (!sock || this.closed) return Promise.reject(new QmpConnectionError(`QMP not connected (${command})`));
    const id = this.nextId++;
    const reply = this.expectReply<T>(id, command, timeoutMs);
    sock.write(commandLine(id, command, args));
    return reply;
  }

  /**
   * execute() with descriptor `fd` attached to the command's bytes (SCM_RIGHTS),
   * as getfd wants it. Earlier commands are written out first, so the
   * descriptor cannot land with another command's bytes.
   */
  async executeWithFd<T = unknown>(
    command: string,
    args: Record<string, unknown> | undefined,
    fd: number,
    timeoutMs = this.defaultTimeoutMs,
  ): Promise<T> {
    const sock = this.sock;
    if (!sock || this.closed) throw new QmpConnectionError(`QMP not connected (${command})`);
    const id = this.nextId++;
    const data = Buffer.from(commandLine(id, command, args));
    const reply = this.expectReply<T>(id, command, timeoutMs);
    reply.catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) break;
      // Node's own queue first, then one sendmsg of ours (EAGAIN: QEMU's buffer is full, wait).
      const n = sock.writableLength === 0 ? sendWithFd(socketFd(sock), data, fd) : -1;
      if (n >= 0) {
        if (n < data.length) sock.write(data.subarray(n));
        break;
      }
      if (Date.now() > deadline) throw new QmpConnectionError(`QMP ${command}: socket stayed busy`);
      await new Promise((r) => setTimeout(r, 1));
    }
    return reply;
  }

  private expectReply<T>(id: number, command: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpConnectionError(`QMP ${command} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
    });
  }

  /** Resolve on the first event named `name` for which `match` holds. */
  waitEvent(name: string, timeoutMs: number, match: (e: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event === name && match(e)) {
          cleanup();
          resolve(e);
        }
      };
      const onClose = () => {
        cleanup();
        reject(new QmpConnectionError(`QMP closed while waiting for ${name}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new QmpConnectionError(`timed out waiting for ${name}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      this.on('event', onEvent);
      this.on('close', onClose);
    });
  }

  close(): void {
    this.sock?.destroy();
    this.handleClose();
  }
}
