// QMP for a domain's memory devices, in byte terms: balloon target and actual,
// virtio-mem requested and plugged size, guest memory statistics.

import { BALLOON_ID, HOTPLUG_DEVICE_ID } from './memory-args.ts';
import type { QemuMachine } from './qemu-machine.ts';
import type { QmpEvent } from './qmp.ts';

const BALLOON_PATH = `/machine/peripheral/${BALLOON_ID}`;

/** What the guest reports through the balloon's stats queue (bytes). */
export interface GuestMemoryStats {
  totalBytes?: number;
  freeBytes?: number;
  availableBytes?: number;
  diskCachesBytes?: number;
  /** Guest-side time of the last report, s since the epoch (0: never). */
  lastUpdate: number;
}

export interface MemoryDeviceSizes {
  /** Boot RAM minus what the balloon holds. */
  balloonActual: number;
  /** Plugged virtio-mem memory (0 without a hot-plug device). */
  hotplugSize: number;
}

function num(v: unknown): number | undefined {
  // QEMU sends u64 -1 (2^64 - 1) for statistics the guest never reported.
  return typeof v === 'number' && v >= 0 && v < 2 ** 53 ? v : undefined;
}

export class MemoryDevicesQmp {
  constructor(private readonly m: QemuMachine) {}

  private get qmp() {
    return this.m.qmpClient;
  }

  /** Ask the guest to bring its boot RAM down (or back up) to `bytes`. */
  async setBalloonTarget(bytes: number): Promise<void> {
    await this.qmp.execute('balloon', { value: bytes });
  }

  async balloonActual(): Promise<number> {
    const r = await this.qmp.execute<{ actual: number }>('query-balloon');
    return r.actual;
  }

  /** Ask the guest to plug (or unplug down to) `bytes` of hot-plug memory. */
  async setHotplugRequested(bytes: number): Promise<void> {
    await this.qmp.execute('qom-set', { path: HOTPLUG_DEVICE_ID, property: 'requested-size', value: bytes });
  }

  /** Plugged size of the virtio-mem device, or 0 when the domain has none. */
  async hotplugSize(): Promise<number> {
    const devs =
      await this.qmp.execute<Array<{ type: string; data: { id?: string; size?: number } }>>('query-memory-devices');
    const d = devs.find((x) => x.type === 'virtio-mem' && x.data.id === HOTPLUG_DEVICE_ID);
    return d?.data.size ?? 0;
  }

  async sizes(): Promise<MemoryDeviceSizes> {
    const [balloonActual, hotplugSize] = await Promise.all([this.balloonActual(), this.hotplugSize()]);
    return { balloonActual, hotplugSize };
  }

  /** The guest sends statistics every `seconds` (0 stops it). */
  async pollGuestStats(seconds: number): Promise<void> {
    await this.qmp.execute('qom-set', { path: BALLOON_PATH, property: 'guest-stats-polling-interval', value: seconds });
  }

  async guestStats(): Promise<GuestMemoryStats> {
    const r = await this.qmp.execute<{ stats?: Record<string, unknown>; 'last-update'?: number }>('qom-get', {
      path: BALLOON_PATH,
      property: 'guest-stats',
    });
    const s = r.stats ?? {};
    return {
      totalBytes: num(s['stat-total-memory']),
      freeBytes: num(s['stat-free-memory']),
      availableBytes: num(s['stat-available-memory']),
      diskCachesBytes: num(s['stat-disk-caches']),
      lastUpdate: r['last-update'] ?? 0,
    };
  }

  /** Call `fn` whenever QEMU reports a balloon or virtio-mem size change; returns an unsubscribe. */
  onChange(fn: (what: 'balloon' | 'hotplug', bytes: number) => void): () => void {
    const listener = (e: QmpEvent) => {
      if (e.event === 'BALLOON_CHANGE' && typeof e.data?.actual === 'number') fn('balloon', e.data.actual);
      else if (
        e.event === 'MEMORY_DEVICE_SIZE_CHANGE' &&
        e.data?.id === HOTPLUG_DEVICE_ID &&
        typeof e.data.size === 'number'
      )
        fn('hotplug', e.data.size);
    };
    this.qmp.on('event', listener);
    return () => this.qmp.off('event', listener);
  }
}
