// Disk hotplug and statistics over QMP: blockdev-add + device_add to attach;
// device_del, then (once the guest released it: DEVICE_DELETED) blockdev-del.
// A disk with limits gets its throttle groups (object-add) before its nodes,
// and loses them after (disk-throttle.ts).

import { XenodeError } from '../errors.ts';
import {
  blockdevOptions,
  CDROM_HBA_ID,
  cdromHbaOptions,
  DISK_BRIDGE_ID,
  DISK_FIRST_SLOT,
  DISK_SLOTS,
  type DiskIo,
  deviceOptions,
  devnumOfDeviceId,
  diskIds,
  MAX_CDROMS,
  type PlacedDisk,
  throttlePlanOf,
} from './disk-args.ts';
import { addThrottleGroups, removeThrottleGroups, throttleIds } from './disk-throttle.ts';
import type { QemuMachine } from './qemu-machine.ts';
import { QmpError } from './qmp.ts';

function why(e: unknown): string {
  return e instanceof QmpError ? e.desc : e instanceof Error ? e.message : String(e);
}

/** QEMU's image-lock refusal, in words that say what to do. */
function lockError(p: PlacedDisk, e: unknown): XenodeError | undefined {
  const desc = why(e);
  if (!/Failed to get .*lock/.test(desc)) return undefined;
  return new XenodeError('conflict', `disk image '${p.spec.target}' is in use by another process`, {
    hint: 'another domain or program has it open for writing; detach it there, or attach it read-only everywhere',
  });
}

interface PciDevice {
  slot: number;
  qdev_id: string;
  pci_bridge?: { devices?: PciDevice[] };
}

/** Bridge slots in use, from query-pci. */
async function usedBridgeSlots(m: QemuMachine): Promise<Set<number>> {
  const buses = await m.qmpClient.execute<Array<{ devices: PciDevice[] }>>('query-pci');
  for (const bus of buses) {
    for (const d of bus.devices) {
      if (d.qdev_id === DISK_BRIDGE_ID) return new Set((d.pci_bridge?.devices ?? []).map((x) => x.slot));
    }
  }
  throw new XenodeError('state', 'this domain has no disk bridge', {
    hint: 'it was started by an older Xenode; restart it to hot-plug disks',
  });
}

/** The lowest free disk slot behind the bridge. */
export async function freeDiskSlot(m: QemuMachine): Promise<number> {
  const used = await usedBridgeSlots(m);
  for (let s = DISK_FIRST_SLOT; s < DISK_FIRST_SLOT + DISK_SLOTS; s++) if (!used.has(s)) return s;
  throw new XenodeError('quota', `no free disk slot: a domain has at most ${DISK_SLOTS} disks`);
}

/** Ids of the devices under /machine/peripheral (those given an id). */
export async function peripheralIds(m: QemuMachine): Promise<Set<string>> {
  const list = await m.qmpClient.execute<Array<{ name: string; type: string }>>('qom-list', {
    path: '/machine/peripheral',
  });
  return new Set(list.filter((x) => x.type.startsWith('child<')).map((x) => x.name));
}

/** The lowest SCSI target no CD-ROM uses yet. */
export async function freeScsiTarget(m: QemuMachine): Promise<number> {
  const used = new Set<number>();
  for (const id of await peripheralIds(m)) {
    if (devnumOfDeviceId(id) === undefined) continue;
    const path = `/machine/peripheral/${id}`;
    const type = await m.qmpClient.execute<string>('qom-get', { path, property: 'type' });
    if (type === 'scsi-cd') used.add(await m.qmpClient.execute<number>('qom-get', { path, property: 'scsi-id' }));
  }
  for (let t = 0; t < MAX_CDROMS; t++) if (!used.has(t)) return t;
  throw new XenodeError('quota', `no free CD-ROM target: a domain has at most ${MAX_CDROMS} CD-ROMs`);
}

async function ensureCdromHba(m: QemuMachine): Promise<void> {
  if ((await peripheralIds(m)).has(CDROM_HBA_ID)) return;
  try {
    await m.qmpClient.execute('device_add', cdromHbaOptions());
  } catch (e) {
    throw new XenodeError('engine', `cannot add the CD-ROM controller: ${why(e)}`);
  }
}

