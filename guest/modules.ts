// Picking kernel modules for the initramfs and ordering them so that each loads
// after what it depends on. The Debian kernel package ships no modules.dep, so the
// dependencies come from each .ko's own .modinfo section ("depends=a,b").

import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { elfSection } from './elf.ts';

/**
 * What the default guest loads at boot. virtio over PCI and MMIO for disks, network,
 * console, entropy, balloon and memory hotplug; evdev + button so an ACPI power-button
 * press reaches acpid; uio for userspace PCI drivers; pvpanic so a guest panic is
 * reported to QEMU. Names as the files are called (virtio-rng.ko, pvpanic-pci.ko).
 */
export const WANTED_MODULES: readonly string[] = [
  'virtio_ring',
  'virtio',
  'virtio_pci_modern_dev',
  'virtio_pci_legacy_dev',
  'virtio_pci',
  'virtio_mmio',
  'virtio_blk',
  'failover',
  'net_failover',
  'virtio_net',
  'virtio_console',
  'virtio-rng',
  'virtio_balloon',
  'virtio_mem',
  'evdev',
  'button',
  'uio',
  'uio_pci_generic',
  'pvpanic',
  'pvpanic-pci',
];

/**
 * Shipped in the image but not loaded at boot (nor their dependencies): loaded with
 * modprobe when asked, so a plain boot pays nothing for them. pktgen sends UDP at
 * line rate from the kernel (busybox has no UDP sender; the audit's one-way blast
 * test configures it through /proc/net/pktgen); 8021q makes VLAN interfaces (the
 * switch's vlan= test sends tagged frames from a guest).
 */
export const ON_DEMAND_MODULES: readonly string[] = ['pktgen', '8021q'];

export interface KernelModule {
  /** File name without .ko, e.g. virtio-rng. */
  name: string;
  path: string;
  /** File names (without .ko) of its direct dependencies. */
  depends: string[];
}

/** Module names are matched with '-' and '_' treated alike, as the kernel does. */
const norm = (name: string): string => name.replaceAll('-', '_');

async function indexModules(dir: string, index = new Map<string, string>()): Promise<Map<string, string>> {
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) await indexModules(p, index);
    else if (ent.name.endsWith('.ko')) index.set(norm(ent.name.slice(0, -3)), p);
  }
  return index;
}

export function modinfoDepends(ko: Buffer): string[] {
  const info = elfSection(ko, '.modinfo');
  if (!info) return [];
  for (const field of info.toString('latin1').split('\0')) {
    if (field.startsWith('depends='))
      return field
        .slice(8)
        .split(',')
        .filter((d) => d !== '');
  }
  return [];
}

export interface ModuleSelection {
  /** Dependency order: every module comes after all of its dependencies. */
  ordered: KernelModule[];
  /** Wanted modules not shipped as .ko: built into the kernel, or absent from it. */
  skipped: string[];
}

/** Resolves `wanted` (plus dependencies) under /lib/modules/<version> of an unpacked kernel. */
export async function selectModules(modulesDir: string, wanted: readonly string[]): Promise<ModuleSelection> {
  const index = await indexModules(join(modulesDir, 'kernel'));
  const ordered: KernelModule[] = [];
  const skipped: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();

  const visit = async (name: string, chain: string[]): Promise<boolean> => {
    const key = norm(name);
    const seen = state.get(key);
    if (seen === 'done') return true;
    if (seen === 'visiting') throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const path = index.get(key);
    if (!path) return false;
    state.set(key, 'visiting');
    const deps = modinfoDepends(await readFile(path));
    const depNames: string[] = [];
    for (const dep of deps) {
      if (!(await visit(dep, [...chain, name])))
        throw new Error(`module ${name} needs ${dep}, which is not in the package`);
      depNames.push(basename(index.get(norm(dep)) as string, '.ko'));
    }
    state.set(key, 'done');
    ordered.push({ name: basename(path, '.ko'), path, depends: depNames });
    return true;
  };

  for (const name of wanted) if (!(await visit(name, []))) skipped.push(name);
  return { ordered, skipped };
}

/**
 * A modules.dep for the flat /lib/modules/<version>/<name>.ko layout of the initramfs,
 * so busybox modprobe works in the guest too. modprobe loads a line's dependencies
 * from last to first, so they are listed in reverse load order.
 */
export function modulesDep(ordered: readonly KernelModule[]): string {
  const byName = new Map(ordered.map((m) => [m.name, m]));
  const position = new Map(ordered.map((m, i) => [m.name, i]));
  const closure = (m: KernelModule, acc: Set<string>): Set<string> => {
    for (const d of m.depends) {
      if (acc.has(d)) continue;
      acc.add(d);
      const dm = byName.get(d);
      if (dm) closure(dm, acc);
    }
    return acc;
  };
  return ordered
    .map((m) => {
      const deps = [...closure(m, new Set())].sort((a, b) => (position.get(b) ?? 0) - (position.get(a) ?? 0));
      return `${m.name}.ko:${deps.map((d) => ` ${d}.ko`).join('')}\n`;
    })
    .join('');
}
