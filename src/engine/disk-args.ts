// QEMU devices for a domain's disks (docs/disks.md). Each image is a -blockdev
// (file node + raw/qcow2 format node); a disk is a virtio-blk-pci behind Xenode's
// own PCI bridge, a CD-ROM a scsi-cd on a virtio-scsi controller behind the same
// bridge. Options are JSON objects so a path never needs QEMU comma escaping, and
// the same objects serve the command line and QMP hotplug. A disk with a
// throttle plan gets two throttle filter nodes above its image (disk-throttle.ts).

import { vdevNumber } from '../config/disk.ts';
import type { DiskSpec } from '../config/types.ts';
import { XenodeError } from '../errors.ts';
import { type ThrottlePlan, throttledNode, throttleGroupObjects, throttleIds } from './disk-throttle.ts';

/**
 * A pci-bridge of its own gives disks 32 slots no other feature competes for
 * (static_shm takes root slots 0x10-0x17, q35 has 0x1f), and hotplug works
 * behind it on pc and q35 alike (q35's root bus takes no hotplug).
 */
export const DISK_BRIDGE_ID = 'xnblk';
export const DISK_BRIDGE_SLOT = 0x1e;
/**
 * Bridge slots 1..30 hold virtio-blk disks, 31 the CD-ROM controller. Slot 0
 * stays empty: where the bridge's own hotplug controller (SHPC) is in use, as
 * on microvm, QEMU refuses it.
 */
export const DISK_FIRST_SLOT = 1;
export const DISK_SLOTS = 30;
export const CDROM_HBA_ID = 'xnscsi';
export const CDROM_HBA_SLOT = 31;
/** virtio-scsi addresses targets 0..255; plenty for CD-ROMs. */
export const MAX_CDROMS = 64;

export type AioMode = 'threads' | 'native' | 'io_uring';

/** Host I/O path of one image. */
export interface DiskIo {
  /** O_DIRECT (cache=none): no double caching in host and guest page caches. */
  direct: boolean;
  aio: AioMode;
}

/**
 * One image of a disk's chain as a gate checked it, top first. QEMU is handed
 * the whole chain, so it never follows a backing or data file name it reads
 * from a header when it opens the image.
 */
export interface PinnedImage {
  path: string;
  format: DiskSpec['format'];
  /** A qcow2 image's external data file (guest data, plain bytes). */
  dataFile?: string;
}

export interface PlacedDisk {
  spec: DiskSpec;
  /** The checked chain (its first image is spec's target); without it QEMU follows the headers. */
  chain?: readonly PinnedImage[];
  /** Xen device number (xvda = 51712), the disk's identity everywhere. */
  devnum: number;
  kind: 'virtio-blk' | 'scsi-cd';
  /** Bridge slot (virtio-blk, from DISK_FIRST_SLOT) or SCSI target id (scsi-cd, from 0). */
  slot: number;
  /** Limits above the image; without it, the spec's own limits (if any) and no share. */
  throttle?: ThrottlePlan;
}

/** The throttle filters a disk gets: none for an empty CD-ROM or a disk with neither plan nor limits. */
export function throttlePlanOf(p: PlacedDisk): ThrottlePlan | undefined {
  if (p.spec.target === '') return undefined;
  return p.throttle ?? (p.spec.throttle ? { own: p.spec.throttle, share: {} } : undefined);
}

export interface DiskIds {
  device: string;
  /** Format node; undefined for an empty CD-ROM. */
  node: string;
}

export function diskIds(devnum: number): DiskIds {
  return { device: `xvbd${devnum}`, node: `xvbd${devnum}-fmt` };
}

/** The Xen device number behind one of our QEMU device ids, if it is one. */
export function devnumOfDeviceId(id: string): number | undefined {
  const m = /^xvbd(\d+)$/.exec(id);
  return m ? Number(m[1]) : undefined;
}

export function devnumOf(spec: DiskSpec): number {
  const n = vdevNumber(spec.vdev);
  if (n === undefined) throw new XenodeError('config', `invalid vdev '${spec.vdev}'`);
  return n;
}

/**
 * Disks sorted by Xen device number take bridge slots 0, 1, 2, ... and CD-ROMs
 * SCSI targets 0, 1, ...; Linux probes in slot order, so the guest names them
 * vda, vdb, ... (and sr0, sr1, ...) in Xen order.
 */
export function placeDisks(disks: readonly DiskSpec[]): PlacedDisk[] {
  const sorted = disks.map((spec) => ({ spec, devnum: devnumOf(spec) })).sort((a, b) => a.devnum - b.devnum);
  const out: PlacedDisk[] = [];
  let blk = 0;
  let cd = 0;
  for (const { spec, devnum } of sorted) {
    if (spec.devtype === 'cdrom') out.push({ spec, devnum, kind: 'scsi-cd', slot: cd++ });
    else out.push({ spec, devnum, kind: 'virtio-blk', slot: DISK_FIRST_SLOT + blk++ });
  }
  if (blk > DISK_SLOTS) {
    throw new XenodeError('config', `too many disks: ${blk}`, { hint: `a domain has at most ${DISK_SLOTS} disks` });
  }
  if (cd > MAX_CDROMS) {
    throw new XenodeError('config', `too many CD-ROMs: ${cd}`, { hint: `a domain has at most ${MAX_CDROMS} CD-ROMs` });
  }
  return out;
}

/** What a boot-time disk is called in a Linux guest: /dev/vdX by slot, /dev/srN by target. */
export function guestDeviceName(p: PlacedDisk): string {
  if (p.kind === 'scsi-cd') return `/dev/sr${p.slot}`;
  let name = '';
  // Linux's virtio_blk naming: a..z, aa..zz, ... (bijective base 26).
  for (let n = p.slot - DISK_FIRST_SLOT + 1; n > 0; n = Math.floor((n - 1) / 26))
    name = String.fromCharCode(97 + ((n - 1) % 26)) + name;
  return `/dev/vd${name}`;
}

