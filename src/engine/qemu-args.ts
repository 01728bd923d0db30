// Build QEMU's command line from the typed config. Nothing else in Xenode
// knows QEMU's option syntax.

import type { DomainConfig } from '../config/types.ts';
import { XenodeError } from '../errors.ts';
import type { Machine } from './machine.ts';
import { versionedMachine } from './machine.ts';
import type { DomainRunPaths } from './paths.ts';

export interface BootPlan {
  accel: 'kvm' | 'tcg';
  machine: Machine;
  /** QEMU -cpu model (see cpuModel in machine.ts). */
  cpu: string;
  /** Direct kernel boot; absent when firmware boots the guest's disk. */
  kernel?: string;
  initrd?: string;
  /** Full guest command line, console included. */
  cmdline: string;
  /** type="hvm" without kernel=: the firmware that boots the disk (firmware.ts renders it). */
  firmware?: 'seabios' | 'ovmf';
}

export interface QemuCommand {
  binary: string;
  args: string[];
  /** Open descriptors QEMU inherits, as its fds 3, 4, … (e.g. a save file for `fd:3`). */
  passFds?: number[];
}

export interface BuildOptions {
  domid: number;
  uuid: string;
  /** Start with vCPUs stopped (-S) so consoles and QMP attach before the first byte. */
  startPaused: boolean;
  qemuBinary: string;
  /** TCG translation-cache size in MiB: the main lever on QEMU's RSS under TCG. */
  tcgTbSizeMiB?: number;
  /** Device arguments contributed by features (disks, NICs, memory devices). */
  extraArgs?: string[];
  /**
   * Guest RAM from a file instead of a fresh memfd (templates): `shared` false maps
   * it privately, so the guest's writes stay its own (copy-on-write over the file).
   */
  ram?: { path: string; shared: boolean };
}

/**
 * Root-bus slot of the pvpanic device: clear of pc/q35 built-ins (0, 1, 0x1f) and of
 * the slots other features fix (static_shm 0x10-0x17, NIC bridge 0x1d, disk bridge 0x1e).
 */
export const PVPANIC_SLOT = 0x1c;

/** QEMU option values are comma-separated; a literal comma is doubled. */
export function qemuEscape(v: string): string {
  return v.replaceAll(',', ',,');
}

/**
 * A CPU model and its feature flags (`Nehalem,+rdrand`); it may come from a save
 * file or a migration source, so nothing with `=` (a property) gets through.
 */
const CPU_MODEL_RE = /^[A-Za-z0-9_.-]{1,64}(,[+-]?[A-Za-z0-9_.-]{1,64}){0,32}$/;

export function buildQemuCommand(
  cfg: DomainConfig,
  boot: BootPlan,
  paths: DomainRunPaths,
  o: BuildOptions,
): QemuCommand {
  if (!CPU_MODEL_RE.test(boot.cpu)) throw new XenodeError('config', `invalid CPU model '${boot.cpu.slice(0, 64)}'`);
  const mem = `${cfg.memory}M`;
  const accel = boot.accel === 'kvm' ? 'kvm' : o.tcgTbSizeMiB ? `tcg,tb-size=${o.tcgTbSizeMiB}` : 'tcg';
  const args: string[] = [
    '-name',
    `${qemuEscape(cfg.name)},process=xenode-d${o.domid},debug-threads=on`,
    '-uuid',
    o.uuid,
    '-machine',
    `${versionedMachine(boot.machine)},memory-backend=ram${boot.machine === 'microvm' ? ',pcie=on' : ''}`,
    '-accel',
    accel,
    '-cpu',
    boot.cpu,
    '-smp',
    `${cfg.vcpus},maxcpus=${cfg.maxvcpus}`,
    // Guest RAM in a shared memfd: vhost-user backends, static_shm and fast save need it.
    '-object',
    o.ram
      ? `memory-backend-file,id=ram,size=${mem},mem-path=${qemuEscape(o.ram.path)},share=${o.ram.shared ? 'on' : 'off'}`
      : `memory-backend-memfd,id=ram,size=${mem},share=on`,
    '-m',
    cfg.maxmem > cfg.memory ? `${mem},slots=4,maxmem=${cfg.maxmem}M` : mem,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    // Guest poweroff (and reboot, unless on_reboot="restart", which QEMU does in
    // place) stops the machine instead of exiting, so the toolstack applies on_*.
    '-action',
    `reboot=${cfg.on_reboot === 'restart' ? 'reset' : 'shutdown'},shutdown=pause,panic=pause`,
    // The guest kernel's panic notifier writes to pvpanic: QEMU emits GUEST_PANICKED
    // and (panic=pause) stops the vCPUs, so on_crash runs instead of a spinning guest.
    // The PCI variant on every machine (microvm here has PCIe): the default guest loads
    // its driver before the ready line, while the ISA one's (pvpanic-mmio) is not there.
    '-device',
    `pvpanic-pci,id=pvpanic,addr=0x${PVPANIC_SLOT.toString(16)}`,
    // A VM generation ID (ACPI): a new random one each QEMU start, so a guest
    // restored from a template sees it change and reseeds its RNG (Linux vmgenid).
    ...(boot.machine === 'microvm' ? [] : ['-device', 'vmgenid,id=vmgenid0,guid=auto']),
    // No logfile=: QEMU logs a byte twice when its socket write fails with EAGAIN
    // (a slow reader); xenoded writes console.log from the stream it reads.
    '-chardev',
    `socket,id=ser0,path=${qemuEscape(paths.serialSock)},server=on,wait=off`,
    '-serial',
    'chardev:ser0',
    '-chardev',
    `socket,id=qmp,path=${qemuEscape(paths.qmpSock)},server=on,wait=off`,
    '-mon',
    'chardev=qmp,mode=control',
    '-pidfile',
    paths.pidFile,
  ];
  if (boot.kernel) args.push('-kernel', boot.kernel);
  args.push(...(o.extraArgs ?? []));
  if (boot.kernel) {
    if (boot.initrd) args.push('-initrd', boot.initrd);
    args.push('-append', boot.cmdline);
  }
  if (o.startPaused) args.push('-S');
  return { binary: o.qemuBinary, args };
}
