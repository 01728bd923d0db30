// QEMU arguments for a static_shm region: a shared host file exposed to the
// guest as ivshmem-plain, whose BAR2 is the region (reference §6.1).

import { qemuEscape } from './qemu-args.ts';

/** PCI slots given to static_shm devices, in config order (0x10-0x17: clear of pc/q35 built-ins). */
export const SHM_FIRST_SLOT = 0x10;
export const SHM_MAX_REGIONS = 8;

export function shmSlot(index: number): number {
  return SHM_FIRST_SLOT + index;
}

/** PCI BARs are sized in powers of two; QEMU aborts on anything else. */
export function isValidBarSize(bytes: number): boolean {
  return bytes >= 4096 && Number.isSafeInteger(bytes) && Number.isInteger(Math.log2(bytes));
}

export function ivshmemArgs(id: string, path: string, sizeBytes: number, slot: number): string[] {
  return [
    '-object',
    `memory-backend-file,id=shm-${id},mem-path=${qemuEscape(path)},size=${sizeBytes},share=on`,
    '-device',
    `ivshmem-plain,id=ivshmem-${id},memdev=shm-${id},addr=0x${slot.toString(16)}`,
  ];
}
