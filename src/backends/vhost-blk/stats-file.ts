// The disk's I/O counters in a small file the backend maps shared: the daemon
// reads them (block-stats, accounting) without asking the process, and a
// backend started after a crash opens the same file and counts on from where
// its predecessor stopped (a mapped file's pages outlive a SIGKILL), so a
// restart does not set a disk's counters back. The file goes with the domain;
// a new one gets a new epoch, which tells readers the counters started again.
//
// Layout, little-endian: u32 magic "XNBS", u32 version, f64 epoch, then the
// counters as f64 (exact up to 2^53) in STAT_FIELDS order. The reader is
// src/features/disks/backend-stats.ts (the backend imports nothing of Xenode's,
// so the layout is written down twice; test/unit/vhost-blk-stats.test.ts reads
// one with the other).

import { closeSync, fstatSync, ftruncateSync, openSync } from 'node:fs';
import { dataView } from './guest-memory.ts';
import { mapShared } from './libc.ts';

export const STATS_MAGIC = 0x53424e58; // "XNBS"
export const STATS_VERSION = 1;
export const STATS_FIELDS = [
  'rdOps',
  'rdBytes',
  'wrOps',
  'wrBytes',
  'flushOps',
  'rdTotalTimeNs',
  'wrTotalTimeNs',
  'failedRdOps',
  'failedWrOps',
] as const;
export type StatField = (typeof STATS_FIELDS)[number];
export const STATS_FILE_SIZE = 128;
const FIRST = 16;

export class StatsFile {
  private readonly v: DataView;
  private readonly off: Record<StatField, number>;
  /** Whether the file held counters already (a restarted backend). */
  readonly resumed: boolean;

  constructor(path: string) {
    const fd = openSync(path, 'a+');
    try {
      if (fstatSync(fd).size !== STATS_FILE_SIZE) ftruncateSync(fd, STATS_FILE_SIZE);
      this.v = dataView(mapShared(fd, STATS_FILE_SIZE, 0).bytes);
    } finally {
      // The mapping stays valid without the descriptor.
      closeSync(fd);
    }
    this.off = Object.fromEntries(STATS_FIELDS.map((f, i) => [f, FIRST + 8 * i])) as Record<StatField, number>;
    this.resumed = this.v.getUint32(0, true) === STATS_MAGIC && this.v.getUint32(4, true) === STATS_VERSION;
    if (!this.resumed) {
      for (let i = 0; i < STATS_FILE_SIZE; i += 8) this.v.setFloat64(i, 0, true);
      this.v.setFloat64(8, Math.floor(Math.random() * 2 ** 48) + 1, true);
      this.v.setUint32(4, STATS_VERSION, true);
      this.v.setUint32(0, STATS_MAGIC, true);
    }
  }

  add(f: StatField, n: number): void {
    const o = this.off[f];
    this.v.setFloat64(o, this.v.getFloat64(o, true) + n, true);
  }

  get(f: StatField): number {
    return this.v.getFloat64(this.off[f], true);
  }
}
