// A full Debian 12 guest: systemd, the cloud kernel, cloud-init (NoCloud),
// qemu-guest-agent and OpenSSH on a partitioned raw disk that boots with BIOS
// (SeaBIOS → GRUB in the MBR gap) and with UEFI (OVMF → GRUB on an ESP).
// Built as root with mmdebstrap from the Debian mirror, without loop devices or
// grub-install: the file systems are written straight into the image file
// (mke2fs -d at an offset, mtools on the ESP) and GRUB's images are made with
// grub-mkimage, so the build also runs where no block device can be set up.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, open, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { XenodeError } from '../src/errors.ts';
import { defaultGuestCacheDir, lockOrWait, publishDir, sweepTempDirs, tempDirName, writeFileAtomic } from './cache.ts';
import { runText } from './exec.ts';

/** Bump when the procedure below changes in a way the inputs do not show. */
export const DEBIAN_BUILDER_VERSION = 1;
export const DEBIAN_SUITE = 'bookworm';
export const DEBIAN_MIRROR = 'http://deb.debian.org/debian';
/** The root file system's label: GRUB finds it by this, and so does the kernel. */
export const ROOT_LABEL = 'xenode-root';

/** On top of mmdebstrap's `apt` variant (Essential + apt): what a cloud guest needs, nothing more. */
export const DEBIAN_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'udev',
  'dbus',
  'linux-image-cloud-amd64',
  'initramfs-tools',
  'cloud-init',
  'qemu-guest-agent',
  'openssh-server',
  'netbase',
] as const;

/**
 * What the initramfs carries: the disk on virtio-blk or virtio-scsi, over PCI, and
 * the seed's CD-ROM (sr_mod): cloud-init's generator looks for the `cidata` label
 * right after the switch to the root, before udev has loaded anything more.
 */
const INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'sd_mod', 'sr_mod', 'ext4'];

const DISK_BYTES = 3 * 1024 ** 3;
const ESP_START = 2048; // sectors: 1 MiB, the usual alignment; GRUB's core.img sits before it
const ESP_SECTORS = 65536; // 32 MiB
const ROOT_START = ESP_START + ESP_SECTORS;
const SECTOR = 512;

/** GRUB modules built into both images: there is no /boot/grub/<platform> on the disk. */
const GRUB_COMMON = ['part_msdos', 'ext2', 'search', 'search_label', 'configfile', 'normal', 'linux', 'echo', 'test'];
const GRUB_PC = [...GRUB_COMMON, 'biosdisk', 'serial', 'terminal'];
const GRUB_EFI = [...GRUB_COMMON, 'fat', 'serial', 'terminal', 'efi_gop', 'all_video'];

export interface DebianImage {
  dir: string;
  /** The raw disk image (sparse). Boot copies or overlays of it, never the file itself. */
  disk: string;
  kernelVersion: string;
  /** The console prints `<hostname> login:` once the guest is up. */
  loginPrompt: RegExp;
}

export interface Manifest {
  builderVersion: number;
  key: string;
  kernelVersion: string;
  packages: readonly string[];
  builtAt: string;
  buildSeconds: number;
}

export interface EnsureDebianOptions {
  cacheDir?: string;
  onProgress?: (msg: string) => void;
  signal?: AbortSignal;
  /** Build again even if the cache holds an image for these inputs. */
  rebuild?: boolean;
}

/** Everything the image is made from; its hash names the cache entry. */
export function debianCacheKey(): string {
  const inputs = {
    v: DEBIAN_BUILDER_VERSION,
    suite: DEBIAN_SUITE,
    mirror: DEBIAN_MIRROR,
    packages: DEBIAN_PACKAGES,
    files: imageFiles('KVER'),
    initramfs: INITRAMFS_MODULES,
    grub: [GRUB_PC, GRUB_EFI],
    layout: [DISK_BYTES, ESP_START, ESP_SECTORS],
  };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}

/** ~/.cache/xenode/debian (beside the default guest's cache). */
export function debianCacheDir(): string {
  return join(dirname(defaultGuestCacheDir()), 'debian');
}

function loaded(dir: string, m: Manifest): DebianImage {
  return { dir, disk: join(dir, 'disk.raw'), kernelVersion: m.kernelVersion, loginPrompt: /\S+ login: / };
}