/**
 * The host page cache with QEMU's thread pool (QEMU's and libvirt's default).
 * Measured against O_DIRECT with io_uring and with Linux AIO (docs/benchmarks.md,
 * "Disk I/O"): as fast on a quiet host and far steadier on a busy one, where the
 * O_DIRECT modes lost up to 10x; it also works on tmpfs (no O_DIRECT) and where a
 * seccomp policy forbids io_uring. The cost: guest data cached in host RAM too,
 * which the host reclaims under pressure.
 */
export const DEFAULT_DISK_IO: Readonly<DiskIo> = Object.freeze({ direct: false, aio: 'threads' });

/** The -blockdev / blockdev-add object of an image; undefined for an empty CD-ROM. */
export function blockdevOptions(p: PlacedDisk, io: DiskIo): Record<string, unknown> | undefined {
  if (p.spec.target === '') return undefined;
  const chain = p.chain;
  if (chain && (chain[0]?.path !== p.spec.target || chain[0].format !== p.spec.format)) {
    throw new XenodeError('internal', `the checked chain of ${p.spec.vdev} does not start at its image`);
  }
  const node = imageNode(p.spec.target, p.spec.format, p.spec.access === 'ro', io, chain);
  const image = { driver: node.driver, 'node-name': diskIds(p.devnum).node, ...node };
  return throttlePlanOf(p) ? throttledNode(p.devnum, image) : image;
}

/** The node the device reads and writes through: the top filter, or the image. */
export function driveNode(p: PlacedDisk): string {
  return throttlePlanOf(p) ? throttleIds(p.devnum).own : diskIds(p.devnum).node;
}

/** The -object / object-add throttle groups a disk's filters need (none without a plan). */
export function throttleObjects(p: PlacedDisk): Record<string, unknown>[] {
  const plan = throttlePlanOf(p);
  return plan ? throttleGroupObjects(p.devnum, plan) : [];
}

/**
 * A format node over its file node. Given a chain, a qcow2 node also gets its
 * data file and its backing node from it (read-only, as QEMU opens backing
 * files), or `backing: null` at the chain's end: nothing is left for QEMU to
 * look up by a name written in the image.
 */
function imageNode(
  path: string,
  format: DiskSpec['format'],
  readOnly: boolean,
  io: DiskIo,
  chain: readonly PinnedImage[] | undefined,
): Record<string, unknown> {
  // no-flush stays off: a guest's flush (sync, fsync) reaches the host file.
  const cache = { direct: io.direct, 'no-flush': false };
  const file = (filename: string) => ({
    driver: 'file',
    filename,
    'read-only': readOnly,
    aio: io.aio,
    discard: 'unmap',
    cache,
  });
  const node: Record<string, unknown> = {
    driver: format,
    'read-only': readOnly,
    discard: 'unmap',
    cache,
    file: file(path),
  };
  if (chain && format === 'qcow2') {
    const self = chain[0];
    if (self?.dataFile !== undefined) node['data-file'] = file(self.dataFile);
    const below = chain[1];
    node.backing = below ? imageNode(below.path, below.format, true, io, chain.slice(1)) : null;
  }
  return node;
}

/** The -device / device_add object of a disk. */
export function deviceOptions(p: PlacedDisk): Record<string, unknown> {
  const ids = diskIds(p.devnum);
  // The guest finds a disk by its Xen name in /sys/block/vdX/serial (virtio serials hold 20 bytes).
  const serial = p.spec.vdev.slice(0, 20);
  if (p.kind === 'scsi-cd') {
    const o: Record<string, unknown> = {
      driver: 'scsi-cd',
      id: ids.device,
      bus: `${CDROM_HBA_ID}.0`,
      'scsi-id': p.slot,
      lun: 0,
      serial,
    };
    if (p.spec.target !== '') o.drive = driveNode(p);
    return o;
  }
  return {
    driver: 'virtio-blk-pci',
    id: ids.device,
    drive: driveNode(p),
    bus: DISK_BRIDGE_ID,
    addr: `0x${p.slot.toString(16)}`,
    serial,
  };
}

export function bridgeOptions(): Record<string, unknown> {
  return {
    driver: 'pci-bridge',
    id: DISK_BRIDGE_ID,
    chassis_nr: DISK_BRIDGE_SLOT,
    addr: `0x${DISK_BRIDGE_SLOT.toString(16)}`,
  };
}

export function cdromHbaOptions(): Record<string, unknown> {
  return { driver: 'virtio-scsi-pci', id: CDROM_HBA_ID, bus: DISK_BRIDGE_ID, addr: `0x${CDROM_HBA_SLOT.toString(16)}` };
}

/**
 * Command-line arguments for all boot-time disks. The bridge is always there so
 * a domain booted without disks can still take one by hotplug.
 */
export function diskArgs(placed: readonly PlacedDisk[], ioFor: (p: PlacedDisk) => DiskIo): string[] {
  const args = ['-device', JSON.stringify(bridgeOptions())];
  if (placed.some((p) => p.kind === 'scsi-cd')) args.push('-device', JSON.stringify(cdromHbaOptions()));
  for (const p of placed) {
    for (const o of throttleObjects(p)) args.push('-object', JSON.stringify(o));
    const bd = blockdevOptions(p, ioFor(p));
    if (bd) args.push('-blockdev', JSON.stringify(bd));
    args.push('-device', JSON.stringify(deviceOptions(p)));
  }
  return args;
}
