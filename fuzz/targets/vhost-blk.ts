// Virtqueue descriptors and block requests from a guest into the TypeScript
// disk backend (src/backends/vhost-blk): the input is the guest's memory (its
// descriptor table, available ring and data), read by the real SplitQueue and
// served by the real serveRequest against an image that records misuse.
// Input: [flags][lastAvail] then guest RAM from its first byte (descriptor
// table at GPA, available ring at GPA+0x80, used ring at GPA+0x100).
// Invariants: only QueueBroken stops a queue; nothing is read or written
// outside the image or written to a read-only one; a used length never exceeds
// the chain's writable bytes.

import fc from 'fast-check';
import {
  type BlockImage,
  serveRequest,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from '../../src/backends/vhost-blk/blk-request.ts';
import { GuestMemory } from '../../src/backends/vhost-blk/guest-memory.ts';
import {
  QueueBroken,
  SplitQueue,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
} from '../../src/backends/vhost-blk/virtqueue.ts';
import { type FuzzTarget, invariant } from '../target.ts';

export const GPA = 0x10000;
const UVA = 0x7f0000000000;
const MEM = 0x4000;
const QSIZE = 8;
const AVAIL = 0x80;
const USED = 0x100;
const IMAGE = 16 * 512;

class CheckedImage implements BlockImage {
  readonly bytes = new Uint8Array(IMAGE);
  readonly violations: string[] = [];
  constructor(
    readonly size: number,
    readonly readOnly: boolean,
  ) {}
  private range(what: string, pos: number, len: number): boolean {
    if (!Number.isSafeInteger(pos) || pos < 0 || len < 0 || pos + len > this.size) {
      this.violations.push(`${what} of ${len} at ${pos}`);
      return false;
    }
    return true;
  }
  async readv(bufs: Uint8Array[], pos: number): Promise<void> {
    let at = pos;
    for (const b of bufs) {
      if (!this.range('read', at, b.length)) return;
      b.set(this.bytes.subarray(at, at + b.length));
      at += b.length;
    }
  }
  async writev(bufs: Uint8Array[], pos: number): Promise<void> {
    if (this.readOnly) return void this.violations.push('write to a read-only image');
    let at = pos;
    for (const b of bufs) {
      if (!this.range('write', at, b.length)) return;
      this.bytes.set(b, at);
      at += b.length;
    }
  }
  async flush(): Promise<void> {}
  async discard(pos: number, len: number): Promise<void> {
    if (this.readOnly) this.violations.push('discard on a read-only image');
    this.range('discard', pos, len);
  }
  async writeZeroes(pos: number, len: number): Promise<void> {
    if (this.readOnly) this.violations.push('write-zeroes on a read-only image');
    if (this.range('write-zeroes', pos, len)) this.bytes.fill(0, pos, pos + len);
  }
}

/** A well-formed request laid out as the input format wants it (for the generator and the seeds). */
export function blkInput(
  flags: number,
  reqs: Array<{ type: number; sector: number; len: number; write: boolean; indirect: boolean }>,
): Uint8Array {
  const ram = Buffer.alloc(0x1000);
  let data = 0x200;
  let slot = 0;
  const desc = (table: number, i: number, addr: number, len: number, fl: number, next: number) => {
    const o = table + 16 * i;
    ram.writeBigUInt64LE(BigInt(GPA + addr), o);
    ram.writeUInt32LE(len, o + 8);
    ram.writeUInt16LE(fl, o + 12);
    ram.writeUInt16LE(next, o + 14);
  };
  reqs.slice(0, 2).forEach((r, n) => {
    const h = data;
    ram.writeUInt32LE(r.type, h);
    ram.writeBigUInt64LE(BigInt(r.sector), h + 8);
    if (r.type === VIRTIO_BLK_T_DISCARD || r.type === VIRTIO_BLK_T_WRITE_ZEROES) {
      ram.writeBigUInt64LE(BigInt(r.sector), h + 16);
      ram.writeUInt32LE(Math.max(1, r.len >> 9), h + 24);
    }
    const d = h + 16;
    const st = d + Math.min(r.len, 512);
    data = st + 16;
    const table = r.indirect ? 0x800 + 0x40 * n : 0;
    const base = r.indirect ? 0 : slot;
    desc(table, base, h - 0, 16, VRING_DESC_F_NEXT, base + 1);
    desc(table, base + 1, d, Math.min(r.len, 512), VRING_DESC_F_NEXT | (r.write ? VRING_DESC_F_WRITE : 0), base + 2);
    desc(table, base + 2, st, 1, VRING_DESC_F_WRITE, 0);
    if (r.indirect) desc(0, slot, table, 48, VRING_DESC_F_INDIRECT, 0);
    ram.writeUInt16LE(slot, AVAIL + 4 + 2 * n);
    slot += r.indirect ? 1 : 3;
  });
  ram.writeUInt16LE(Math.min(reqs.length, 2), AVAIL + 2);
  return Uint8Array.from(Buffer.concat([Buffer.from([flags, 0]), ram.subarray(0, data)]));
}

const TYPES = [
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_WRITE_ZEROES,
  99,
];

export function target(): FuzzTarget {
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return Uint8Array.from(b);
  };
  return {
    name: 'vhost-blk',
    about:
      'guest rings and block requests into SplitQueue + serveRequest: no I/O outside the image, no write to a read-only one',
    files: [
      'src/backends/vhost-blk/virtqueue.ts',
      'src/backends/vhost-blk/blk-request.ts',
      'src/backends/vhost-blk/guest-memory.ts',
    ],
    maxLen: 0x1000,
    timeoutMs: 2000,
    dict: [
      u64(GPA),
      u64(GPA + 0x200),
      u64(GPA + 0x800),
      u64(GPA + MEM - 8),
      u64(UVA),
      Uint8Array.from([1, 0]),
      Uint8Array.from([2, 0]),
      Uint8Array.from([3, 0]),
      Uint8Array.from([4, 0]),
      ...TYPES.map((t) => Uint8Array.from([t, 0, 0, 0])),
    ],
    generate: fc
      .tuple(
        fc.integer({ min: 0, max: 15 }),
        fc.array(
          fc.record({
            type: fc.constantFrom(...TYPES),
            sector: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constantFrom(2 ** 40, 2 ** 53 - 1)),
            len: fc.constantFrom(0, 1, 20, 511, 512, 16, 4096),
            write: fc.boolean(),
            indirect: fc.boolean(),
          }),
          { minLength: 1, maxLength: 2 },
        ),
      )
      .map(([f, rs]) => blkInput(f, rs)),
    async run(data) {
      const flags = data[0] ?? 0;
      const ram = new Uint8Array(MEM);
      ram.set(data.subarray(2, 2 + MEM));
      const mem = new GuestMemory([{ gpa: GPA, uva: UVA, bytes: ram }]);
      const img = new CheckedImage(IMAGE, (flags & 4) !== 0);
      const opts = { serial: 'xvdb', discard: (flags & 8) === 0, writeZeroes: (flags & 8) === 0 };
      let q: SplitQueue;
      try {
        q = new SplitQueue(
          mem,
          QSIZE,
          { desc: UVA, avail: UVA + AVAIL, used: UVA + USED },
          {
            eventIdx: (flags & 1) !== 0,
            indirect: (flags & 2) === 0,
            lastAvail: data[1] ?? 0,
          },
        );
      } catch (e) {
        if (e instanceof QueueBroken) return;
        throw e;
      }
      try {
        for (let i = 0; i < 16; i++) {
          const c = q.pop();
          if (!c) break;
          const writable = c.writable.reduce((n, b) => n + b.length, 0);
          for (const b of [...c.readable, ...c.writable]) {
            invariant(b.buffer === ram.buffer, 'a chain buffer is not guest memory');
          }
          const r = await serveRequest(c, img, opts);
          invariant(r.written <= writable, `used length ${r.written} over the ${writable} writable bytes`);
          q.push(c.head, r.written);
          q.takeSignal();
          q.armKick();
        }
      } catch (e) {
        if (!(e instanceof QueueBroken)) throw e;
      }
      invariant(img.violations.length === 0, `the backend misused the image: ${img.violations.join('; ')}`);
    },
  };
}
