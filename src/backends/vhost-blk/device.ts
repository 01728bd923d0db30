// The vhost-user-blk device: QEMU's messages on one connection (features, the
// memory table, the rings, config space, the inflight region) and the requests
// on its queues, carried out on the image. Messages are handled one at a time;
// requests run concurrently, each completed on the used ring as its I/O ends.
// Before a ring stops (GET_VRING_BASE), the memory changes (SET_MEM_TABLE) or
// the connection goes, the requests in flight finish first, so no I/O ever
// writes into memory that is no longer mapped.

import {
  type BlkOptions,
  type BlkResult,
  type BlockImage,
  DISCARD_ALIGNMENT_SECTORS,
  MAX_DISCARD_SECTORS,
  MAX_DISCARD_SEG,
  type NowBlockImage,
  SECTOR,
  type SyncBlockImage,
  serveRequest,
  serveRequestNow,
  serveRequestSync,
  VIRTIO_BLK_S_OK,
} from './blk-request.ts';
import { GuestMemory, type MemRegion } from './guest-memory.ts';
import { InflightQueue, inflightQueueSize } from './inflight.ts';
import { closeFd, mapShared, newMemfd, signalEventFd, unmap } from './libc.ts';
import {
  bit,
  FLAG_NEED_REPLY,
  MAX_MEM_REGIONS,
  type Message,
  NAMES,
  PROTOCOL_F_CONFIG,
  PROTOCOL_F_INFLIGHT_SHMFD,
  PROTOCOL_F_MQ,
  PROTOCOL_F_REPLY_ACK,
  reply,
  u64Payload,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_GET_CONFIG,
  VHOST_USER_GET_FEATURES,
  VHOST_USER_GET_INFLIGHT_FD,
  VHOST_USER_GET_PROTOCOL_FEATURES,
  VHOST_USER_GET_QUEUE_NUM,
  VHOST_USER_GET_VRING_BASE,
  VHOST_USER_RESET_OWNER,
  VHOST_USER_SET_CONFIG,
  VHOST_USER_SET_FEATURES,
  VHOST_USER_SET_INFLIGHT_FD,
  VHOST_USER_SET_MEM_TABLE,
  VHOST_USER_SET_OWNER,
  VHOST_USER_SET_PROTOCOL_FEATURES,
  VHOST_USER_SET_VRING_ADDR,
  VHOST_USER_SET_VRING_BASE,
  VHOST_USER_SET_VRING_CALL,
  VHOST_USER_SET_VRING_ENABLE,
  VHOST_USER_SET_VRING_ERR,
  VHOST_USER_SET_VRING_KICK,
  VHOST_USER_SET_VRING_NUM,
  VRING_IDX_MASK,
  VRING_NOFD,
} from './protocol.ts';
import { MAX_QUEUE_SIZE, QueueBroken, type RingAddrs, SplitQueue } from './virtqueue.ts';

// virtio feature bits (virtio 1.x, 5.2.3 and 6).
const VIRTIO_BLK_F_SEG_MAX = 2;
const VIRTIO_BLK_F_RO = 5;
const VIRTIO_BLK_F_BLK_SIZE = 6;
const VIRTIO_BLK_F_FLUSH = 9;
const VIRTIO_BLK_F_DISCARD = 13;
const VIRTIO_BLK_F_WRITE_ZEROES = 14;
const VIRTIO_RING_F_INDIRECT_DESC = 28;
const VIRTIO_RING_F_EVENT_IDX = 29;
const VIRTIO_F_VERSION_1 = 32;
/** struct virtio_blk_config up to write_zeroes_may_unmap and its padding. */
export const CONFIG_SIZE = 60;
const SEG_MAX = 126;
const MAX_CONFIG_READ = 256;
const MAX_LOGGED_ERRORS = 50;

export type DeviceLog = (msg: string) => void;

export interface DeviceOptions {
  serial: string;
  log: DeviceLog;
  numQueues?: number;
  /** Where completed requests are counted (the stats file), if anywhere. */
  counters?: IoCounterSink;
}

