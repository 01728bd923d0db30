// Framing and payload parsing. The decoder is fed whatever the transport reads
// and hands out whole messages; it never holds more than one message's bytes
// plus the chunks it was given, and refuses a header announcing more than
// PAYLOAD_MAX before waiting for (or allocating) the body.

import { HEADER_SIZE, PAYLOAD_MAX, type WireMessage } from './protocol.ts';

/** The stream broke the protocol; xenstored drops such a connection, and so must the caller. */
export class WireProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireProtocolError';
  }
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private offset = 0;
  private total = 0;
  private broken: WireProtocolError | undefined;
  private readonly header = Buffer.alloc(HEADER_SIZE);

  constructor(private readonly maxPayload = PAYLOAD_MAX) {}

  /** Bytes received and not yet returned as messages. */
  get buffered(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** The next whole message, or undefined until more bytes arrive. Throws WireProtocolError for good. */
  next(): WireMessage | undefined {
    if (this.broken) throw this.broken;
    if (this.total < HEADER_SIZE) return undefined;
    this.peek(this.header, HEADER_SIZE);
    const len = this.header.readUInt32LE(12);
    if (len > this.maxPayload) {
      this.broken = new WireProtocolError(`message of ${len} bytes, more than ${this.maxPayload}`);
      this.chunks = [];
      this.total = 0;
      throw this.broken;
    }
    if (this.total < HEADER_SIZE + len) return undefined;
    const type = this.header.readUInt32LE(0);
    const reqId = this.header.readUInt32LE(4);
    const txId = this.header.readUInt32LE(8);
    this.skip(HEADER_SIZE);
    const payload = this.take(len);
    return { type, reqId, txId, payload };
  }

  /** Copies the first n buffered bytes into dst without consuming them. */
  private peek(dst: Buffer, n: number): void {
    let at = 0;
    let off = this.offset;
    for (const c of this.chunks) {
      const k = Math.min(n - at, c.length - off);
      c.copy(dst, at, off, off + k);
      at += k;
      off = 0;
      if (at === n) return;
    }
  }

  private skip(n: number): void {
    this.take(n, true);
  }

  /** Consumes n bytes; a view when they lie in one chunk, else a copy. */
  private take(n: number, discard = false): Buffer {
    this.total -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first && first.length - this.offset >= n) {
      const out = discard ? first : first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
      return out;
    }
    const out = discard ? Buffer.alloc(0) : Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0] as Buffer;
      const k = Math.min(n - at, c.length - this.offset);
      if (!discard) c.copy(out, at, this.offset, this.offset + k);
      at += k;
      this.offset += k;
      if (this.offset === c.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    return out;
  }
}

export function encodeFrame(type: number, reqId: number, txId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  out.writeUInt32LE(type >>> 0, 0);
  out.writeUInt32LE(reqId >>> 0, 4);
  out.writeUInt32LE(txId >>> 0, 8);
  out.writeUInt32LE(payload.length, 12);
  payload.copy(out, HEADER_SIZE);
  return out;
}

/** A frame whose payload is `text` in `encoding`, written straight into the frame (no intermediate buffer). */
export function encodeTextFrame(
  type: number,
  reqId: number,
  txId: number,
  text: string,
  encoding: 'utf8' | 'latin1',
): Buffer {
  const len = Buffer.byteLength(text, encoding);
  const out = Buffer.allocUnsafe(HEADER_SIZE + len);
  out.writeUInt32LE(type >>> 0, 0);
  out.writeUInt32LE(reqId >>> 0, 4);
  out.writeUInt32LE(txId >>> 0, 8);
  out.writeUInt32LE(len, 12);
  out.write(text, HEADER_SIZE, len, encoding);
  return out;
}

/** xenstored's onearg(): the payload is one string with exactly one NUL, at its end (latin1). */
export function singleArg(payload: Buffer): string | undefined {
  const nul = payload.indexOf(0);
  if (nul < 0 || nul !== payload.length - 1) return undefined;
  return payload.toString('latin1', 0, nul);
}

/** xenstored's get_strings(): every NUL-terminated string, in order; a tail without a NUL is none. */
export function payloadStrings(payload: Buffer, max = Number.POSITIVE_INFINITY): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < payload.length && out.length < max) {
    const nul = payload.indexOf(0, at);
    if (nul < 0) break;
    out.push(payload.subarray(at, nul));
    at = nul + 1;
  }
  return out;
}

/** Number of NUL-terminated strings (xs_count_strings). */
export function countStrings(payload: Buffer): number {
  let n = 0;
  for (let at = payload.indexOf(0); at >= 0; at = payload.indexOf(0, at + 1)) n++;
  return n;
}

/** C's atoi() as xenstored applies it to a domid: leading digits, garbage is 0, wrapped to u32. */
export function atoi(s: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?)(\d+)/.exec(s);
  if (!m) return 0;
  const digits = (m[2] as string).slice(-12);
  const v = Number(digits) % 2 ** 32;
  return (m[1] === '-' ? -v : v) >>> 0;
}