async function readManifest(dir: string, key: string): Promise<Manifest | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'image.json'), 'utf8')) as Manifest;
    return m.key === key && existsSync(join(dir, 'disk.raw')) ? m : undefined;
  } catch {
    return undefined;
  }
}

/** The cached image for today's inputs, built first if missing. */
export async function ensureDebianImage(o: EnsureDebianOptions = {}): Promise<DebianImage> {
  const cacheDir = o.cacheDir ?? debianCacheDir();
  const key = debianCacheKey();
  const final = join(cacheDir, key);
  const progress = o.onProgress ?? (() => undefined);
  if (!o.rebuild) {
    const m = await readManifest(final, key);
    if (m) return loaded(final, m);
  }
  await mkdir(cacheDir, { recursive: true });
  // A builder killed mid-mmdebstrap can leave /proc mounted in its tree: not fatal here.
  await sweepTempDirs(cacheDir).catch((e: unknown) => progress(`debian image: left a stale build: ${String(e)}`));
  const unlock = await lockOrWait(join(cacheDir, `${key}.lock`), async () => !!(await readManifest(final, key)), {
    signal: o.signal,
    onWait: (holder) => progress(`waiting for another build of the Debian image (pid ${holder})`),
  });
  try {
    if (!unlock || !o.rebuild) {
      const m = await readManifest(final, key);
      if (m) return loaded(final, m);
    }
    if (process.getuid?.() !== 0) {
      throw new XenodeError('permission', 'building the Debian image needs root (mmdebstrap, file ownership)', {
        hint: 'run it as root: npm run image:debian',
      });
    }
    const tmp = join(cacheDir, tempDirName(key));
    await mkdir(tmp, { recursive: true });
    try {
      const m = await build(tmp, key, progress, o.signal);
      if (o.rebuild) await rm(final, { recursive: true, force: true });
      await publishDir(tmp, final);
      const got = await readManifest(final, key);
      return loaded(final, got ?? m);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  } finally {
    await unlock?.();
  }
}

/** Runs a tool, its output lines to `progress`; rejects with the last lines on failure. */
function runStreaming(
  cmd: string,
  args: readonly string[],
  progress: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], signal, env: { ...process.env, LC_ALL: 'C' } });
    const tail: string[] = [];
    const onData = (b: Buffer) => {
      for (const line of b.toString().split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 8) tail.shift();
        progress(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code;
      reject(
        code === 'ENOENT'
          ? new XenodeError('not-found', `${cmd} not found on this host`, { hint: `apt-get install ${cmd}` })
          : e,
      );
    });
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new XenodeError('internal', `${cmd} failed (exit ${code}): ${tail.slice(-3).join('; ')}`));
    });
  });
}

