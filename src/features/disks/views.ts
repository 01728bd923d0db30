// What the disk feature shows and does for the API and the CLI: block-list's
// rows, per-disk I/O counters, and the operations the routes call. Plain types,
// so routes and commands never import the plugin that implements them.

import type { DiskSpec, DiskThrottle } from '../../config/types.ts';
import type { DiskStats } from '../../engine/disk-hotplug.ts';
import type { ShareLimits } from '../../engine/disk-throttle.ts';
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

/** One disk's limits: as configured, and as read back from its QEMU. */
export interface ThrottleView {
  vdev: string;
  devid: number;
  /** The disk's own limits in its spec (the domain's config). */
  config: DiskThrottle;
  /** Its own limits in force in QEMU; null where QEMU has none to show (not running,
   *  an empty CD-ROM, or a domain started before disk limits). */
  inForce: DiskThrottle | null;
  /** Its share of the sponsor's aggregate in force in QEMU ({} = none); null as above. */
  share: ShareLimits | null;
}

/** A domain's limits: its sponsor's aggregate and each disk's. */
export interface DomainThrottleView {
  domid: number;
  name: string;
  /** The sponsor's aggregate over all its disks (quota-set disk-bps/disk-iops); {} = none. */
  aggregate: ShareLimits;
  disks: ThrottleView[];
}

/** The disk operations behind the block routes (DiskPlugin implements them). */
export interface DiskOps {
  list(d: Domain): BlockEntry[];
  stats(d: Domain): Promise<DiskStatsView[]>;
  attach(d: Domain, spec: DiskSpec): Promise<BlockEntry>;
  detach(d: Domain, ref: string, force: boolean): Promise<void>;
  throttleList(d: Domain): Promise<DomainThrottleView>;
  /** Replace a disk's own limits (all of them; {} = none), in QEMU and in the config. */
  setThrottle(d: Domain, ref: string, t: DiskThrottle): Promise<ThrottleView>;
}
