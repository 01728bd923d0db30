// What the disk feature shows and does for the API and the CLI: block-list's
// rows, per-disk I/O counters, and the operations the routes call. Plain types,
// so routes and commands never import the plugin that implements them.

import type { DiskSpec } from '../../config/types.ts';
import type { DiskStats } from '../../engine/disk-hotplug.ts';
import type { Domain } from '../../toolstack/domain.ts';

/** One row of block-list (xl's columns plus what Xenode knows). */
export interface BlockEntry {
  vdev: string;
  /** Xen device number: xl's Vdev column. */
  devid: number;
  /** Backend domain (always 0: QEMU serves the disk for the toolstack). */
  backendId: number;
  /** Frontend domain: xl's handle column. */
  handle: number;
  /** XenbusState: 4 connected, 5 closing (waiting for the guest to let go). */
  state: number;
  /** No event channels or grant rings under QEMU: -1 as xl prints for absent ones. */
  evtch: number;
  ringRef: number;
  backendPath: string;
  target: string;
  format: DiskSpec['format'];
  access: DiskSpec['access'];
  devtype: DiskSpec['devtype'];
}

export interface DiskStatsView extends DiskStats {
  vdev: string;
  devid: number;
}

/** The disk operations behind the block routes (DiskPlugin implements them). */
export interface DiskOps {
  list(d: Domain): BlockEntry[];
  stats(d: Domain): Promise<DiskStatsView[]>;
  attach(d: Domain, spec: DiskSpec): Promise<BlockEntry>;
  detach(d: Domain, ref: string, force: boolean): Promise<void>;
}
