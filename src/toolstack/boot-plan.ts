// Turn a config into what to boot: accelerator, machine, kernel, initrd and
// command line. The default guest is built on first use when no kernel is set.

import { readFileSync } from 'node:fs';
import { ensureDefaultGuest } from '../../guest/build.ts';
import type { DomainConfig } from '../config/types.ts';
import { type AccelChoice, resolveAccel } from '../engine/accel.ts';
import { checkFirmware } from '../engine/firmware.ts';
import { chooseMachine, cpuModel } from '../engine/machine.ts';
import type { BootPlan } from '../engine/qemu-args.ts';
import { XenodeError } from '../errors.ts';

export interface ResolvedBoot {
  plan: BootPlan;
  accelReason: string;
}

function hostTscKhz(): number | undefined {
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}

export async function resolveBoot(
  cfg: DomainConfig,
  host: AccelChoice,
  onProgress?: (msg: string) => void,
): Promise<ResolvedBoot> {
  const accel = resolveAccel(cfg.accel, host);
  const machine = chooseMachine(cfg);
  if (cfg.type === 'hvm' && !cfg.kernel) {
    // The guest's own boot loader on its disk, started by SeaBIOS or OVMF.
    const firmware = cfg.firmware ?? 'seabios';
    if (machine === 'microvm') {
      throw new XenodeError('config', 'firmware boot needs machine "pc" or "q35"', {
        hint: 'leave machine= out (q35) for a type="hvm" guest booting its disk',
      });
    }
    checkFirmware(firmware);
    return {
      plan: { accel: accel.accel, machine, cpu: cpuModel(accel.accel), cmdline: '', firmware },
      accelReason: accel.reason,
    };
  }
  let kernel: string;
  let initrd = cfg.ramdisk;
  let cmdline = cfg.cmdline;
  const parts = ['console=ttyS0'];
  if (cfg.kernel) kernel = cfg.kernel;
  else {
    const guest = await ensureDefaultGuest({ onProgress });
    // The uncompressed ELF boots through its PVH entry: no in-guest decompression.
    kernel = guest.vmlinux;
    initrd = initrd ?? guest.initrd;
    if (!cmdline) cmdline = 'quiet';
    // The kernel's crypto self-tests (meant for FIPS; the default guest is not run in
    // FIPS mode) took 0.3-0.5 s of every boot under TCG here (crypto_algapi_init).
    // The SP800-108 KDF runs its own self-test as its initcall, which is all that
    // initcall does (the KDF stays usable): another 0.17-0.55 s.
    parts.push(`xenode.name=${cfg.name}`, 'cryptomgr.notests', 'initcall_blacklist=crypto_kdf108_init');
  }
  // Under TCG the guest's TSC ticks at the host's rate. Told so, the kernel skips
  // calibrating it against the PIT, which fails under TCG and then falls back to the
  // HPET: 0.4-0.5 s of every boot here before the guest's clock even starts (8
  // alternating boots each on q35: 0.33 vs 0.79 s from QEMU start to the guest clock).
  // microvm has no PIT/HPET at all and can hang without it.
  // A kernel that sees one possible CPU rewrites every LOCK prefix in its text to a
  // NOP; under TCG each of those writes lands on translated code: 0.64-0.69 s of boot
  // vs 0.22-0.33 s without (8 alternating boots: median ready line 0.27 s sooner).
  // The prefixes cost a single emulated CPU nothing, so under TCG they stay.
  if (accel.accel === 'tcg') {
    const khz = hostTscKhz();
    if (khz) parts.push(`tsc_early_khz=${khz}`);
    parts.push('noreplace-smp');
    // On a host whose CPUs are oversubscribed, the emulated timer interrupt can come
    // late enough that the kernel's IO-APIC timer check panics the boot ("IO-APIC +
    // timer doesn't work"): seen three times at load 28-68 here. The check guards
    // against broken chipsets, which QEMU's emulated ones are not.
    parts.push('no_timer_check');
  }
  if (cmdline) parts.push(cmdline);
  return {
    plan: { accel: accel.accel, machine, cpu: cpuModel(accel.accel), kernel, initrd, cmdline: parts.join(' ') },
    accelReason: accel.reason,
  };
}