/** The disk's I/O counters (src/backends/vhost-blk/stats-file.ts). */
export interface IoCounterSink {
  add(
    f:
      | 'rdOps'
      | 'rdBytes'
      | 'wrOps'
      | 'wrBytes'
      | 'flushOps'
      | 'rdTotalTimeNs'
      | 'wrTotalTimeNs'
      | 'failedRdOps'
      | 'failedWrOps',
    n: number,
  ): void;
}

interface Queue {
  index: number;
  num: number;
  addrs?: RingAddrs;
  base: number;
  kickFd: number;
  callFd: number;
  errFd: number;
  kickSet: boolean;
  enabled: boolean;
  ring?: SplitQueue;
  broken: boolean;
  pending: number;
  drained: Array<() => void>;
  signalQueued: boolean;
}

interface Mapping {
  ptr: unknown;
  len: number;
}

export interface DeviceStats {
  requests: number;
  errors: number;
  resubmitted: number;
  connections: number;
}

type Send = (data: Buffer, fds?: number[]) => void;

export class VhostBlkDevice {
  private acked = 0n;
  private protocol = 0n;
  private mem?: GuestMemory;
  private memMaps: Mapping[] = [];
  private inflightMap?: Mapping;
  private inflight: InflightQueue[] = [];
  private readonly queues: Queue[];
  private connected = false;
  readonly stats: DeviceStats = { requests: 0, errors: 0, resubmitted: 0, connections: 0 };
  /** The image can move data on this thread: a request served alone is (serveRequestSync). */
  private readonly syncImage?: SyncBlockImage;
  /** The image can tell a page-cache hit: several requests at once are served here when they are. */
  private readonly nowImage?: NowBlockImage;
  /** Called when a request completes (the bench's restart gap, the control socket's counters). */
  onComplete?: () => void;

  constructor(
    private readonly image: BlockImage,
    private readonly o: DeviceOptions,
  ) {
    this.queues = Array.from({ length: o.numQueues ?? 1 }, (_, index) => this.freshQueue(index));
    if ('readvSync' in image) this.syncImage = image as SyncBlockImage;
    if ('readvNow' in image) this.nowImage = image as NowBlockImage;
  }

  private freshQueue(index: number): Queue {
    return {
      index,
      num: 0,
      base: 0,
      kickFd: -1,
      callFd: -1,
      errFd: -1,
      kickSet: false,
      enabled: false,
      broken: false,
      pending: 0,
      drained: [],
      signalQueued: false,
    };
  }

  /** What the device offers (GET_FEATURES). */
  get features(): bigint {
    let f =
      bit(VIRTIO_F_VERSION_1) |
      bit(VHOST_USER_F_PROTOCOL_FEATURES) |
      bit(VIRTIO_RING_F_INDIRECT_DESC) |
      bit(VIRTIO_RING_F_EVENT_IDX) |
      bit(VIRTIO_BLK_F_SEG_MAX) |
      bit(VIRTIO_BLK_F_BLK_SIZE) |
      bit(VIRTIO_BLK_F_FLUSH);
    if (this.image.readOnly) f |= bit(VIRTIO_BLK_F_RO);
    else f |= bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
    return f;
  }

  static readonly PROTOCOL_FEATURES =
    bit(PROTOCOL_F_MQ) | bit(PROTOCOL_F_REPLY_ACK) | bit(PROTOCOL_F_CONFIG) | bit(PROTOCOL_F_INFLIGHT_SHMFD);

  private has(f: number): boolean {
    return (this.acked & bit(f)) !== 0n;
  }

  private get blkOptions(): BlkOptions {
    return {
      serial: this.o.serial,
      discard: this.has(VIRTIO_BLK_F_DISCARD),
      writeZeroes: this.has(VIRTIO_BLK_F_WRITE_ZEROES),
    };
  }

