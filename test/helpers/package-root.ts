// A clean Debian 12 root with what the xenode package depends on, for
// test/package.test.ts: made once with mmdebstrap from Debian's archive and kept
// in ~/.cache/xenode/package-root/<key>/root; each test run mounts an overlay
// on it, so the cached root is never changed. Node.js 20 is not in Debian 12:
// the host's nodejs package (NodeSource's, as on this project's machines) is
// repacked with dpkg-repack and installed from the .deb, as an admin would
// install NodeSource's.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Debian packages in the base root: the package's Depends (but nodejs) and what the test runs. */
export const BASE_PACKAGES = [
  'qemu-system-x86',
  'iproute2',
  'xz-utils',
  'zstd',
  'init-system-helpers',
  'man-db',
  'bash-completion',
];

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** The cached base root's directory, made first if missing (minutes, once). */
export function baseRoot(log: (s: string) => void = () => {}): string {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
  const nodeVersion = sh('dpkg-query', ['-W', '-f=${Version}', 'nodejs']).trim();
  const key = createHash('sha256')
    .update(JSON.stringify({ BASE_PACKAGES, nodeVersion, suite: 'bookworm', v: 1 }))
    .digest('hex')
    .slice(0, 16);
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'xenode', 'package-root', key);
  const root = join(dir, 'root');
  if (existsSync(join(root, 'usr/bin/node'))) return root;
  log(`making the base root ${root} (mmdebstrap, once)`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const gen = join(dir, 'nodejs');
  mkdirSync(gen);
  // --generate leaves the package tree; dpkg-deb with gzip builds it far faster than xz.
  sh('dpkg-repack', ['--generate', 'nodejs'], gen);
  const tree = readdirSync(gen).find((n) => n.startsWith('dpkg-repack.'));
  if (!tree) throw new Error('dpkg-repack --generate made no tree');
  const deb = join(dir, `nodejs_${nodeVersion}_amd64.deb`);
  sh('dpkg-deb', ['-Zgzip', '-z1', '--build', join(gen, tree), deb]);
  rmSync(gen, { recursive: true, force: true });
  const tmp = join(dir, 'root.tmp');
  sh('mmdebstrap', [
    '--variant=minbase',
    // Lets apt inside the chroot reach the local nodejs .deb.
    '--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount',
    `--include=${deb}`,
    `--include=${BASE_PACKAGES.join(',')}`,
    '--aptopt=APT::Install-Recommends "false"',
    'bookworm',
    tmp,
  ]);
  renameSync(tmp, root);
  return root;
}

/** A writable view of `lower` (overlayfs): everything written goes to a scratch dir. */
export interface Overlay {
  root: string;
  chroot(args: string[], env?: Record<string, string>): string;
  cleanup(): void;
}

export function overlayRoot(lower: string, scratch: string): Overlay {
  for (const d of ['upper', 'work', 'merged']) mkdirSync(join(scratch, d), { recursive: true });
  const root = join(scratch, 'merged');
  sh('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${lower},upperdir=${join(scratch, 'upper')},workdir=${join(scratch, 'work')}`,
    root,
  ]);
  sh('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
  return {
    root,
    chroot: (args, env = {}) =>
      execFileSync(
        'chroot',
        [
          root,
          'env',
          '-i',
          'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
          'HOME=/root',
          ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
          ...args,
        ],
        {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    cleanup: () => {
      for (const m of [join(root, 'proc'), root]) {
        try {
          sh('umount', [m]);
        } catch {
          sh('umount', ['-l', m]);
        }
      }
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
