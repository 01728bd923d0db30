// A switch port for one QEMU NIC: QEMU listens (`-netdev stream,server=on`)
// and the switch connects, so a restarted switch simply connects again (QEMU
// 7.2 has no client-side reconnect=). Each frame on the wire is a 4-byte
// big-endian length and the raw Ethernet frame. Out of rate credit, the port
// stops reading the socket (QEMU's writes then block, and virtio-net stops
// taking the guest's transmit queue) until the core calls resume().

import { createConnection, type Socket } from 'node:net';
import type { MacInt } from './frame.ts';
import type { PortInfo } from './policy.ts';
import { type PortCounters, type SwitchCore, type SwitchPort, sourceMacOf, zeroCounters } from './switch-core.ts';

/** QEMU's stream backend reads at most NET_BUFSIZE (4096 + 65536) bytes per frame. */
export const MAX_STREAM_FRAME = 4096 + 65536;
/** Bytes queued toward a port before further frames are dropped instead of buffered. */
const HIGH_WATER = 512 * 1024;
const RETRY_MIN_MS = 20;
const RETRY_MAX_MS = 1000;

export class StreamPort implements SwitchPort {
  readonly counters: PortCounters = zeroCounters();
  readonly sourceMac: MacInt | undefined;
  connects = 0;
  private sock?: Socket;
  private up = false;
  private pending?: Buffer;
  private stopped = false;
  private retryMs = RETRY_MIN_MS;
  private retryTimer?: NodeJS.Timeout;
  private corked = false;
  /** Out of rate credit: `pending` starts with the refused frame and the socket is paused. */
  private holding = false;
  private waiters: Array<() => void> = [];

  constructor(
    readonly info: PortInfo,
    readonly path: string,
    private readonly core: SwitchCore,
    private readonly log: (msg: string) => void = () => {},
  ) {
    this.sourceMac = sourceMacOf(info);
  }

  start(): void {
    this.connect();
  }

  get connected(): boolean {
    return this.up;
  }

  /** Waiting for rate credit (not reading from QEMU). */
  get held(): boolean {
    return this.holding;
  }

  /** Resolves true once the link is up, false after `timeoutMs`. */
  whenConnected(timeoutMs: number): Promise<boolean> {
    if (this.up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.up), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private connect(): void {
    if (this.stopped) return;
    const s = createConnection({ path: this.path });
    this.sock = s;
    s.setNoDelay?.(true);
    s.on('connect', () => {
      this.up = true;
      this.connects++;
      this.retryMs = RETRY_MIN_MS;
      this.pending = undefined;
      if (this.connects > 1) this.log(`port ${this.info.id}: link up again (${this.connects})`);
      for (const w of this.waiters.splice(0)) w();
    });
    s.on('data', (d: Buffer) => this.onData(d));
    s.on('error', () => {
      /* 'close' follows; ENOENT/ECONNREFUSED while QEMU is not listening yet */
    });
    s.on('close', () => {
      if (this.sock !== s) return;
      const wasUp = this.up;
      this.up = false;
      this.sock = undefined;
      this.corked = false;
      this.holding = false;
      this.pending = undefined;
      if (this.stopped) return;
      if (wasUp) this.log(`port ${this.info.id}: link down; reconnecting`);
      this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    });
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    if (!this.holding) this.consume();
  }

  resume(): void {
    if (!this.holding) return;
    this.holding = false;
    this.consume();
    if (!this.holding) this.sock?.resume();
  }

  /** Hand every whole frame in `pending` to the core, until it is empty or the core says wait. */
  private consume(): void {
    const buf = this.pending;
    if (!buf) return;
    this.pending = undefined;
    const n = buf.length;
    let off = 0;
    while (n - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len > MAX_STREAM_FRAME) {
        // Out of sync: drop the link, QEMU listens again and framing restarts.
        this.log(`port ${this.info.id}: bad frame length ${len}; resetting the link`);
        this.counters.errors++;
        this.sock?.destroy();
        return;
      }
      if (n - off - 4 < len) break;
      // Frames are views of the chunk, which Node never reuses: no copy on the way through.
      if (!this.core.input(this, buf.subarray(off + 4, off + 4 + len))) {
        this.holding = true;
        this.pending = buf.subarray(off);
        this.sock?.pause();
        return;
      }
      off += 4 + len;
    }
    if (off < n) this.pending = buf.subarray(off);
  }

  send(frame: Uint8Array): boolean {
    const s = this.sock;
    if (!this.up || !s || s.writableLength > HIGH_WATER) return false;
    if (!this.corked) {
      // Everything sent to this port in this turn goes out in one writev.
      this.corked = true;
      s.cork();
      process.nextTick(() => {
        this.corked = false;
        s.uncork();
      });
    }
    const hdr = Buffer.allocUnsafe(4);
    hdr.writeUInt32BE(frame.length, 0);
    s.write(hdr);
    s.write(frame);
    return true;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.sock?.destroy();
    this.sock = undefined;
    this.up = false;
  }
}
