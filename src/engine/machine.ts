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
  // q35, not pc: pc's ACPI _PRT is an AML loop over 128 entries that Linux runs
  // again for every PCI device it enables, 0.2-0.3 s each under TCG; q35's is a
  // table. microvm boots faster still but has no PCI hotplug and no virtio-mem.
  return 'q35';
}

/**
 * The guest CPU. KVM: the host's. TCG: Nehalem (x86-64-v2: SSE4.2, POPCNT, which
 * RHEL 9 needs) plus RDRAND (the guest's RNG is ready at once without a virtio RNG).
 * `max` booted the default guest 0.3-0.45 s slower (16 alternating boots each,
 * medians 3.93 vs 3.47 s for qemu64); turning off XSAVE alone won most of that back:
 * TCG emulates XSAVE and the AVX state it saves on every context switch.
 */
export const TCG_CPU_MODEL = 'Nehalem,+rdrand';

export function cpuModel(accel: 'kvm' | 'tcg'): string {
  return accel === 'kvm' ? 'host' : TCG_CPU_MODEL;
}

/** What domains saved before the CPU model was recorded ran with. */
export function legacyCpuModel(accel: 'kvm' | 'tcg'): string {
  return accel === 'kvm' ? 'host' : 'max';
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