/** Attach a placed disk to a running QEMU. On failure nothing is left behind. */
export async function plugDisk(m: QemuMachine, p: PlacedDisk, io: DiskIo): Promise<void> {
  const qmp = m.qmpClient;
  if (p.kind === 'scsi-cd') await ensureCdromHba(m);
  const bd = blockdevOptions(p, io);
  const plan = throttlePlanOf(p);
  if (bd && plan) await addThrottleGroups(m, p.devnum, plan);
  if (bd) {
    try {
      await qmp.execute('blockdev-add', bd);
    } catch (e) {
      if (plan) await removeThrottleGroups(m, p.devnum);
      throw lockError(p, e) ?? new XenodeError('engine', `cannot open disk image '${p.spec.target}': ${why(e)}`);
    }
  }
  try {
    await qmp.execute('device_add', deviceOptions(p));
  } catch (e) {
    if (bd) await releaseDiskBackend(m, p.devnum);
    throw lockError(p, e) ?? new XenodeError('engine', `cannot add ${p.spec.vdev}: ${why(e)}`);
  }
}

/**
 * Ask the guest to give the disk back (ACPI eject). Resolves false when QEMU has
 * no such device any more, i.e. only the backend is left to release.
 */
export async function requestUnplug(m: QemuMachine, devnum: number): Promise<boolean> {
  try {
    await m.qmpClient.execute('device_del', { id: diskIds(devnum).device });
    return true;
  } catch (e) {
    if (e instanceof QmpError && e.errorClass === 'DeviceNotFound') return false;
    throw new XenodeError('engine', `cannot remove disk device ${diskIds(devnum).device}: ${why(e)}`);
  }
}

/** Close the image (and its lock) once the device is gone. Idempotent. */
export async function releaseDiskBackend(m: QemuMachine, devnum: number): Promise<void> {
  // The top node takes the nodes under it along: the throttle filters, or the image alone.
  for (const node of [throttleIds(devnum).own, diskIds(devnum).node]) {
    try {
      await m.qmpClient.execute('blockdev-del', { 'node-name': node });
      break;
    } catch {
      // not there: no limits, an empty CD-ROM, or already released
    }
  }
  await removeThrottleGroups(m, devnum);
}

/**
 * Call `fn` with the Xen device number each time QEMU reports one of our disk
 * devices deleted. Two DEVICE_DELETED come per device; the one naming `device`
 * is the last (reference §2.2). Returns the unsubscribe function.
 */
export function onDiskDeleted(m: QemuMachine, fn: (devnum: number) => void): () => void {
  const qmp = m.qmpClient;
  const listener = (e: { event: string; data?: Record<string, unknown> }) => {
    if (e.event !== 'DEVICE_DELETED' || typeof e.data?.device !== 'string') return;
    const devnum = devnumOfDeviceId(e.data.device);
    if (devnum !== undefined) fn(devnum);
  };
  qmp.on('event', listener);
  return () => qmp.off('event', listener);
}

/** Xen device numbers of the disk devices QEMU has now. */
export async function presentDisks(m: QemuMachine): Promise<Set<number>> {
  const out = new Set<number>();
  for (const id of await peripheralIds(m)) {
    const n = devnumOfDeviceId(id);
    if (n !== undefined) out.add(n);
  }
  return out;
}

/** Per-disk I/O counters since the disk was attached (QMP query-blockstats). */
export interface DiskStats {
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
  flushOps: number;
  rdTotalTimeNs: number;
  wrTotalTimeNs: number;
  failedRdOps: number;
  failedWrOps: number;
}

interface BlockStatsEntry {
  qdev?: string;
  stats: Record<string, number>;
}

/** Counters by Xen device number. */
export async function diskStats(m: QemuMachine): Promise<Map<number, DiskStats>> {
  const list = await m.qmpClient.execute<BlockStatsEntry[]>('query-blockstats');
  const out = new Map<number, DiskStats>();
  for (const e of list) {
    // qdev is /machine/peripheral/<id>/virtio-backend for virtio, /machine/peripheral/<id> for SCSI.
    const id = /^\/machine\/peripheral\/([^/]+)/.exec(e.qdev ?? '')?.[1];
    const devnum = id === undefined ? undefined : devnumOfDeviceId(id);
    if (devnum === undefined) continue;
    const s = e.stats;
    out.set(devnum, {
      rdBytes: s.rd_bytes ?? 0,
      wrBytes: s.wr_bytes ?? 0,
      rdOps: s.rd_operations ?? 0,
      wrOps: s.wr_operations ?? 0,
      flushOps: s.flush_operations ?? 0,
      rdTotalTimeNs: s.rd_total_time_ns ?? 0,
      wrTotalTimeNs: s.wr_total_time_ns ?? 0,
      failedRdOps: s.failed_rd_operations ?? 0,
      failedWrOps: s.failed_wr_operations ?? 0,
    });
  }
  return out;
}
