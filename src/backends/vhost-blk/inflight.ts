// The inflight region (vhost-user protocol feature INFLIGHT_SHMFD): a memfd the
// backend creates and QEMU keeps, so that a backend started after a crash knows
// which requests the last one had taken off the ring and not completed.
// Layout per queue (split ring), as libvhost-user's:
//   u64 features, u16 version, u16 desc_num, u16 last_batch_head, u16 used_idx,
//   then desc_num x { u8 inflight, u8 pad[5], u16 next, u64 counter }
// QEMU does not read it; it hands it back (SET_INFLIGHT_FD) on every start.

import { dataView } from './guest-memory.ts';

export const INFLIGHT_VERSION = 1;
const HEADER = 16;
const ENTRY = 16;
const ALIGN = 64;

/** Bytes one queue's part takes. */
export function inflightQueueSize(queueSize: number): number {
  const raw = HEADER + ENTRY * queueSize;
  return Math.ceil(raw / ALIGN) * ALIGN;
}

/** One queue's part of the region. */
export class InflightQueue {
  private readonly v: DataView;

  constructor(
    bytes: Uint8Array,
    readonly size: number,
  ) {
    if (bytes.length < HEADER + ENTRY * size) throw new Error('inflight region too small for its queue');
    this.v = dataView(bytes);
  }

  get version(): number {
    return this.v.getUint16(8, true);
  }
  set version(x: number) {
    this.v.setUint16(8, x, true);
  }
  get descNum(): number {
    return this.v.getUint16(10, true);
  }
  set descNum(x: number) {
    this.v.setUint16(10, x, true);
  }
  get lastBatchHead(): number {
    return this.v.getUint16(12, true);
  }
  set lastBatchHead(x: number) {
    this.v.setUint16(12, x, true);
  }
  get usedIdx(): number {
    return this.v.getUint16(14, true);
  }
  set usedIdx(x: number) {
    this.v.setUint16(14, x, true);
  }
  isInflight(head: number): boolean {
    return this.v.getUint8(HEADER + ENTRY * head) === 1;
  }
  counter(head: number): bigint {
    return this.v.getBigUint64(HEADER + ENTRY * head + 8, true);
  }
  mark(head: number, counter: bigint): void {
    this.v.setBigUint64(HEADER + ENTRY * head + 8, counter, true);
    this.v.setUint8(HEADER + ENTRY * head, 1);
  }
  clear(head: number): void {
    this.v.setUint8(HEADER + ENTRY * head, 0);
  }
}
