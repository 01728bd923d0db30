// A minimal xenstored wire-protocol client for tests, written from xs_wire.h
// independently of Xenode's codec: 16-byte little-endian header (type, req_id,
// tx_id, len) and the payload. Watch events are queued apart from replies.

import { connect, type Socket } from 'node:net';

export const XS = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;

export interface Frame {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

export function frame(type: number, reqId: number, txId: number, payload: Buffer | string, len?: number): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const h = Buffer.alloc(16);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(reqId, 4);
  h.writeUInt32LE(txId, 8);
  h.writeUInt32LE(len ?? body.length, 12);
  return Buffer.concat([h, body]);
}

/** Splits a byte stream into frames (trusting the server's lengths). */
export class FrameReader {
  private buf = Buffer.alloc(0);
  push(d: Buffer): Frame[] {
    this.buf = Buffer.concat([this.buf, d]);
    const out: Frame[] = [];
    while (this.buf.length >= 16) {
      const len = this.buf.readUInt32LE(12);
      if (this.buf.length < 16 + len) break;
      out.push({
        type: this.buf.readUInt32LE(0),
        reqId: this.buf.readUInt32LE(4),
        txId: this.buf.readUInt32LE(8),
        payload: Buffer.from(this.buf.subarray(16, 16 + len)),
      });
      this.buf = this.buf.subarray(16 + len);
    }
    return out;
  }
}

/** `a\0b\0` → ['a', 'b'] */
export function strs(p: Buffer): string[] {
  const s = p.toString('latin1');
  const parts = s.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

export class XsClient {
  private readonly reader = new FrameReader();
  private replies: Frame[] = [];
  readonly events: Array<{ path: string; token: string }> = [];
  private wake?: () => void;
  private nextReq = 1;
  closed = false;

  private constructor(readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      for (const f of this.reader.push(d)) {
        if (f.type === XS.WATCH_EVENT) {
          const [path = '', token = ''] = strs(f.payload);
          this.events.push({ path, token });
        } else this.replies.push(f);
      }
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => {});
  }

  static open(path: string): Promise<XsClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(new XsClient(s)));
      s.once('error', reject);
    });
  }

  private async until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.closed) throw new Error(`connection closed waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${what}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  /** Sends one request and waits for its reply (matched by req_id). */
  async call(type: number, payload: Buffer | string, txId = 0): Promise<Frame> {
    const reqId = this.nextReq++;
    this.sock.write(frame(type, reqId, txId, payload));
    return this.reply(reqId);
  }

  /** Replies received so far, in arrival order (taken). */
  takeReplies(): Frame[] {
    return this.replies.splice(0);
  }

  /** Waits for the reply to a request sent by hand. */
  async reply(reqId: number): Promise<Frame> {
    let got: Frame | undefined;
    await this.until(() => {
      const i = this.replies.findIndex((r) => r.reqId === reqId);
      if (i >= 0) got = this.replies.splice(i, 1)[0];
      return got !== undefined;
    }, `reply to request ${reqId}`);
    return got as Frame;
  }

  /** 'OK', a value, or 'ERR:ENOENT'. */
  async text(type: number, payload: Buffer | string, txId = 0): Promise<string> {
    const f = await this.call(type, payload, txId);
    const s = f.payload.toString('utf8');
    if (f.type === XS.ERROR) return `ERR:${s.replace(/\0$/, '')}`;
    return s.replace(/\0$/, '');
  }

  async event(pred: (e: { path: string; token: string }) => boolean, timeoutMs = 5000) {
    let hit: { path: string; token: string } | undefined;
    await this.until(
      () => {
        const i = this.events.findIndex(pred);
        if (i >= 0) hit = this.events.splice(i, 1)[0];
        return hit !== undefined;
      },
      'watch event',
      timeoutMs,
    );
    return hit as { path: string; token: string };
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await this.until(() => this.closed, 'close', timeoutMs);
  }

  close(): void {
    this.sock.destroy();
  }
}
