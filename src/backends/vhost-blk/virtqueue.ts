// A split virtqueue over the guest's memory (virtio 1.x, 2.7): the descriptor
// table, the available ring the driver fills and the used ring the device
// returns buffers on. Everything in these rings is written by the guest and so
// is untrusted: each field is read once, every index is checked against the
// queue size, every buffer address against guest memory, chains are bounded
// (no loop can keep the backend busy), and an indirect table is copied before
// it is walked. A ring the guest has corrupted (an index out of range, a loop,
// a nested indirect table) stops the queue, as QEMU marks such a device
// broken; a buffer outside guest memory only fails its own request.

import { dataView, type GuestMemory, u64 } from './guest-memory.ts';
import { INFLIGHT_VERSION, type InflightQueue } from './inflight.ts';

export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
/** QEMU's largest queue (VIRTQUEUE_MAX_SIZE); also the longest indirect table taken. */
export const MAX_QUEUE_SIZE = 1024;
/** The most data one request may move (Linux sends at most a few MiB). */
export const MAX_CHAIN_BYTES = 64 << 20;

/** The guest broke the ring itself: the queue stops until the driver sets it up again. */
export class QueueBroken extends Error {}

/** A request's buffers, in chain order, split into what the device reads and what it writes. */
export interface Chain {
  head: number;
  readable: Uint8Array[];
  writable: Uint8Array[];
  readLen: number;
  writeLen: number;
  /**
   * Why some buffer of the chain could not be used (outside guest memory, too
   * long); the request then fails, with its status written where it still can be.
   */
  bad?: string;
  /** The last byte the device writes (the status of a block request), when it is in guest memory. */
  statusByte?: Uint8Array;
}

export interface RingAddrs {
  /** QEMU virtual addresses (SET_VRING_ADDR), as the protocol gives them. */
  desc: number;
  avail: number;
  used: number;
}

export interface QueueOptions {
  eventIdx: boolean;
  indirect: boolean;
  /** SET_VRING_BASE: where the device resumes in the available ring. */
  lastAvail: number;
  inflight?: InflightQueue;
  /** Read the inflight region for requests to serve again (false: a running ring found again in new mappings). */
  recover?: boolean;
}

function viewOf(mem: GuestMemory, addr: number, len: number, what: string): DataView {
  const b = mem.uvaRange(addr, len);
  if (!b) throw new QueueBroken(`${what} at 0x${addr.toString(16)} (${len} bytes) is outside guest memory`);
  return dataView(b);
}

export class SplitQueue {
  private readonly desc: DataView;
  private readonly avail: DataView;
  private readonly used: DataView;
  private lastAvail: number;
  private usedIdx: number;
  private signalledUsed: number;
  private pushedSinceSignal = false;
  private counter = 1n;
  /** Heads the inflight region says were taken and not completed, oldest first. */
  readonly resubmit: number[] = [];

