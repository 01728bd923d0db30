// Disk limits in QEMU (docs/disks.md, "Limits"). Each disk image sits under two
// throttle filter nodes, each with a throttle-group object of its own:
//
//   device -> xvbd<N>-lim (the disk's own limits, from its spec)
//          -> xvbd<N>-shr (its share of the sponsor's aggregate, set by the daemon)
//          -> xvbd<N>-fmt (raw/qcow2) -> file
//
// Filter nodes rather than the BlockBackend's throttling (block_set_io_throttle):
// the limits are in the graph from QEMU's first instruction (on the command line,
// and in the one blockdev-add of a hot-plug), so no guest I/O ever runs before
// them; a group's limits change at runtime with qom-set; and two stacked groups
// keep the disk's own limit exact while the share moves, so the share can only
// make a disk slower, never faster. A group with no limits costs one pass-through.

import type { DiskThrottle, DiskThrottleKey } from '../config/types.ts';
import { XenodeError } from '../errors.ts';
import type { QemuMachine } from './qemu-machine.ts';
import { QmpError } from './qmp.ts';

/** A disk's share of its sponsor's aggregate: bytes/s and operations/s, reads and writes together. */
export interface ShareLimits {
  bps?: number;
  iops?: number;
}

/** What the engine puts above a disk's image. */
export interface ThrottlePlan {
  own: DiskThrottle;
  share: ShareLimits;
}

/** Xenode's key -> QEMU's ThrottleLimits member. */
const QEMU_NAME: Record<DiskThrottleKey, string> = {
  bps: 'bps-total',
  bps_rd: 'bps-read',
  bps_wr: 'bps-write',
  iops: 'iops-total',
  iops_rd: 'iops-read',
  iops_wr: 'iops-write',
  bps_max: 'bps-total-max',
  bps_rd_max: 'bps-read-max',
  bps_wr_max: 'bps-write-max',
  iops_max: 'iops-total-max',
  iops_rd_max: 'iops-read-max',
  iops_wr_max: 'iops-write-max',
  bps_max_length: 'bps-total-max-length',
  bps_rd_max_length: 'bps-read-max-length',
  bps_wr_max_length: 'bps-write-max-length',
  iops_max_length: 'iops-total-max-length',
  iops_rd_max_length: 'iops-read-max-length',
  iops_wr_max_length: 'iops-write-max-length',
  iops_size: 'iops-size',
};
const KEYS = Object.keys(QEMU_NAME) as DiskThrottleKey[];
const isLength = (k: DiskThrottleKey) => k.endsWith('_length');

/**
 * Every ThrottleLimits member: qom-set of `limits` changes only the members it
 * is given, so a member left out would keep its old value.
 */
export function qemuThrottleLimits(t: DiskThrottle): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of KEYS) out[QEMU_NAME[k]] = t[k] ?? (isLength(k) ? 1 : 0);
  return out;
}

/** What QEMU reports, in Xenode's keys: unset (0) and default burst lengths (1) left out. */
export function throttleFromQemu(l: Record<string, unknown>): DiskThrottle {
  const out: DiskThrottle = {};
  for (const k of KEYS) {
    const v = l[QEMU_NAME[k]];
    if (typeof v === 'number' && v > (isLength(k) ? 1 : 0)) out[k] = v;
  }
  return out;
}

function shareThrottle(s: ShareLimits): DiskThrottle {
  const t: DiskThrottle = {};
  if (s.bps) t.bps = s.bps;
  if (s.iops) t.iops = s.iops;
  return t;
}

export interface ThrottleIds {
  /** Group and filter node of the disk's own limits (the node the device uses). */
  own: string;
  /** Group and filter node of the sponsor share. */
  share: string;
}

export function throttleIds(devnum: number): ThrottleIds {
  return { own: `xvbd${devnum}-lim`, share: `xvbd${devnum}-shr` };
}

/** The two -object / object-add throttle groups of a disk. */
export function throttleGroupObjects(devnum: number, plan: ThrottlePlan): Record<string, unknown>[] {
  const ids = throttleIds(devnum);
  return [
    { 'qom-type': 'throttle-group', id: ids.own, limits: qemuThrottleLimits(plan.own) },
    { 'qom-type': 'throttle-group', id: ids.share, limits: qemuThrottleLimits(shareThrottle(plan.share)) },
  ];
}

