// Machine type and boot path, chosen by measurement (docs/benchmarks.md).

import type { DomainConfig } from '../config/types.ts';
import { XenodeError } from '../errors.ts';

export type Machine = 'pc' | 'q35' | 'microvm';

/**
 * `auto` picks the machine that reached the guest's ready line first in
 * bench:boot while still offering what the domain needs.
 */
export function chooseMachine(cfg: DomainConfig): Machine {
  // Growing past boot size uses virtio-mem, which exists only as a PCI device.
  const hotplug = cfg.maxmem > cfg.memory;
  if (hotplug && cfg.machine === 'microvm') {
    const why = `maxmem (${cfg.maxmem} MiB) above memory (${cfg.memory} MiB) needs virtio-mem, which microvm lacks`;
    throw new XenodeError('config', why, { hint: 'use machine="pc" or "q35", or leave maxmem out' });
  }
  if (cfg.machine !== 'auto') return cfg.machine;
  if (hotplug) return 'pc'; // whatever the default below becomes, hot-plug needs PCI
  return 'pc';
}

/** QEMU's versioned name, so both ends of a migration agree. */
export function versionedMachine(m: Machine): string {
  switch (m) {
    case 'pc':
      return 'pc-i440fx-7.2';
    case 'q35':
      return 'pc-q35-7.2';
    case 'microvm':
      return 'microvm';
  }
}
