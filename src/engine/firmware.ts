// Firmware for guests that boot from their own disk (type="hvm" without kernel=):
// SeaBIOS, QEMU's built-in BIOS, or OVMF (UEFI) from Debian's ovmf package as two
// pflash devices: the code read-only, shared by every domain, and a writable copy of
// the variable store per domain (its boot entries and settings live there).

import { constants, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { XenodeError } from '../errors.ts';
import { qemuEscape } from './qemu-args.ts';

export type Firmware = 'seabios' | 'ovmf';

/** Debian's ovmf package: the 4 MiB build without Secure Boot keys enrolled. */
export const OVMF_DIR = process.env.XENODE_OVMF_DIR ?? '/usr/share/OVMF';
const OVMF_CODE = 'OVMF_CODE_4M.fd';
const OVMF_VARS = 'OVMF_VARS_4M.fd';

/** The domain's own copy of the UEFI variable store, in its run directory. */
export function ovmfVarsPath(runDir: string): string {
  return join(runDir, 'ovmf-vars.fd');
}

/** Refuses a firmware this host cannot give (ovmf not installed) before anything is made. */
export function checkFirmware(fw: Firmware): void {
  if (fw !== 'ovmf') return;
  for (const f of [OVMF_CODE, OVMF_VARS]) {
    if (!existsSync(join(OVMF_DIR, f))) {
      throw new XenodeError('not-found', `UEFI firmware ${join(OVMF_DIR, f)} not found`, {
        hint: 'install Debian’s ovmf package (apt-get install ovmf), or use bios="seabios"',
      });
    }
  }
}

/**
 * QEMU options for the firmware. SeaBIOS needs none (it is QEMU's default). For
 * OVMF the per-domain variable store is copied from the template the first time;
 * later QEMUs of the same domain (restart in place) keep what the guest stored.
 */
export function firmwareArgs(fw: Firmware, runDir: string): string[] {
  if (fw === 'seabios') return [];
  checkFirmware(fw);
  const vars = ovmfVarsPath(runDir);
  try {
    copyFileSync(join(OVMF_DIR, OVMF_VARS), vars, constants.COPYFILE_EXCL);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return [
    '-drive',
    `if=pflash,format=raw,unit=0,readonly=on,file=${qemuEscape(join(OVMF_DIR, OVMF_CODE))}`,
    '-drive',
    `if=pflash,format=raw,unit=1,file=${qemuEscape(vars)}`,
  ];
}
