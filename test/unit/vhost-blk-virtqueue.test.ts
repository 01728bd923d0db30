// The disk backend's virtqueue and request code against a fake guest memory
// and an in-memory image: well-formed requests work, and whatever a hostile
// guest puts in its rings (addresses outside its memory, loops, bad indexes,
// nested indirect tables, sectors past the end, writes to a read-only disk)
// ends in an error status or a stopped queue, never a throw out of the
// request code, a crash or a write outside the image.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BlkOptions,
  type BlockImage,
  serveRequest,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from '../../src/backends/vhost-blk/blk-request.ts';
import { GuestMemory } from '../../src/backends/vhost-blk/guest-memory.ts';
import { InflightQueue, inflightQueueSize } from '../../src/backends/vhost-blk/inflight.ts';
import {
  type Chain,
  QueueBroken,
  SplitQueue,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
} from '../../src/backends/vhost-blk/virtqueue.ts';

const GPA = 0x10000;
const UVA = 0x7f0000000000;
const MEM = 1 << 20;
const QSIZE = 8;
const DESC = GPA; // descriptor table
const AVAIL = GPA + 0x1000;
const USED = GPA + 0x2000;
const DATA = GPA + 0x10000;

class FakeImage implements BlockImage {
  readonly bytes: Uint8Array;
  flushes = 0;
  discards: Array<[number, number]> = [];
  /** Calls that reached past the image or wrote a read-only one: the request code must never make them. */
  readonly violations: string[] = [];
  constructor(
    readonly size: number,
    readonly readOnly = false,
  ) {
    this.bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) this.bytes[i] = (i * 7 + 3) & 0xff;
  }
  async readv(bufs: Uint8Array[], pos: number): Promise<void> {
    let at = pos;
    for (const b of bufs) {
      if (at + b.length > this.size) return void this.violations.push(`read at ${at}`);
      b.set(this.bytes.subarray(at, at + b.length));
      at += b.length;
    }
  }
  async writev(bufs: Uint8Array[], pos: number): Promise<void> {
    if (this.readOnly) return void this.violations.push('write to a read-only image');
    let at = pos;
    for (const b of bufs) {
      if (at + b.length > this.size) return void this.violations.push(`write at ${at}`);
      this.bytes.set(b, at);
      at += b.length;
    }
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
  async discard(pos: number, len: number): Promise<void> {
    this.discards.push([pos, len]);
  }
  async writeZeroes(pos: number, len: number): Promise<void> {
    if (pos + len > this.size) return void this.violations.push(`zeroes at ${pos}`);
    this.bytes.fill(0, pos, pos + len);
  }
}

const OPTS: BlkOptions = { serial: 'xvdb', discard: true, writeZeroes: true };

/** A guest: one memory region, a ring, and helpers to lay out requests. */
class Guest {
  readonly ram = new Uint8Array(MEM);
  readonly v = new DataView(this.ram.buffer);
  readonly mem = new GuestMemory([{ gpa: GPA, uva: UVA, bytes: this.ram }]);
  private availIdx = 0;
  private nextData = DATA;

