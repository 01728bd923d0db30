// Unsigned LEB128 for the flow log's records: counters and times are small most
// of the time, so most fields take one to three bytes. Values up to 2^53 (JS
// numbers are exact there), so the arithmetic avoids 32-bit bit operations.

export class ByteWriter {
  private buf: Uint8Array;
  length = 0;

  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  u8(v: number): void {
    this.room(1);
    this.buf[this.length++] = v & 0xff;
  }

  uv(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not an unsigned integer: ${v}`);
    this.room(8);
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.uv(b.length);
    this.bytes(b);
  }

  /** The bytes so far (a view: copy before writing more). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

/** Thrown on a record that ends early or holds an impossible value. */
export class DecodeError extends Error {}

export class ByteReader {
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  u8(): number {
    if (this.pos >= this.end) throw new DecodeError('record ends early');
    return this.buf[this.pos++] as number;
  }

  uv(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      if (b < 0x80) return v;
      mul *= 0x80;
    }
    throw new DecodeError('varint too long');
  }

  bytes(n: number): Uint8Array {
    if (this.pos + n > this.end) throw new DecodeError('record ends early');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  str(): string {
    const n = this.uv();
    if (n > 4096) throw new DecodeError('string too long');
    return Buffer.from(this.bytes(n)).toString('utf8');
  }
}
