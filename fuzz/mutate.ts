// Byte-level mutations (libFuzzer's kinds): bit and byte flips, interesting
// values, arithmetic on 1/2/4-byte fields, insert/delete/duplicate ranges,
// splices with another corpus entry, and the target's dictionary tokens.

export class Rng {
  constructor(private s: number) {
    if (this.s === 0) this.s = 0x9e3779b9;
  }
  /** xorshift32: fast and reproducible from the seed. */
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
}

const INTERESTING8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0x64];
const INTERESTING16 = [0, 0x80, 0xff, 0x100, 0x200, 0x3e8, 0x400, 0x7fff, 0x8000, 0xffff, 0x1000];
const INTERESTING32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x1000, 0xfffffffe, 4096 + 1];

export class Mutator {
  private readonly dict: Buffer[];
  constructor(
    private readonly rng: Rng,
    dict: readonly (string | Uint8Array)[],
    private readonly maxLen: number,
  ) {
    this.dict = dict.map((d) => (typeof d === 'string' ? Buffer.from(d, 'utf8') : Buffer.from(d)));
  }

  /** 1 to 8 stacked mutations of `input`; `other` is another corpus entry to splice with. */
  mutate(input: Buffer, other?: Buffer): Buffer {
    let b: Buffer = Buffer.from(input);
    const n = 1 + this.rng.below(4);
    for (let i = 0; i < n; i++) b = this.once(b, other);
    return b.length > this.maxLen ? b.subarray(0, this.maxLen) : b;
  }

  private once(b: Buffer, other?: Buffer): Buffer {
    const r = this.rng;
    const pos = () => r.below(b.length);
    switch (r.below(this.dict.length ? 13 : 11)) {
      case 0:
        if (b.length) b[pos()] ^= 1 << r.below(8);
        return b;
      case 1:
        if (b.length) b[pos()] = r.below(256);
        return b;
      case 2:
        if (b.length) b[pos()] = INTERESTING8[r.below(INTERESTING8.length)] as number;
        return b;
      case 3: {
        if (b.length < 2) return b;
        const p = r.below(b.length - 1);
        const v = r.chance(0.5)
          ? (INTERESTING16[r.below(INTERESTING16.length)] as number)
          : (b.readUInt16LE(p) + r.below(33) - 16) & 0xffff;
        if (r.chance(0.5)) b.writeUInt16LE(v, p);
        else b.writeUInt16BE(v, p);
        return b;
      }
      case 4: {
        if (b.length < 4) return b;
        const p = r.below(b.length - 3);
        const v = r.chance(0.5)
          ? (INTERESTING32[r.below(INTERESTING32.length)] as number)
          : (b.readUInt32LE(p) + r.below(33) - 16) >>> 0;
        if (r.chance(0.5)) b.writeUInt32LE(v, p);
        else b.writeUInt32BE(v, p);
        return b;
      }
      case 5: {
        // Insert random bytes.
        const n = 1 + r.below(r.chance(0.8) ? 4 : 64);
        const ins = Buffer.alloc(n);
        for (let i = 0; i < n; i++) ins[i] = r.chance(0.2) ? 0 : r.below(256);
        const p = r.below(b.length + 1);
        return Buffer.concat([b.subarray(0, p), ins, b.subarray(p)]);
      }
      case 6: {
        if (b.length < 2) return b;
        const p = pos();
        const n = 1 + r.below(Math.min(b.length - p, r.chance(0.8) ? 4 : 128));
        return Buffer.concat([b.subarray(0, p), b.subarray(p + n)]);
      }
      case 7: {
        // Duplicate a range (lengthens repeated structures).
        if (!b.length) return b;
        const p = pos();
        const n = 1 + r.below(Math.min(b.length - p, 64));
        const at = r.below(b.length + 1);
        return Buffer.concat([b.subarray(0, at), b.subarray(p, p + n), b.subarray(at)]);
      }
      case 8: {
        // Copy a range over another place.
        if (b.length < 2) return b;
        const p = pos();
        const n = 1 + r.below(Math.min(b.length - p, 32));
        b.copy(b, r.below(b.length), p, p + n);
        return b;
      }
      case 9: {
        if (!other?.length) return b;
        const a = r.below(b.length + 1);
        const o = r.below(other.length);
        return Buffer.concat([b.subarray(0, a), other.subarray(o)]);
      }
      case 10: {
        // Truncate or shuffle a little.
        if (b.length < 2) return b;
        return r.chance(0.5) ? b.subarray(0, pos()) : Buffer.concat([b.subarray(pos()), b.subarray(0, 0)]);
      }
      case 11: {
        const t = this.dict[r.below(this.dict.length)] as Buffer;
        const p = r.below(b.length + 1);
        return Buffer.concat([b.subarray(0, p), t, b.subarray(p)]);
      }
      default: {
        const t = this.dict[r.below(this.dict.length)] as Buffer;
        if (b.length < t.length) return Buffer.concat([t, b]);
        t.copy(b, r.below(b.length - t.length + 1));
        return b;
      }
    }
  }
}