  /** struct virtio_blk_config. */
  config(): Buffer {
    const c = Buffer.alloc(CONFIG_SIZE);
    c.writeBigUInt64LE(BigInt(this.image.size / SECTOR), 0);
    c.writeUInt32LE(SEG_MAX, 12);
    c.writeUInt32LE(SECTOR, 20);
    c.writeUInt16LE(this.queues.length, 34);
    if (!this.image.readOnly) {
      c.writeUInt32LE(MAX_DISCARD_SECTORS, 36);
      c.writeUInt32LE(MAX_DISCARD_SEG, 40);
      c.writeUInt32LE(DISCARD_ALIGNMENT_SECTORS, 44);
      c.writeUInt32LE(MAX_DISCARD_SECTORS, 48);
      c.writeUInt32LE(MAX_DISCARD_SEG, 52);
      c.writeUInt8(1, 56);
    }
    return c;
  }

  /** Kick descriptors to wait on, with their queue. */
  kickFds(): Array<{ fd: number; queue: number }> {
    return this.queues.filter((q) => q.kickFd >= 0).map((q) => ({ fd: q.kickFd, queue: q.index }));
  }

  connect(): void {
    this.connected = true;
    this.stats.connections++;
  }

  /** One message from QEMU; replies through `send`. */
  async handle(m: Message, send: Send): Promise<void> {
    let ok = true;
    let replied = false;
    const answer = (payload: Buffer, fds?: number[]) => {
      replied = true;
      send(reply(m.request, payload), fds);
    };
    const fds = [...m.fds];
    try {
      ok = await this.dispatch(m, answer, fds);
    } catch (e) {
      ok = false;
      this.o.log(`${NAMES[m.request] ?? `request ${m.request}`}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      // Descriptors a message brought and nothing kept.
      for (const fd of fds) closeFd(fd);
    }
    if (!replied && m.flags & FLAG_NEED_REPLY && this.protocol & bit(PROTOCOL_F_REPLY_ACK)) {
      send(reply(m.request, u64Payload(ok ? 0n : 1n)));
    }
  }

  private queue(p: Buffer, off = 0): Queue {
    if (p.length < off + 4) throw new Error('payload too short');
    const i = p.readUInt32LE(off) & VRING_IDX_MASK;
    const q = this.queues[i];
    if (!q) throw new Error(`no queue ${i}`);
    return q;
  }

  /** Take the one descriptor a message must carry (out of `fds`, so it is not closed). */
  private takeFd(fds: number[]): number {
    const fd = fds.shift();
    if (fd === undefined) throw new Error('descriptor missing');
    return fd;
  }

  private need(p: Buffer, n: number): void {
    if (p.length < n) throw new Error(`payload of ${p.length} bytes, ${n} expected`);
  }

  private async dispatch(m: Message, answer: Send, fds: number[]): Promise<boolean> {
    const p = m.payload;
    switch (m.request) {
      case VHOST_USER_GET_FEATURES:
        answer(u64Payload(this.features));
        return true;
      case VHOST_USER_SET_FEATURES:
        this.need(p, 8);
        this.acked = p.readBigUInt64LE(0) & this.features;
        return true;
      case VHOST_USER_GET_PROTOCOL_FEATURES:
        answer(u64Payload(VhostBlkDevice.PROTOCOL_FEATURES));
        return true;
      case VHOST_USER_SET_PROTOCOL_FEATURES:
        this.need(p, 8);
        this.protocol = p.readBigUInt64LE(0) & VhostBlkDevice.PROTOCOL_FEATURES;
        return true;
      case VHOST_USER_GET_QUEUE_NUM:
        answer(u64Payload(BigInt(this.queues.length)));
        return true;
      case VHOST_USER_SET_OWNER:
        return true;
      case VHOST_USER_RESET_OWNER:
        await this.stopAll();
        return true;
      case VHOST_USER_SET_MEM_TABLE:
        await this.setMemTable(p, fds);
        return true;
      case VHOST_USER_SET_VRING_NUM: {
        const q = this.queue(p);
        this.need(p, 8);
        const num = p.readUInt32LE(4);
        if (num < 1 || num > MAX_QUEUE_SIZE || (num & (num - 1)) !== 0) throw new Error(`queue size ${num}`);
        q.num = num;
        return true;
      }
      case VHOST_USER_SET_VRING_ADDR: {
        const q = this.queue(p);
        this.need(p, 40);
        const n = (o: number) => Number(p.readBigUInt64LE(o));
        q.addrs = { desc: n(8), used: n(16), avail: n(24) };
        return true;
      }
      case VHOST_USER_SET_VRING_BASE: {
        const q = this.queue(p);
        this.need(p, 8);
        q.base = p.readUInt32LE(4) & 0xffff;
        return true;
      }
      case VHOST_USER_GET_VRING_BASE: {
        const q = this.queue(p);
        const last = await this.stopQueue(q);
        const b = Buffer.alloc(8);
        b.writeUInt32LE(q.index, 0);
        b.writeUInt32LE(last, 4);
        answer(b);
        return true;
      }
      case VHOST_USER_SET_VRING_KICK:
      case VHOST_USER_SET_VRING_CALL:
      case VHOST_USER_SET_VRING_ERR: {
        this.need(p, 8);
        const q = this.queue(p);
        const fd = p.readUInt32LE(0) & VRING_NOFD ? -1 : this.takeFd(fds);
        if (m.request === VHOST_USER_SET_VRING_KICK) {
          closeFd(q.kickFd);
          q.kickFd = fd;
          q.kickSet = true;
          // Without protocol features a ring runs once it has its kick.
          if (!this.has(VHOST_USER_F_PROTOCOL_FEATURES)) q.enabled = true;
          if (fd < 0) this.o.log(`queue ${q.index}: no kick descriptor (polling is not supported)`);
          this.start(q);
        } else if (m.request === VHOST_USER_SET_VRING_CALL) {
          closeFd(q.callFd);
          q.callFd = fd;
        } else {
          closeFd(q.errFd);
          q.errFd = fd;
        }
        return true;
      }
      case VHOST_USER_SET_VRING_ENABLE: {
        const q = this.queue(p);
        this.need(p, 8);
        q.enabled = p.readUInt32LE(4) === 1;
        this.start(q);
        return true;
      }
      case VHOST_USER_GET_CONFIG: {
        this.need(p, 12);
        const off = p.readUInt32LE(0);
        const size = p.readUInt32LE(4);
        if (off + size > CONFIG_SIZE || size > MAX_CONFIG_READ) {
          answer(Buffer.alloc(0)); // the protocol's "failed": an empty payload
          return false;
        }
        const out = Buffer.alloc(12 + size);
        p.copy(out, 0, 0, 12);
        this.config().copy(out, 12, off, off + size);
        answer(out);
        return true;
      }
      case VHOST_USER_SET_CONFIG:
        // Only writeback (CONFIG_WCE) is writable, and it is not offered.
        return true;
      case VHOST_USER_GET_INFLIGHT_FD:
        this.getInflight(p, answer);
        return true;
      case VHOST_USER_SET_INFLIGHT_FD:
        this.setInflight(p, fds);
        return true;
      default:
        this.o.log(`unsupported message ${m.request}`);
        return false;
    }
  }

  // ---- memory -----------------------------------------------------------------

  private async setMemTable(p: Buffer, fds: number[]): Promise<void> {
    this.need(p, 8);
    const n = p.readUInt32LE(0);
    if (n < 1 || n > MAX_MEM_REGIONS) throw new Error(`memory table of ${n} regions`);
    this.need(p, 8 + 32 * n);
    if (fds.length < n) throw new Error(`memory table of ${n} regions with ${fds.length} descriptors`);
    // Requests still running write into the old mappings: let them finish.
    await Promise.all(this.queues.map((q) => this.drain(q)));
    const maps: Mapping[] = [];
    const regions: MemRegion[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const o = 8 + 32 * i;
        const gpa = Number(p.readBigUInt64LE(o));
        const size = Number(p.readBigUInt64LE(o + 8));
        const uva = Number(p.readBigUInt64LE(o + 16));
        const offset = Number(p.readBigUInt64LE(o + 24));
        const fd = fds[i] as number;
        const m = mapShared(fd, offset + size, 0);
        maps.push({ ptr: m.ptr, len: offset + size });
        regions.push({ gpa, uva, bytes: m.bytes.subarray(offset, offset + size) });
      }
    } catch (e) {
      for (const m of maps) unmap(m.ptr, m.len);
      throw e;
    }
    this.unmapMemory();
    this.memMaps = maps;
    this.mem = new GuestMemory(regions);
    // Rings already running are found again in the new mappings.
    for (const q of this.queues) {
      if (q.ring) {
        q.base = q.ring.lastAvailIdx;
        q.ring = undefined;
        this.start(q, false);
      }
    }
  }

  private unmapMemory(): void {
    for (const m of this.memMaps) unmap(m.ptr, m.len);
    this.memMaps = [];
    this.mem = undefined;
  }

  private getInflight(p: Buffer, answer: Send): void {
    this.need(p, 20);
    const numQueues = p.readUInt16LE(16);
    const queueSize = p.readUInt16LE(18);
    if (numQueues < 1 || numQueues > this.queues.length || queueSize < 1 || queueSize > MAX_QUEUE_SIZE) {
      throw new Error(`inflight region for ${numQueues} queues of ${queueSize}`);
    }
    const size = numQueues * inflightQueueSize(queueSize);
    const fd = newMemfd('xenode-blk-inflight', size);
    try {
      this.mapInflight(fd, size, 0, numQueues, queueSize);
      // struct VhostUserInflight: 20 bytes of fields, padded to 24.
      const out = Buffer.alloc(24);
      out.writeBigUInt64LE(BigInt(size), 0);
      out.writeBigUInt64LE(0n, 8);
      out.writeUInt16LE(numQueues, 16);
      out.writeUInt16LE(queueSize, 18);
      answer(out, [fd]);
    } finally {
      closeFd(fd);
    }
  }

  private setInflight(p: Buffer, fds: number[]): void {
    this.need(p, 20);
    const size = Number(p.readBigUInt64LE(0));
    const offset = Number(p.readBigUInt64LE(8));
    const numQueues = p.readUInt16LE(16);
    const queueSize = p.readUInt16LE(18);
    if (numQueues < 1 || queueSize < 1 || queueSize > MAX_QUEUE_SIZE) {
      throw new Error(`inflight region for ${numQueues} queues of ${queueSize}`);
    }
    if (size < numQueues * inflightQueueSize(queueSize)) throw new Error(`inflight region of ${size} bytes too small`);
    this.mapInflight(this.takeFd(fds), size, offset, numQueues, queueSize, true);
  }

  private mapInflight(fd: number, size: number, offset: number, n: number, qsize: number, close = false): void {
    try {
      const m = mapShared(fd, offset + size, 0);
      if (this.inflightMap) unmap(this.inflightMap.ptr, this.inflightMap.len);
      this.inflightMap = { ptr: m.ptr, len: offset + size };
      const per = inflightQueueSize(qsize);
      this.inflight = Array.from(
        { length: n },
        (_, i) => new InflightQueue(m.bytes.subarray(offset + i * per, offset + (i + 1) * per), qsize),
      );
    } finally {
      if (close) closeFd(fd);
    }
  }

  // ---- queues -------------------------------------------------------------------

  /** Start a queue once it has everything (memory, size, addresses, kick, enabled) and serve it. */
  private start(q: Queue, recover = true): void {
    if (q.ring || !this.mem || !q.addrs || !q.num || !q.kickSet || !q.enabled) return;
    const inflight = this.inflight[q.index];
    const useInflight = inflight && inflight.size >= q.num ? inflight : undefined;
    try {
      q.ring = new SplitQueue(this.mem, q.num, q.addrs, {
        eventIdx: this.has(VIRTIO_RING_F_EVENT_IDX),
        indirect: this.has(VIRTIO_RING_F_INDIRECT_DESC),
        lastAvail: q.base,
        ...(useInflight ? { inflight: useInflight } : {}),
        recover,
      });
    } catch (e) {
      this.breakQueue(q, e);
      return;
    }
    q.broken = false;
    const again = q.ring.resubmit.splice(0);
    if (again.length > 0) {
      this.o.log(`queue ${q.index}: resubmitting ${again.length} request(s) left in flight`);
      this.stats.resubmitted += again.length;
    }
    for (const head of again) {
      try {
        this.submit(q, q.ring, q.ring.walk(head));
      } catch (e) {
        this.breakQueue(q, e);
        return;
      }
    }
    this.serve(q);
  }

  private breakQueue(q: Queue, e: unknown): void {
    q.broken = true;
    this.stats.errors++;
    this.o.log(`queue ${q.index} stopped: ${e instanceof Error ? e.message : String(e)}`);
    if (!(e instanceof QueueBroken)) return;
    if (q.errFd >= 0) signalEventFd(q.errFd);
  }

  /** The guest kicked queue `index`. */
  kick(index: number): void {
    const q = this.queues[index];
    if (q) this.serve(q);
  }

  private serve(q: Queue): void {
    const ring = q.ring;
    if (!ring || !q.enabled || q.broken) return;
    // Requests completed on this thread in this pass: one interrupt for them all, at the end.
    let done = 0;
    try {
      for (;;) {
        const first = ring.pop();
        if (first) {
          const second = ring.pop();
          // One request and nothing else running (queue depth 1): served here and now,
          // without the worker threads' hand-offs.
          if (!second && q.pending === 0 && this.syncImage && this.serveNow(q, ring, first)) {
            done++;
            continue;
          }
          // Several: each one the page cache takes at once is served here too, the rest
          // go to the worker threads and overlap there.
          done += this.take(q, ring, first);
          if (second) done += this.take(q, ring, second);
          for (let c = ring.pop(); c; c = ring.pop()) done += this.take(q, ring, c);
          continue;
        }
        if (!ring.armKick()) break;
      }
    } catch (e) {
      this.breakQueue(q, e);
    } finally {
      if (done > 0 && q.ring === ring && ring.takeSignal() && q.callFd >= 0) signalEventFd(q.callFd);
    }
  }

  /** Serve a request now if it cannot block (1), else on the worker threads (0). */
  private take(q: Queue, ring: SplitQueue, chain: ReturnType<SplitQueue['walk']>): number {
    if (this.nowImage) {
      const t0 = performance.now();
      const r = serveRequestNow(chain, this.nowImage, this.blkOptions);
      if (r) {
        q.pending++;
        this.stats.requests++;
        this.finish(q, ring, chain.head, r, t0, true);
        return 1;
      }
    }
    this.submit(q, ring, chain);
    return 0;
  }

  /** Serve a request synchronously; false (nothing done) for the kinds that stay asynchronous. */
  private serveNow(q: Queue, ring: SplitQueue, chain: ReturnType<SplitQueue['walk']>): boolean {
    const t0 = performance.now();
    const r = serveRequestSync(chain, this.syncImage as SyncBlockImage, this.blkOptions);
    if (!r) return false;
    q.pending++;
    this.stats.requests++;
    this.finish(q, ring, chain.head, r, t0, true);
    return true;
  }

  private submit(q: Queue, ring: SplitQueue, chain: ReturnType<SplitQueue['walk']>): void {
    q.pending++;
    this.stats.requests++;
    const t0 = performance.now();
    void serveRequest(chain, this.image, this.blkOptions).then((r) => this.finish(q, ring, chain.head, r, t0, false));
  }

  private finish(q: Queue, ring: SplitQueue, head: number, r: BlkResult, t0: number, now: boolean): void {
    if (r.error) {
      this.stats.errors++;
      if (this.stats.errors <= MAX_LOGGED_ERRORS) {
        this.o.log(`queue ${q.index}: request failed: ${r.error}`);
        if (this.stats.errors === MAX_LOGGED_ERRORS) this.o.log('(further request errors are counted, not logged)');
      }
    }
    // A ring replaced or a connection gone meanwhile: the inflight region keeps the request.
    if (q.ring === ring && this.connected) {
      this.count(r, t0);
      ring.push(head, r.written);
      // Completed on this thread: serve() sends the interrupt once the ring is empty.
      if (!now) this.signalSoon(q);
      this.onComplete?.();
    }
    if (--q.pending === 0) for (const w of q.drained.splice(0)) w();
  }

  /** A request completed to the guest, in the disk's counters (a request served again after a restart counts once). */
  private count(r: BlkResult, t0: number): void {
    const c = this.o.counters;
    if (!c) return;
    const ok = r.status === VIRTIO_BLK_S_OK;
    const ns = Math.round((performance.now() - t0) * 1e6);
    if (r.kind === 'read') {
      if (ok) {
        c.add('rdOps', 1);
        c.add('rdBytes', r.bytes ?? 0);
        c.add('rdTotalTimeNs', ns);
      } else c.add('failedRdOps', 1);
    } else if (r.kind === 'write') {
      if (ok) {
        c.add('wrOps', 1);
        c.add('wrBytes', r.bytes ?? 0);
        c.add('wrTotalTimeNs', ns);
      } else c.add('failedWrOps', 1);
    } else if (r.kind === 'flush' && ok) c.add('flushOps', 1);
  }

  /** One interrupt for the completions of one turn of the event loop. */
  private signalSoon(q: Queue): void {
    if (q.signalQueued) return;
    q.signalQueued = true;
    setImmediate(() => {
      q.signalQueued = false;
      if (q.ring?.takeSignal() && q.callFd >= 0) signalEventFd(q.callFd);
    });
  }

  private drain(q: Queue): Promise<void> {
    if (q.pending === 0) return Promise.resolve();
    return new Promise((r) => q.drained.push(r));
  }

  /** GET_VRING_BASE: finish the queue's requests, stop it, and say where it stopped. */
  private async stopQueue(q: Queue): Promise<number> {
    await this.drain(q);
    const last = q.ring?.lastAvailIdx ?? q.base;
    if (q.ring?.takeSignal() && q.callFd >= 0) signalEventFd(q.callFd);
    q.ring = undefined;
    q.enabled = false;
    q.kickSet = false;
    q.broken = false;
    q.base = last;
    closeFd(q.kickFd);
    q.kickFd = -1;
    closeFd(q.callFd);
    q.callFd = -1;
    return last;
  }

  private async stopAll(): Promise<void> {
    for (const q of this.queues) await this.stopQueue(q);
  }

  /**
   * The connection is gone (QEMU exited or restarts the device): let running
   * requests finish without completing them (the inflight region has them for
   * the next connection), then let go of the memory and descriptors.
   */
  async disconnect(): Promise<void> {
    this.connected = false;
    for (const q of this.queues) q.ring = undefined;
    await Promise.all(this.queues.map((q) => this.drain(q)));
    for (const q of this.queues) {
      closeFd(q.kickFd);
      closeFd(q.callFd);
      closeFd(q.errFd);
    }
    this.queues.splice(0, this.queues.length, ...this.queues.map((q) => this.freshQueue(q.index)));
    this.unmapMemory();
    if (this.inflightMap) unmap(this.inflightMap.ptr, this.inflightMap.len);
    this.inflightMap = undefined;
    this.inflight = [];
    this.acked = 0n;
    this.protocol = 0n;
  }

  /** Requests being served now (all queues). */
  get inFlight(): number {
    return this.queues.reduce((n, q) => n + q.pending, 0);
  }
}