  at(gpa: number): number {
    return gpa - GPA;
  }
  desc(i: number, addr: number | bigint, len: number, flags: number, next = 0, table = DESC): void {
    const o = this.at(table) + 16 * i;
    this.v.setBigUint64(o, BigInt(addr), true);
    this.v.setUint32(o + 8, len, true);
    this.v.setUint16(o + 12, flags, true);
    this.v.setUint16(o + 14, next, true);
  }
  /** Make `head` available. */
  offer(head: number): void {
    this.v.setUint16(this.at(AVAIL) + 4 + 2 * (this.availIdx % QSIZE), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.v.setUint16(this.at(AVAIL) + 2, this.availIdx, true);
  }
  setAvailIdx(n: number): void {
    this.availIdx = n;
    this.v.setUint16(this.at(AVAIL) + 2, n, true);
  }
  alloc(n: number): number {
    const a = this.nextData;
    this.nextData += Math.ceil(n / 4096) * 4096;
    return a;
  }
  header(type: number, sector: bigint | number): number {
    const a = this.alloc(16);
    this.v.setUint32(this.at(a), type, true);
    this.v.setBigUint64(this.at(a) + 8, BigInt(sector), true);
    return a;
  }
  status(): number {
    const a = this.alloc(1);
    this.ram[this.at(a)] = 0xff;
    return a;
  }
  statusOf(a: number): number {
    return this.ram[this.at(a)] as number;
  }
  /** A three-descriptor request at descriptors 0..2: header, data, status. */
  request(type: number, sector: number | bigint, dataLen: number, deviceWrites: boolean): { data: number; st: number } {
    const h = this.header(type, sector);
    const data = this.alloc(dataLen);
    const st = this.status();
    this.desc(0, h, 16, VRING_DESC_F_NEXT, 1);
    this.desc(1, data, dataLen, VRING_DESC_F_NEXT | (deviceWrites ? VRING_DESC_F_WRITE : 0), 2);
    this.desc(2, st, 1, VRING_DESC_F_WRITE);
    this.offer(0);
    return { data, st };
  }
  usedIdx(): number {
    return this.v.getUint16(this.at(USED) + 2, true);
  }
  usedElem(i: number): { id: number; len: number } {
    const o = this.at(USED) + 4 + 8 * i;
    return { id: this.v.getUint32(o, true), len: this.v.getUint32(o + 4, true) };
  }
  queue(opts: Partial<ConstructorParameters<typeof SplitQueue>[3]> = {}): SplitQueue {
    return new SplitQueue(
      this.mem,
      QSIZE,
      { desc: UVA + this.at(DESC), avail: UVA + this.at(AVAIL), used: UVA + this.at(USED) },
      { eventIdx: false, indirect: true, lastAvail: 0, ...opts },
    );
  }
}

async function serve(q: SplitQueue, img: FakeImage, o = OPTS) {
  const c = q.pop() as Chain;
  assert.ok(c, 'a request is available');
  const r = await serveRequest(c, img, o);
  q.push(c.head, r.written);
  return { c, r };
}

describe('vhost-blk: well-formed requests', () => {
  it('reads sectors into the guest buffer and reports the bytes written', async () => {
    const g = new Guest();
    const img = new FakeImage(64 * 1024);
    const { data, st } = g.request(VIRTIO_BLK_T_IN, 3, 1024, true);
    const { r } = await serve(g.queue(), img);
    assert.equal(r.status, VIRTIO_BLK_S_OK);
    assert.equal(g.statusOf(st), VIRTIO_BLK_S_OK);
    assert.deepEqual(g.ram.subarray(g.at(data), g.at(data) + 1024), img.bytes.subarray(3 * 512, 3 * 512 + 1024));
    assert.equal(g.usedIdx(), 1);
    assert.deepEqual(g.usedElem(0), { id: 0, len: 1025 });
  });

  it('writes guest data at the sector, flushes, answers GET_ID with the serial', async () => {
    const g = new Guest();
    const img = new FakeImage(64 * 1024);
    const q = g.queue();
    const { data } = g.request(VIRTIO_BLK_T_OUT, 8, 512, false);
    g.ram.fill(0xab, g.at(data), g.at(data) + 512);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_OK);
    assert.ok(img.bytes.subarray(4096, 4608).every((b) => b === 0xab));
    assert.equal(img.bytes[4608], (4608 * 7 + 3) & 0xff, 'nothing written past the request');
    g.request(VIRTIO_BLK_T_FLUSH, 0, 0, false);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_OK);
    assert.equal(img.flushes, 1);
    const id = g.request(VIRTIO_BLK_T_GET_ID, 0, 20, true);
    const r = await serve(q, img);
    assert.equal(r.r.status, VIRTIO_BLK_S_OK);
    assert.equal(Buffer.from(g.ram.subarray(g.at(id.data), g.at(id.data) + 4)).toString(), 'xvdb');
  });

  it('follows an indirect table (header, data and status in it)', async () => {
    const g = new Guest();
    const img = new FakeImage(64 * 1024);
    const table = g.alloc(48);
    const h = g.header(VIRTIO_BLK_T_IN, 1);
    const data = g.alloc(512);
    const st = g.status();
    g.desc(0, h, 16, VRING_DESC_F_NEXT, 1, table);
    g.desc(1, data, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2, table);
    g.desc(2, st, 1, VRING_DESC_F_WRITE, 0, table);
    g.desc(5, table, 48, VRING_DESC_F_INDIRECT);
    g.offer(5);
    const { r, c } = await serve(g.queue(), img);
    assert.equal(c.head, 5);
    assert.equal(r.status, VIRTIO_BLK_S_OK);
    assert.equal(g.statusOf(st), VIRTIO_BLK_S_OK);
    assert.deepEqual(g.ram.subarray(g.at(data), g.at(data) + 512), img.bytes.subarray(512, 1024));
  });

