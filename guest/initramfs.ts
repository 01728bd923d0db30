// Assembling the initramfs: busybox and its applet links, the device nodes the kernel
// needs before devtmpfs is mounted, the selected modules and the guest's own files.

import { NewcWriter } from './cpio.ts';
import { type KernelModule, modulesDep } from './modules.ts';
import { reseedProgram } from './reseed.ts';
import { GUEST_DIRS, GUEST_FILES, GUEST_LINKS } from './rootfs.ts';

export interface InitramfsInput {
  busybox: Buffer;
  /** `busybox --list-full` output: applet paths such as sbin/acpid, usr/bin/awk. */
  applets: readonly string[];
  kernelVersion: string;
  modules: ReadonlyArray<KernelModule & { data: Buffer }>;
  /** Those /etc/modules lists (loaded at boot); absent: all of `modules`. The rest load on demand. */
  bootModules?: readonly string[];
  /** /bin/xenode-store, the C program in guest/store-client.ts compiled static. */
  storeClient: Buffer;
}

/**
 * The archive is left uncompressed (2.9 MB; gzip -6 makes it 1.3 MB). Under TCG the
 * guest's decompressor is emulated code, while QEMU copies the raw bytes natively:
 * measured pc + vmlinux, 256 MiB, 1 vCPU, spawn to ready line, 5-7 boots each on a
 * shared 2-CPU host, plain vs gzip: best 2.84 vs 2.93 s; medians under load 4.38 vs
 * 4.95 s; QEMU CPU time (best) 3.39 vs 4.08 s.
 */
export function buildInitramfs(input: InitramfsInput): Buffer {
  const w = new NewcWriter();
  for (const d of GUEST_DIRS) w.dir(d);
  // The kernel opens /dev/console for init's stdio before anything can mount devtmpfs.
  w.charDevice('dev/console', 0o600, 5, 1);
  w.charDevice('dev/null', 0o666, 1, 3);

  w.file('bin/busybox', input.busybox, 0o755);
  // Invoked as "init", busybox runs its init applet.
  w.symlink('init', '/bin/busybox');
  const overridden = new Set(GUEST_LINKS.map((l) => l.path));
  for (const applet of input.applets) {
    const path = applet.replace(/^\/+/, '');
    if (path === 'bin/busybox' || overridden.has(path)) continue;
    w.symlink(path, '/bin/busybox');
  }
  for (const l of GUEST_LINKS) w.symlink(l.path, l.target);
  for (const f of GUEST_FILES) w.file(f.path, f.text, f.mode);
  // Binary, so not among GUEST_FILES' text (guest/reseed.ts).
  w.file('sbin/xenode-reseed', reseedProgram(), 0o755);
  w.file('bin/xenode-store', input.storeClient, 0o755);

  const modDir = `lib/modules/${input.kernelVersion}`;
  w.dir(modDir);
  for (const m of input.modules) w.file(`${modDir}/${m.name}.ko`, m.data);
  w.file(`${modDir}/modules.dep`, modulesDep(input.modules));
  w.file('etc/modules', (input.bootModules ?? input.modules.map((m) => m.name)).map((m) => `${m}\n`).join(''));
  return w.finish();
}
