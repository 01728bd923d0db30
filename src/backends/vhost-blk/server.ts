// The backend's event loop: the vhost-user socket QEMU connects to (one
// frontend at a time; QEMU reconnects after a restart of either side), and
// the queues' kick eventfds. Node cannot wait on an eventfd or receive
// descriptors, so one poll(2) runs on a worker thread and wakes this loop;
// messages are read with recvmsg(2), their descriptors with them.

import { existsSync, unlinkSync } from 'node:fs';
import type { VhostBlkDevice } from './device.ts';
import {
  acceptConn,
  closeFd,
  drainEventFd,
  listenUnix,
  newEventFd,
  POLLERR,
  POLLHUP,
  POLLNVAL,
  pollAsync,
  pollHere,
  pollSync,
  recvWithFds,
  sendWithFds,
  signalEventFd,
} from './libc.ts';
import { FLAG_VERSION, HEADER_SIZE, MAX_PAYLOAD, type Message, NAMES } from './protocol.ts';

/** The longest one poll(2) waits (the loop then looks again). */
const POLL_MAX_MS = 500;
/**
 * The longest one poll(2) on the main thread waits: the control socket,
 * timers and signals are served between two (at most this late).
 */
const POLL_HERE_MS = 50;
/** How long the rest of a message may take once its first bytes arrived. */
const MESSAGE_TIMEOUT_MS = 2000;

export interface ServerOptions {
  socketPath: string;
  device: VhostBlkDevice;
  log: (msg: string) => void;
  /** Exit after this long without a frontend (0: never). */
  idleExitMs: number;
  /** Log every message (XENODE_BLK_TRACE=1). */
  trace?: boolean;
}

class Closed extends Error {}

export class BlkServer {
  private listenFd = -1;
  private conn = -1;
  private readonly wakeFd = newEventFd();
  private stopping = false;
  private idleSince = Date.now();

  constructor(private readonly o: ServerOptions) {}

  listen(): void {
    if (existsSync(this.o.socketPath)) unlinkSync(this.o.socketPath);
    this.listenFd = listenUnix(this.o.socketPath);
  }

  stop(): void {
    this.stopping = true;
    signalEventFd(this.wakeFd);
  }

  async run(): Promise<void> {
    while (!this.stopping) {
      const kicks = this.o.device.kickFds();
      const fds = [this.wakeFd, this.listenFd, ...(this.conn >= 0 ? [this.conn] : []), ...kicks.map((k) => k.fd)];
      // Nothing running on the worker threads (no request in flight): wait here, so a
      // kick costs no hand-off (bench/io-blk-qd1.ts: ~10 context switches per request
      // at queue depth 1 with the wait on a worker). Else on a worker, so the event
      // loop takes the I/O completions meanwhile. Never an endless poll:
      // process.exit() joins the worker threads, and would wait for it.
      const here = this.o.device.inFlight === 0;
      const ready = here ? pollHere(fds, POLL_HERE_MS) : await pollAsync(fds, POLL_MAX_MS);
      if (this.conn < 0 && this.o.idleExitMs > 0 && Date.now() - this.idleSince > this.o.idleExitMs) {
        this.o.log(`no frontend for ${Math.round(this.o.idleExitMs / 1000)} s; exiting`);
        return;
      }
      for (const r of ready) {
        if (r.fd === this.wakeFd) drainEventFd(this.wakeFd);
        else if (r.fd === this.listenFd) this.accept();
        else if (r.fd === this.conn) {
          if (r.revents & (POLLERR | POLLNVAL)) await this.dropConnection('socket error');
          else await this.readMessages(r.revents & POLLHUP ? 'hangup' : undefined);
        } else {
          const k = kicks.find((x) => x.fd === r.fd);
          if (k) {
            drainEventFd(k.fd);
            this.o.device.kick(k.queue);
          }
        }
      }
      // The event loop's turn: the control socket, timers, signals.
      if (here) await new Promise((r) => setImmediate(r));
    }
  }

  private accept(): void {
    const fd = acceptConn(this.listenFd);
    if (fd < 0) return;
    if (this.conn >= 0) {
      // One frontend per disk: a second one would drive the same rings.
      this.o.log('refused a second frontend connection');
      closeFd(fd);
      return;
    }
    this.conn = fd;
    this.o.device.connect();
    this.o.log('frontend connected');
  }

  private async dropConnection(why: string): Promise<void> {
    if (this.conn < 0) return;
    const fd = this.conn;
    this.conn = -1;
    this.o.log(`frontend disconnected (${why})`);
    await this.o.device.disconnect();
    closeFd(fd);
    this.idleSince = Date.now();
  }

  /** Every whole message waiting on the connection, handled in order. */
  private async readMessages(hangup?: string): Promise<void> {
    for (;;) {
      let m: Message | undefined;
      try {
        m = this.readMessage();
      } catch (e) {
        await this.dropConnection(e instanceof Closed ? 'closed' : (e as Error).message);
        return;
      }
      if (!m) {
        if (hangup) await this.dropConnection(hangup);
        return;
      }
      if (this.o.trace)
        this.o.log(`<- ${NAMES[m.request] ?? m.request} flags ${m.flags} ${m.payload.length} B fds ${m.fds.length}`);
      const conn = this.conn;
      await this.o.device.handle(m, (data, fds) => {
        if (conn === this.conn) sendWithFds(conn, data, fds);
      });
    }
  }

  /** One message, or undefined when none has started to arrive. Throws Closed / on a protocol error. */
  private readMessage(): Message | undefined {
    const first = recvWithFds(this.conn, HEADER_SIZE);
    if (!first) return undefined;
    if (first.data.length === 0) throw new Closed();
    const fds = [...first.fds];
    try {
      const header = this.rest(first.data, HEADER_SIZE, fds);
      const request = header.readUInt32LE(0);
      const flags = header.readUInt32LE(4);
      const size = header.readUInt32LE(8);
      if ((flags & 0x3) !== FLAG_VERSION) throw new Error(`message version ${flags & 0x3}`);
      if (size > MAX_PAYLOAD) throw new Error(`message payload of ${size} bytes`);
      const payload = size === 0 ? Buffer.alloc(0) : this.rest(Buffer.alloc(0), size, fds);
      return { request, flags, payload, fds };
    } catch (e) {
      for (const fd of fds) closeFd(fd);
      throw e;
    }
  }

  /** Read until `have` is `n` bytes long. */
  private rest(have: Buffer, n: number, fds: number[]): Buffer {
    let buf = have;
    const deadline = Date.now() + MESSAGE_TIMEOUT_MS;
    while (buf.length < n) {
      const r = recvWithFds(this.conn, n - buf.length);
      if (!r) {
        if (Date.now() > deadline) throw new Error('message cut short');
        pollSync(this.conn, 100);
        continue;
      }
      if (r.data.length === 0) throw new Closed();
      fds.push(...r.fds);
      buf = Buffer.concat([buf, r.data]);
    }
    return buf;
  }
}