/**
 * The filter nodes over an image node. They take the image's read-only flag
 * (a writable filter over a read-only node is refused) and pass discards on
 * (a node's default, discard=ignore, would drop the guest's).
 */
export function throttledNode(devnum: number, image: Record<string, unknown>): Record<string, unknown> {
  const ids = throttleIds(devnum);
  const filter = (id: string, file: Record<string, unknown>) => ({
    driver: 'throttle',
    'node-name': id,
    'throttle-group': id,
    'read-only': image['read-only'] === true,
    discard: 'unmap',
    file,
  });
  return filter(ids.own, filter(ids.share, image));
}

function why(e: unknown): string {
  return e instanceof QmpError ? e.desc : e instanceof Error ? e.message : String(e);
}

function noGroup(e: unknown): boolean {
  return e instanceof QmpError && e.errorClass === 'DeviceNotFound';
}

async function setGroup(m: QemuMachine, id: string, t: DiskThrottle, vdev: string): Promise<void> {
  try {
    await m.qmpClient.execute('qom-set', { path: `/objects/${id}`, property: 'limits', value: qemuThrottleLimits(t) });
  } catch (e) {
    if (noGroup(e)) {
      throw new XenodeError('state', `disk ${vdev} has no throttle group in its QEMU`, {
        hint: 'the domain was started by a Xenode without disk limits, or the disk is an empty CD-ROM; restart the domain',
      });
    }
    throw new XenodeError('engine', `QEMU refused the limits of ${vdev}: ${why(e)}`);
  }
}

/** Replace a running disk's own limits (all of them). */
export function setOwnThrottle(m: QemuMachine, devnum: number, vdev: string, t: DiskThrottle): Promise<void> {
  return setGroup(m, throttleIds(devnum).own, t, vdev);
}

/** Replace a running disk's share of its sponsor's aggregate. */
export function setShareThrottle(m: QemuMachine, devnum: number, s: ShareLimits): Promise<void> {
  return setGroup(m, throttleIds(devnum).share, shareThrottle(s), String(devnum));
}

/** The limits in force in QEMU, read back from its groups; undefined where the disk has none. */
export interface ThrottleInForce {
  own: DiskThrottle;
  share: ShareLimits;
}

export async function readThrottle(m: QemuMachine, devnum: number): Promise<ThrottleInForce | undefined> {
  const ids = throttleIds(devnum);
  const get = async (id: string) =>
    throttleFromQemu(
      await m.qmpClient.execute<Record<string, unknown>>('qom-get', { path: `/objects/${id}`, property: 'limits' }),
    );
  try {
    const own = await get(ids.own);
    const s = await get(ids.share);
    const share: ShareLimits = {};
    if (s.bps) share.bps = s.bps;
    if (s.iops) share.iops = s.iops;
    return { own, share };
  } catch (e) {
    if (noGroup(e)) return undefined;
    throw new XenodeError('engine', `cannot read the limits of disk ${devnum}: ${why(e)}`);
  }
}

/** Create a hot-plugged disk's groups (dropping stale ones a killed daemon left unused). */
export async function addThrottleGroups(m: QemuMachine, devnum: number, plan: ThrottlePlan): Promise<void> {
  await removeThrottleGroups(m, devnum);
  const made: string[] = [];
  try {
    for (const o of throttleGroupObjects(devnum, plan)) {
      await m.qmpClient.execute('object-add', o);
      made.push(String(o.id));
    }
  } catch (e) {
    for (const id of made) await m.qmpClient.execute('object-del', { id }).catch(() => {});
    throw new XenodeError('engine', `cannot add the throttle groups of disk ${devnum}: ${why(e)}`);
  }
}

/** Drop a disk's groups once no node uses them. Idempotent. */
export async function removeThrottleGroups(m: QemuMachine, devnum: number): Promise<void> {
  const ids = throttleIds(devnum);
  for (const id of [ids.own, ids.share]) await m.qmpClient.execute('object-del', { id }).catch(() => {});
}