  constructor(
    private readonly mem: GuestMemory,
    readonly size: number,
    addrs: RingAddrs,
    private readonly o: QueueOptions,
  ) {
    if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
      throw new QueueBroken(`bad queue size ${size}`);
    }
    this.desc = viewOf(mem, addrs.desc, 16 * size, 'descriptor table');
    this.avail = viewOf(mem, addrs.avail, 6 + 2 * size, 'available ring');
    this.used = viewOf(mem, addrs.used, 6 + 8 * size, 'used ring');
    this.usedIdx = this.used.getUint16(2, true);
    this.signalledUsed = this.usedIdx;
    this.lastAvail = o.lastAvail & 0xffff;
    if (o.inflight && o.recover !== false) this.recover(o.inflight);
  }

  /** Where the device is in the available ring (GET_VRING_BASE). */
  get lastAvailIdx(): number {
    return this.lastAvail;
  }

  /**
   * Pick up the inflight region: fresh, start it; written by an earlier backend,
   * finish what it shows half-completed and list what it had taken but not
   * completed, so those requests are served again (in the order they were taken).
   */
  private recover(inf: InflightQueue): void {
    if (inf.version !== INFLIGHT_VERSION || inf.descNum !== this.size) {
      for (let i = 0; i < inf.size; i++) inf.clear(i);
      inf.descNum = this.size;
      inf.usedIdx = this.usedIdx;
      inf.version = INFLIGHT_VERSION;
      return;
    }
    // Killed between publishing a used entry and recording it: that request is done.
    if (inf.usedIdx !== this.usedIdx) {
      const h = inf.lastBatchHead;
      if (h < this.size) inf.clear(h);
      inf.usedIdx = this.usedIdx;
    }
    const heads: Array<{ head: number; counter: bigint }> = [];
    for (let i = 0; i < this.size; i++) if (inf.isInflight(i)) heads.push({ head: i, counter: inf.counter(i) });
    heads.sort((a, b) => (a.counter < b.counter ? -1 : a.counter > b.counter ? 1 : 0));
    for (const h of heads) {
      this.resubmit.push(h.head);
      if (h.counter >= this.counter) this.counter = h.counter + 1n;
    }
    // Every request taken is either used or still marked: the ring resumes after them all.
    this.lastAvail = (this.usedIdx + heads.length) & 0xffff;
  }

  /** Whether the driver has made buffers available that the device has not taken. */
  hasWork(): boolean {
    return this.avail.getUint16(2, true) !== this.lastAvail;
  }

  /** The next available request, or undefined when the ring is empty. Throws QueueBroken. */
  pop(): Chain | undefined {
    const availIdx = this.avail.getUint16(2, true);
    if (availIdx === this.lastAvail) return undefined;
    if (((availIdx - this.lastAvail) & 0xffff) > this.size) {
      throw new QueueBroken(
        `available index ${availIdx} is more than a ring (${this.size}) ahead of ${this.lastAvail}`,
      );
    }
    const head = this.avail.getUint16(4 + 2 * (this.lastAvail % this.size), true);
    const chain = this.walk(head);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.o.inflight?.mark(head, this.counter++);
    return chain;
  }

  /** The chain starting at `head` (also for a request resubmitted after a restart). Throws QueueBroken. */
  walk(head: number): Chain {
    if (head >= this.size) throw new QueueBroken(`head index ${head} out of a ring of ${this.size}`);
    const chain: Chain = { head, readable: [], writable: [], readLen: 0, writeLen: 0 };
    let table = this.desc;
    let tableSize = this.size;
    let i = head;
    let count = 0;
    let indirect = false;
    let lastWritable: Uint8Array[] | undefined;
    for (;;) {
      if (++count > tableSize) throw new QueueBroken(`descriptor chain at ${head} loops or is longer than its table`);
      const o = 16 * i;
      const addr = u64(table, o);
      const len = table.getUint32(o + 8, true);
      const flags = table.getUint16(o + 12, true);
      const next = table.getUint16(o + 14, true);
      if (flags & VRING_DESC_F_INDIRECT) {
        if (!this.o.indirect) throw new QueueBroken('indirect descriptor, not negotiated');
        if (indirect) throw new QueueBroken('indirect descriptor inside an indirect table');
        if (count !== 1) throw new QueueBroken('indirect descriptor after other buffers of a chain');
        if (flags & VRING_DESC_F_NEXT) throw new QueueBroken('indirect descriptor with NEXT');
        if (len === 0 || len % 16 !== 0 || len / 16 > MAX_QUEUE_SIZE) {
          throw new QueueBroken(`indirect table of ${len} bytes`);
        }
        const parts = this.mem.gpaRange(addr, len);
        if (!parts) throw new QueueBroken(`indirect table at 0x${addr.toString(16)} is outside guest memory`);
        // A copy: the guest cannot change the table while it is being walked.
        const copy = new Uint8Array(len);
        let at = 0;
        for (const p of parts) {
          copy.set(p, at);
          at += p.length;
        }
        table = dataView(copy);
        tableSize = len / 16;
        i = 0;
        count = 0;
        indirect = true;
        continue;
      }
      const writable = (flags & VRING_DESC_F_WRITE) !== 0;
      if (!writable && chain.writeLen > 0) throw new QueueBroken('a device-readable buffer after a writable one');
      if (writable) chain.writeLen += len;
      else chain.readLen += len;
      if (chain.readLen + chain.writeLen > MAX_CHAIN_BYTES) {
        chain.bad ??= `request of more than ${MAX_CHAIN_BYTES} bytes`;
      }
      if (len > 0) {
        const parts = addr < 0 ? undefined : this.mem.gpaRange(addr, len);
        if (!parts) {
          chain.bad ??= `buffer at 0x${addr < 0 ? 'ffff…' : addr.toString(16)} (${len} bytes) is outside guest memory`;
          if (writable) lastWritable = undefined;
        } else if (writable) {
          chain.writable.push(...parts);
          lastWritable = parts;
        } else chain.readable.push(...parts);
      }
      if (!(flags & VRING_DESC_F_NEXT)) break;
      if (next >= tableSize) throw new QueueBroken(`next index ${next} out of a table of ${tableSize}`);
      i = next;
    }
    const last = lastWritable?.[lastWritable.length - 1];
    if (last && last.length > 0) chain.statusByte = last.subarray(last.length - 1);
    return chain;
  }

  /** Return a request's buffers to the guest, `written` bytes filled in. */
  push(head: number, written: number): void {
    const inf = this.o.inflight;
    if (inf) inf.lastBatchHead = head;
    const slot = 4 + 8 * (this.usedIdx % this.size);
    this.used.setUint32(slot, head, true);
    this.used.setUint32(slot + 4, written, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.used.setUint16(2, this.usedIdx, true);
    if (inf) {
      inf.clear(head);
      inf.usedIdx = this.usedIdx;
    }
    this.pushedSinceSignal = true;
  }

  /** Whether the guest wants an interrupt for what was pushed since the last one (event idx or flags). */
  takeSignal(): boolean {
    if (!this.pushedSinceSignal) return false;
    this.pushedSinceSignal = false;
    if (this.o.eventIdx) {
      const ev = this.avail.getUint16(4 + 2 * this.size, true);
      const need = ((this.usedIdx - ev - 1) & 0xffff) < ((this.usedIdx - this.signalledUsed) & 0xffff);
      this.signalledUsed = this.usedIdx;
      return need;
    }
    return (this.avail.getUint16(0, true) & VRING_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * Ask for a kick when more buffers come (event idx: at the next one), then
   * look again: buffers made available before the guest saw the request
   * would otherwise never be kicked for. True if there is more work now.
   */
  armKick(): boolean {
    if (this.o.eventIdx) this.used.setUint16(4 + 8 * this.size, this.lastAvail, true);
    return this.hasWork();
  }
}