  it('discards and writes zeroes inside the image', async () => {
    const g = new Guest();
    const img = new FakeImage(64 * 1024);
    const q = g.queue();
    for (const [type, flags] of [
      [VIRTIO_BLK_T_DISCARD, 0],
      [VIRTIO_BLK_T_WRITE_ZEROES, 1],
    ] as const) {
      const { data } = g.request(type, 0, 16, false);
      g.v.setBigUint64(g.at(data), 2n, true);
      g.v.setUint32(g.at(data) + 8, 4, true);
      g.v.setUint32(g.at(data) + 12, flags, true);
      assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_OK);
    }
    assert.deepEqual(img.discards, [[1024, 2048]]);
    assert.ok(img.bytes.subarray(1024, 3072).every((b) => b === 0));
  });
});

describe('vhost-blk: what a hostile guest sends', () => {
  it('a read or write past the end of the image is IOERR and touches nothing', async () => {
    const g = new Guest();
    const img = new FakeImage(8 * 512);
    const before = Uint8Array.from(img.bytes);
    const q = g.queue();
    for (const [type, sector, len, wr] of [
      [VIRTIO_BLK_T_OUT, 7, 1024, false],
      [VIRTIO_BLK_T_IN, 8, 512, true],
      [VIRTIO_BLK_T_OUT, 2n ** 63n, 512, false],
      [VIRTIO_BLK_T_IN, 2n ** 64n - 1n, 512, true],
      [VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false],
    ] as const) {
      const { data, st } = g.request(type, sector, len, wr);
      if (type === VIRTIO_BLK_T_WRITE_ZEROES) {
        g.v.setBigUint64(g.at(data), 6n, true);
        g.v.setUint32(g.at(data) + 8, 4, true);
      }
      const { r } = await serve(q, img);
      assert.equal(r.status, VIRTIO_BLK_S_IOERR, `${type} at ${sector}`);
      assert.equal(g.statusOf(st), VIRTIO_BLK_S_IOERR);
    }
    assert.deepEqual(img.bytes, before);
    assert.deepEqual(img.violations, []);
  });

  it('a write to a read-only disk is IOERR and writes nothing; discard there is UNSUPP', async () => {
    const g = new Guest();
    const img = new FakeImage(8 * 512, true);
    const q = g.queue();
    const w = g.request(VIRTIO_BLK_T_OUT, 0, 512, false);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_IOERR);
    assert.equal(g.statusOf(w.st), VIRTIO_BLK_S_IOERR);
    g.request(VIRTIO_BLK_T_DISCARD, 0, 16, false);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_UNSUPP);
    assert.deepEqual(img.violations, []);
  });

  it('lengths that are not whole sectors, unknown types and bad segment flags fail with a status', async () => {
    const g = new Guest();
    const img = new FakeImage(8 * 512);
    const q = g.queue();
    g.request(VIRTIO_BLK_T_IN, 0, 100, true);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_IOERR);
    g.request(99, 0, 512, true);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_UNSUPP);
    const d = g.request(VIRTIO_BLK_T_DISCARD, 0, 16, false);
    g.v.setUint32(g.at(d.data) + 12, 1, true); // unmap is for write-zeroes only
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_UNSUPP);
    g.request(VIRTIO_BLK_T_DISCARD, 0, 20, false);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_IOERR);
    // A header shorter than 16 bytes.
    const st = g.status();
    g.desc(0, g.header(VIRTIO_BLK_T_IN, 0), 8, VRING_DESC_F_NEXT, 2);
    g.desc(2, st, 1, VRING_DESC_F_WRITE);
    g.offer(0);
    assert.equal((await serve(q, img)).r.status, VIRTIO_BLK_S_IOERR);
    assert.equal(g.statusOf(st), VIRTIO_BLK_S_IOERR);
  });

  it('buffers outside guest memory fail the request with IOERR; the status still lands', async () => {
    const g = new Guest();
    const img = new FakeImage(64 * 1024);
    const q = g.queue();
    for (const addr of [0, GPA + MEM - 100, 2n ** 64n - 512n, 2n ** 60n]) {
      const h = g.header(VIRTIO_BLK_T_IN, 0);
      const st = g.status();
      g.desc(0, h, 16, VRING_DESC_F_NEXT, 1);
      g.desc(1, addr, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
      g.desc(2, st, 1, VRING_DESC_F_WRITE);
      g.offer(0);
      const { r, c } = await serve(q, img);
      assert.ok(c.bad, `0x${addr.toString(16)} is outside`);
      assert.equal(r.status, VIRTIO_BLK_S_IOERR);
      assert.equal(g.statusOf(st), VIRTIO_BLK_S_IOERR);
    }
  });

  it('a request whose status byte is outside guest memory is returned with 0 bytes', async () => {
    const g = new Guest();
    const img = new FakeImage(64 * 1024);
    const q = g.queue();
    g.desc(0, g.header(VIRTIO_BLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1);
    g.desc(1, 0x10, 1, VRING_DESC_F_WRITE);
    g.offer(0);
    const { r } = await serve(q, img);
    assert.equal(r.written, 0);
    assert.deepEqual(g.usedElem(0), { id: 0, len: 0 });
  });

  it('a descriptor loop, a bad head, a bad next and a runaway available index stop the queue', () => {
    const cases: Array<[string, (g: Guest) => void]> = [
      [
        'loop',
        (g) => {
          g.desc(0, DATA, 16, VRING_DESC_F_NEXT, 1);
          g.desc(1, DATA, 16, VRING_DESC_F_NEXT, 0);
          g.offer(0);
        },
      ],
      ['head out of the ring', (g) => g.offer(QSIZE + 3)],
      [
        'next out of the table',
        (g) => {
          g.desc(0, DATA, 16, VRING_DESC_F_NEXT, 200);
          g.offer(0);
        },
      ],
      ['available index a ring ahead', (g) => g.setAvailIdx(QSIZE + 1)],
      [
        'readable after writable',
        (g) => {
          g.desc(0, DATA, 16, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
          g.desc(1, DATA, 16, 0);
          g.offer(0);
        },
      ],
    ];
    for (const [name, setup] of cases) {
      const g = new Guest();
      setup(g);
      assert.throws(() => g.queue().pop(), QueueBroken, name);
      assert.equal(g.usedIdx(), 0, `${name}: nothing returned`);
    }
  });

  it('bad indirect tables stop the queue: nested, with NEXT, odd size, outside memory, not negotiated', () => {
    const cases: Array<[string, (g: Guest) => void, boolean?]> = [
      [
        'nested',
        (g) => {
          const t = g.alloc(32);
          g.desc(0, t, 32, VRING_DESC_F_INDIRECT, 0, t);
          g.desc(0, t, 32, VRING_DESC_F_INDIRECT);
        },
      ],
      ['with NEXT', (g) => g.desc(0, g.alloc(32), 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1)],
      ['odd size', (g) => g.desc(0, g.alloc(32), 20, VRING_DESC_F_INDIRECT)],
      ['empty', (g) => g.desc(0, g.alloc(32), 0, VRING_DESC_F_INDIRECT)],
      ['outside memory', (g) => g.desc(0, GPA + MEM - 16, 32, VRING_DESC_F_INDIRECT)],
      ['too long', (g) => g.desc(0, DATA, 16 * 4096, VRING_DESC_F_INDIRECT)],
      ['not negotiated', (g) => g.desc(0, g.alloc(32), 32, VRING_DESC_F_INDIRECT), false],
    ];
    for (const [name, setup, indirect] of cases) {
      const g = new Guest();
      setup(g);
      g.offer(0);
      assert.throws(() => g.queue({ indirect: indirect ?? true }).pop(), QueueBroken, name);
    }
  });

  it('an indirect table changed by the guest while it is walked is read as it was (a copy)', () => {
    const g = new Guest();
    const t = g.alloc(32);
    g.desc(0, g.header(VIRTIO_BLK_T_IN, 0), 16, VRING_DESC_F_NEXT, 1, t);
    g.desc(1, g.status(), 1, VRING_DESC_F_WRITE, 0, t);
    g.desc(0, t, 32, VRING_DESC_F_INDIRECT);
    g.offer(0);
    const c = g.queue().pop() as Chain;
    assert.equal(c.readLen, 16);
    assert.equal(c.writeLen, 1);
  });

  it('rings outside guest memory and bad sizes are refused when the queue starts', () => {
    const g = new Guest();
    assert.throws(
      () =>
        new SplitQueue(
          g.mem,
          QSIZE,
          { desc: 1, avail: UVA, used: UVA },
          { eventIdx: false, indirect: true, lastAvail: 0 },
        ),
      QueueBroken,
    );
    assert.throws(
      () =>
        new SplitQueue(
          g.mem,
          6,
          { desc: UVA, avail: UVA, used: UVA },
          { eventIdx: false, indirect: true, lastAvail: 0 },
        ),
      QueueBroken,
    );
    assert.throws(
      () =>
        new SplitQueue(
          g.mem,
          QSIZE,
          { desc: UVA, avail: UVA, used: UVA + MEM - 8 },
          { eventIdx: false, indirect: true, lastAvail: 0 },
        ),
      QueueBroken,
    );
  });
});

describe('vhost-blk: notifications and the inflight region', () => {
  it('event idx: an interrupt only when the used index passes used_event', async () => {
    const g = new Guest();
    const img = new FakeImage(8 * 512);
    const q = g.queue({ eventIdx: true });
    g.v.setUint16(g.at(AVAIL) + 4 + 2 * QSIZE, 1, true); // used_event: interrupt after the 2nd
    g.request(VIRTIO_BLK_T_FLUSH, 0, 0, false);
    await serve(q, img);
    assert.equal(q.takeSignal(), false);
    g.request(VIRTIO_BLK_T_FLUSH, 0, 0, false);
    await serve(q, img);
    assert.equal(q.takeSignal(), true);
    assert.equal(q.armKick(), false);
    assert.equal(g.v.getUint16(g.at(USED) + 4 + 8 * QSIZE, true), 2, 'avail_event written');
    // Without event idx, VRING_AVAIL_F_NO_INTERRUPT silences it.
    const g2 = new Guest();
    const q2 = g2.queue();
    g2.v.setUint16(g2.at(AVAIL), 1, true);
    g2.request(VIRTIO_BLK_T_FLUSH, 0, 0, false);
    await serve(q2, img);
    assert.equal(q2.takeSignal(), false);
  });

  it('a restarted backend serves again what was taken and not completed, oldest first', async () => {
    const g = new Guest();
    const region = new Uint8Array(inflightQueueSize(QSIZE));
    const inf = new InflightQueue(region, QSIZE);
    const q = g.queue({ inflight: inf });
    assert.equal(inf.version, 1);
    // Three requests at heads 4, 1, 6; only the second completes before the "crash".
    for (const head of [4, 1, 6]) {
      g.desc(head, g.header(VIRTIO_BLK_T_FLUSH, 0), 16, VRING_DESC_F_NEXT, head + 1);
      g.desc(head + 1, g.status(), 1, VRING_DESC_F_WRITE);
      g.offer(head);
    }
    const a = q.pop() as Chain;
    const b = q.pop() as Chain;
    const c = q.pop() as Chain;
    assert.deepEqual([a.head, b.head, c.head], [4, 1, 6]);
    q.push(b.head, 1);
    // The new backend: the same memory and region, QEMU restarts the ring at the used index.
    const q2 = g.queue({ inflight: new InflightQueue(region, QSIZE), lastAvail: 1 });
    assert.deepEqual(q2.resubmit, [4, 6]);
    assert.equal(q2.lastAvailIdx, 3, 'the ring resumes after every request taken');
    assert.equal(q2.pop(), undefined);
    for (const h of q2.resubmit) q2.push(h, 1);
    assert.equal(g.usedIdx(), 3);
    const q3 = g.queue({ inflight: new InflightQueue(region, QSIZE), lastAvail: 3 });
    assert.deepEqual(q3.resubmit, [], 'nothing left after they completed');
  });

  it('killed between publishing a used entry and recording it: that request is not served twice', () => {
    const g = new Guest();
    const region = new Uint8Array(inflightQueueSize(QSIZE));
    const inf = new InflightQueue(region, QSIZE);
    const q = g.queue({ inflight: inf });
    g.desc(0, g.header(VIRTIO_BLK_T_FLUSH, 0), 16, VRING_DESC_F_NEXT, 1);
    g.desc(1, g.status(), 1, VRING_DESC_F_WRITE);
    g.offer(0);
    const c = q.pop() as Chain;
    // What push() does, cut off after the used index is published.
    inf.lastBatchHead = c.head;
    g.v.setUint32(g.at(USED) + 4, c.head, true);
    g.v.setUint16(g.at(USED) + 2, 1, true);
    const q2 = g.queue({ inflight: new InflightQueue(region, QSIZE), lastAvail: 1 });
    assert.deepEqual(q2.resubmit, []);
    assert.equal(q2.lastAvailIdx, 1);
  });
});