/** Files written into the root file system (path → content), given the kernel version. */
export function imageFiles(kver: string): Record<string, string> {
  const cmdline = `root=LABEL=${ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8`;
  return {
    '/etc/fstab': `LABEL=${ROOT_LABEL} / ext4 rw,errors=remount-ro 0 1\n`,
    '/etc/hostname': 'debian\n',
    // One menu entry, no timeout; GRUB talks on the serial port as well as the screen.
    '/boot/grub/grub.cfg': [
      'serial --unit=0 --speed=115200',
      'terminal_input serial console',
      'terminal_output serial console',
      'set timeout=0',
      'menuentry "Debian GNU/Linux" {',
      `  search --no-floppy --label ${ROOT_LABEL} --set root`,
      `  linux /boot/vmlinuz-${kver} ${cmdline}`,
      `  initrd /boot/initrd.img-${kver}`,
      '}',
      '',
    ].join('\n'),
    // NoCloud only: cloud-init's probing of other clouds costs boot time under TCG,
    // as would RSA and ECDSA host keys; ed25519 is made in moments. The root file
    // system already fills its partition: resize2fs only failed (a warning).
    '/etc/cloud/cloud.cfg.d/90-xenode.cfg':
      'datasource_list: [ NoCloud, None ]\nssh_genkeytypes: [ ed25519 ]\nresize_rootfs: false\ngrowpart: { mode: "off" }\n',
    // cloud-init runs whatever its generator saw: a seed that showed late is still read.
    '/etc/cloud/ds-identify.cfg': 'policy: enabled\n',
    // Under TCG on a busy host, udev can take minutes: a device job (ttyS0 for the
    // serial getty) that times out after systemd's 90 s leaves the console without a login.
    '/etc/systemd/system.conf.d/90-xenode-tcg.conf':
      '[Manager]\nDefaultTimeoutStartSec=600s\nDefaultDeviceTimeoutSec=600s\n',
    // DHCP on every Ethernet NIC through systemd-networkd (part of systemd).
    '/etc/systemd/network/80-xenode-dhcp.network': '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n',
    // The agent logs to syslog (the journal); mirror its lines to the serial console
    // so a host sees what the agent did (fsfreeze, shutdown) without logging in.
    '/etc/systemd/system/xenode-agent-log.service': [
      '[Unit]',
      'Description=Mirror qemu-ga log lines to the serial console',
      'After=systemd-journald.service',
      '',
      '[Service]',
      // Without the daemon's 10 s polls (ping, interfaces): freeze, thaw and shutdown stay readable.
      "ExecStart=/bin/sh -c 'journalctl -f -n 0 -o short-monotonic -t qemu-ga | grep --line-buffered -v -e guest-ping -e guest-network-get-interfaces -e guest-sync >/dev/ttyS0'",
      'Restart=always',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'),
  };
}

/** Symlinks: enable units, mask the wait for a network that a guest may never have. */
const IMAGE_LINKS: Record<string, string> = {
  '/etc/systemd/system/multi-user.target.wants/xenode-agent-log.service':
    '/etc/systemd/system/xenode-agent-log.service',
  '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service':
    '/lib/systemd/system/systemd-networkd.service',
  '/etc/systemd/system/systemd-networkd-wait-online.service': '/dev/null',
};

/** GRUB's first config, built into core.img / BOOTX64.EFI: find the root and read its grub.cfg. */
const EARLY_CFG = [
  `search --no-floppy --label ${ROOT_LABEL} --set root`,
  'set prefix=($root)/boot/grub',
  'configfile ($root)/boot/grub/grub.cfg',
  '',
].join('\n');

async function build(
  tmp: string,
  key: string,
  progress: (msg: string) => void,
  signal?: AbortSignal,
): Promise<Manifest> {
  const t0 = Date.now();
  const root = join(tmp, 'root');
  progress(`debian image: mmdebstrap ${DEBIAN_SUITE} (${DEBIAN_PACKAGES.length} packages and their dependencies)`);
  await runStreaming(
    'mmdebstrap',
    [
      '--variant=apt',
      // dpkg's fsync per file made the build 20 minutes on a busy disk; a half-built
      // tree is thrown away anyway.
      '--dpkgopt=force-unsafe-io',
      `--include=${DEBIAN_PACKAGES.join(',')}`,
      // Nothing of apt's caches in the image.
      '--skip=cleanup/apt/lists',
      // An initramfs with the few modules a Xenode machine needs to find its root
      // (MODULES=most loads hundreds under udev: 100 s of a TCG boot went there).
      `--customize-hook=printf '%s\\n' ${INITRAMFS_MODULES.join(' ')} > "$1"/etc/initramfs-tools/modules`,
      '--customize-hook=echo MODULES=list > "$1"/etc/initramfs-tools/conf.d/xenode.conf',
      '--customize-hook=chroot "$1" update-initramfs -u -k all',
      '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin',
      DEBIAN_SUITE,
      root,
      DEBIAN_MIRROR,
    ],
    (l) => progress(`debian image: ${l}`),
    signal,
  );
  return assembleDisk(tmp, root, key, t0, progress, signal);
}

/** After mmdebstrap: Xenode's files, GRUB for BIOS and UEFI, the partitioned disk. */
export async function assembleDisk(
  tmp: string,
  root: string,
  key: string,
  t0: number,
  progress: (msg: string) => void,
  signal?: AbortSignal,
): Promise<Manifest> {
  const kvers = readdirSync(join(root, 'boot'))
    .filter((f) => f.startsWith('vmlinuz-'))
    .map((f) => f.slice('vmlinuz-'.length));
  const kver = kvers.sort().at(-1);
  if (!kver || !existsSync(join(root, 'boot', `initrd.img-${kver}`))) {
    throw new XenodeError('internal', 'mmdebstrap left no kernel and initrd in /boot');
  }
  for (const [path, content] of Object.entries(imageFiles(kver))) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  for (const [link, target] of Object.entries(IMAGE_LINKS)) {
    await mkdir(dirname(join(root, link)), { recursive: true });
    await unlink(join(root, link)).catch(() => undefined);
    await symlink(target, join(root, link));
  }
  // cloud-init runs once per instance id; the image must not carry a run of its own.
  await rm(join(root, 'var/lib/cloud'), { recursive: true, force: true });
  await writeFile(join(root, 'etc/machine-id'), '');

  progress('debian image: GRUB images (i386-pc core.img, x86_64-efi BOOTX64.EFI)');
  const early = join(tmp, 'early.cfg');
  await writeFile(early, EARLY_CFG);
  const coreImg = join(tmp, 'core.img');
  const efiImg = join(tmp, 'bootx64.efi');
  const mk = { providedBy: 'grub-common' };
  await runText('grub-mkimage', ['-O', 'i386-pc', '-o', coreImg, '-c', early, '-p', '/boot/grub', ...GRUB_PC], {
    ...mk,
    signal,
  });
  await runText('grub-mkimage', ['-O', 'x86_64-efi', '-o', efiImg, '-c', early, '-p', '/boot/grub', ...GRUB_EFI], {
    ...mk,
    signal,
  });

  progress('debian image: disk (MBR: ESP + ext4 root)');
  const disk = join(tmp, 'disk.raw');
  const fh = await open(disk, 'w');
  await fh.truncate(DISK_BYTES);
  await fh.close();
  const rootSectors = DISK_BYTES / SECTOR - ROOT_START;
  const layout = [
    'label: dos',
    `start=${ESP_START}, size=${ESP_SECTORS}, type=ef`,
    `start=${ROOT_START}, size=${rootSectors}, type=83, bootable`,
    '',
  ].join('\n');
  await runWithInput('sfdisk', ['--no-reread', '--no-tell-kernel', disk], layout, signal);
  await runText(
    'mke2fs',
    [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-L',
      ROOT_LABEL,
      '-d',
      root,
      '-E',
      `offset=${ROOT_START * SECTOR}`,
      disk,
      `${(rootSectors * SECTOR) / 1024}k`,
    ],
    { providedBy: 'e2fsprogs', signal },
  );
  const esp = join(tmp, 'esp.img');
  await runText('mkfs.vfat', ['-C', '-n', 'XENODE-ESP', esp, String((ESP_SECTORS * SECTOR) / 1024)], {
    providedBy: 'dosfstools',
    signal,
  });
  await runText('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT'], { providedBy: 'mtools', signal });
  await runText('mcopy', ['-i', esp, efiImg, '::/EFI/BOOT/BOOTX64.EFI'], { providedBy: 'mtools', signal });
  await writeAt(disk, await readFile(esp), ESP_START * SECTOR);
  // BIOS: GRUB's boot.img code in the MBR (the partition table after byte 440 stays),
  // core.img from sector 1 on, the gap before the ESP. boot.img reads sector 1 by
  // default and core.img's first sector carries the length grub-mkimage put there.
  const core = await readFile(coreImg);
  if (core.length > (ESP_START - 1) * SECTOR)
    throw new XenodeError('internal', 'GRUB core.img does not fit the MBR gap');
  const bootImg = await readFile('/usr/lib/grub/i386-pc/boot.img');
  await writeAt(disk, bootImg.subarray(0, 440), 0);
  await writeAt(disk, core, SECTOR);
  await chmod(disk, 0o444);
  await rm(root, { recursive: true, force: true });
  await rm(esp, { force: true });

  const m: Manifest = {
    builderVersion: DEBIAN_BUILDER_VERSION,
    key,
    kernelVersion: kver,
    packages: DEBIAN_PACKAGES,
    builtAt: new Date().toISOString(),
    buildSeconds: Math.round((Date.now() - t0) / 1000),
  };
  await writeFileAtomic(join(tmp, 'image.json'), `${JSON.stringify(m, null, 2)}\n`);
  progress(`debian image: built in ${m.buildSeconds} s (kernel ${kver})`);
  return m;
}

async function writeAt(file: string, data: Uint8Array, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(data, 0, data.length, offset);
  } finally {
    await fh.close();
  }
}

function runWithInput(cmd: string, args: readonly string[], input: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], signal });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new XenodeError('internal', `${cmd} failed: ${err.trim().slice(-300)}`)),
    );
    child.stdin.end(input);
  });
}
