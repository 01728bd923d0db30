// The I/O counters of a disk served by Xenode's backend (backendtype=xenode),
// read from the stats file the backend keeps mapped (src/backends/vhost-blk/
// stats-file.ts holds the writer and the layout; the backend imports nothing
// of Xenode's, so the layout is written down here again). The file outlives a
// backend's crash and its successor counts on, so the counters only go back
// to zero with a new file, which has a new epoch: accounting keys the disk by it.

import { closeSync, openSync, readSync } from 'node:fs';
import type { DiskStats } from '../../engine/disk-hotplug.ts';

const MAGIC = 0x53424e58; // "XNBS"
const VERSION = 1;
const SIZE = 128;
const FIELDS = [
  'rdOps',
  'rdBytes',
  'wrOps',
  'wrBytes',
  'flushOps',
  'rdTotalTimeNs',
  'wrTotalTimeNs',
  'failedRdOps',
  'failedWrOps',
] as const satisfies ReadonlyArray<keyof DiskStats>;

export interface BackendCounters {
  /** Changes whenever the counters start again from zero. */
  epoch: number;
  stats: DiskStats;
}

/** The counters in `path`, or undefined when there is no such file (yet) or it is not one. */
export function readBackendCounters(path: string): BackendCounters | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  const b = Buffer.alloc(SIZE);
  try {
    if (readSync(fd, b, 0, SIZE, 0) !== SIZE) return undefined;
  } finally {
    closeSync(fd);
  }
  if (b.readUInt32LE(0) !== MAGIC || b.readUInt32LE(4) !== VERSION) return undefined;
  const stats = Object.fromEntries(FIELDS.map((f, i) => [f, b.readDoubleLE(16 + 8 * i)])) as Record<
    (typeof FIELDS)[number],
    number
  >;
  return { epoch: b.readDoubleLE(8), stats };
}
