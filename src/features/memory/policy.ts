// How a memory target maps onto the two devices, and when a domain counts as
// having complied with it. Pure functions: the controller does the I/O.

import { HOTPLUG_BLOCK_MIB } from '../../engine/memory-args.ts';

const MiB = 1024 * 1024;

export interface MemoryLayout {
  /** RAM the domain booted with (the balloon works inside it). */
  bootMiB: number;
  /** Size of the virtio-mem region above boot RAM (0: no hot-plug device). */
  hotplugMiB: number;
}

/** What to ask of each device, bytes. */
export interface DevicePlan {
  balloonBytes: number;
  hotplugBytes: number;
}

/**
 * Above boot size: balloon fully deflated, virtio-mem plugs the difference
 * (rounded to whole blocks, at most the region). At or below boot size:
 * virtio-mem unplugs everything and the balloon takes the rest.
 */
export function planTarget(layout: MemoryLayout, targetMiB: number): DevicePlan {
  if (targetMiB <= layout.bootMiB) return { balloonBytes: targetMiB * MiB, hotplugBytes: 0 };
  const extra = Math.min(
    layout.hotplugMiB,
    Math.round((targetMiB - layout.bootMiB) / HOTPLUG_BLOCK_MIB) * HOTPLUG_BLOCK_MIB,
  );
  return { balloonBytes: layout.bootMiB * MiB, hotplugBytes: extra * MiB };
}

/** Slack allowed at the deadline: 2 % of the target, at least 8 MiB (in KiB). */
export function toleranceKiB(targetKiB: number): number {
  return Math.max(8 * 1024, Math.ceil(targetKiB * 0.02));
}

export type Direction = 'down' | 'up';

export function directionOf(targetKiB: number, actualKiB: number): Direction {
  return targetKiB < actualKiB ? 'down' : 'up';
}

/** Shrinking complies once at most target + tolerance is left; growing once at least target - tolerance is there. */
export function complies(direction: Direction, targetKiB: number, actualKiB: number): boolean {
  const tol = toleranceKiB(targetKiB);
  return direction === 'down' ? actualKiB <= targetKiB + tol : actualKiB >= targetKiB - tol;
}

export type { MemoryVerdict, NoncomplianceAction } from '../../toolstack/memory-types.ts';

/** Deadline syntax for `mem-set --deadline`: 1s, 500ms, 2.5s, 1m; a bare number is seconds. */
export function parseDeadlineMs(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  return Number.isFinite(ms) && ms > 0 ? Math.round(ms) : undefined;
}
