// Machine type and boot path, chosen by measurement (docs/benchmarks.md).

import type { DomainConfig } from '../config/types.ts';

export type Machine = 'pc' | 'q35' | 'microvm';

/**
 * `auto` picks the machine that reached the guest's ready line first in
 * bench:boot while still offering what the domain needs.
 */
export function chooseMachine(cfg: DomainConfig): Machine {
  if (cfg.machine !== 'auto') return cfg.machine;
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
