// `npm run package`: xenode_<version>_amd64.deb, built with Debian's own tools
// (dpkg-shlibdeps for the native modules' library dependencies, dpkg-deb for the
// archive). What it holds:
//   /usr/bin/xenode, /usr/sbin/xenoded              launchers of the bundles
//   /usr/lib/xenode/{dist,bin}                       the bundled CLI, daemon, switch and disk backend
//   /usr/lib/xenode/node_modules                     only the native modules the bundles load at run time
//   /usr/lib/xenode/web/dist                         the web UI
//   /usr/share/man/man1/xenode.1.gz, man5/xenode.cfg.5.gz   generated from the command and key tables
//   /usr/share/bash-completion/completions/xenode    generated from the command table
//   /usr/share/zsh/vendor-completions/_xenode        the same, for zsh
//   /lib/systemd/system/xenoded.service
// Usage: node --import tsx packaging/build-deb.ts [--out DIR] [--no-build]

import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { renderBashCompletion, renderZshCompletion } from '../scripts/gen-completion.ts';
import { renderCfgMan, renderXenodedMan, renderXenodeMan } from '../scripts/gen-man.ts';
import { DAEMON_NODE_FLAGS } from '../src/toolstack/daemon-node-flags.ts';

const repo = resolve(dirname(new URL(import.meta.url).pathname), '..');
const pkgJson = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };

/**
 * The packages scripts/bundle.mjs leaves out of the bundles (its `external:` list):
 * the bundles load them from node_modules at run time. Ones not installed are
 * optional (ws's bufferutil, utf-8-validate).
 */
export function bundleExternals(bundleScript: string, modulesDir: string): string[] {
  const m = /external:\s*\[([^\]]*)\]/.exec(readFileSync(bundleScript, 'utf8'));
  if (!m?.[1]) throw new Error(`no external: [...] list in ${bundleScript}`);
  const names = [...m[1].matchAll(/'([^']+)'|"([^"]+)"/g)].map((x) => (x[1] ?? x[2]) as string);
  return names.filter((n) => existsSync(join(modulesDir, n, 'package.json')));
}
/** Dependencies used only when npm installs a package, never when it runs. */
const INSTALL_ONLY = new Set(['prebuild-install']);
/** Per package: what of it runs (everything else, sources and build trees, stays out). */
const KEEP: Record<string, string[]> = {
  'better-sqlite3': ['package.json', 'LICENSE', 'lib', 'build/Release/better_sqlite3.node'],
};
/** Debian packages Xenode runs (QEMU, the guest builder's tools, ip/tc for the switch's host port). */
const DEPENDS = [
  // better-sqlite3 is built against Node 20's ABI and needs Node >= 20 (Debian 12's nodejs is 18).
  'nodejs (>= 20.19)',
  'nodejs (<< 21)',
  'qemu-system-x86',
  'iproute2',
  'xz-utils',
  'zstd',
  'apt',
  'init-system-helpers (>= 1.52)',
];

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { cwd: opts.cwd ?? repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

/** The installed packages a root package loads at run time, itself included. */
export function runtimeModules(roots: readonly string[], modulesDir: string): string[] {
  const seen = new Set<string>();
  const walk = (name: string, optional: boolean) => {
    // Type declarations (@types/*) are dependencies of some packages but never loaded.
    if (seen.has(name) || INSTALL_ONLY.has(name) || name.startsWith('@types/')) return;
    const dir = join(modulesDir, name);
    if (!existsSync(join(dir, 'package.json'))) {
      if (optional) return; // another platform's prebuilt binary
      throw new Error(`${name} is not installed in ${modulesDir} (run npm ci)`);
    }
    seen.add(name);
    const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const d of Object.keys(pj.dependencies ?? {})) walk(d, false);
    for (const d of Object.keys(pj.optionalDependencies ?? {})) walk(d, true);
  };
  for (const r of roots) walk(r, false);
  return [...seen].sort();
}

function copyModule(name: string, from: string, to: string): void {
  const src = join(from, name);
  const dst = join(to, name);
  const keep = KEEP[name];
  if (!keep) {
    cpSync(src, dst, {
      recursive: true,
      // musl builds (Alpine) are not for Debian; dpkg-shlibdeps could not resolve them either.
      // Dot files (.npmignore), type declarations, docs and source maps are not run.
      filter: (p) =>
        !/(^|\/)(musl_|\.)/.test(relative(src, p)) && !/\.(d\.ts|md|map)$/.test(p),
    });
    return;
  }
  for (const k of keep) {
    if (!existsSync(join(src, k))) throw new Error(`${name}: ${k} missing (is it built?)`);
    mkdirSync(dirname(join(dst, k)), { recursive: true });
    cpSync(join(src, k), join(dst, k), { recursive: true });
  }
}

/** Files 0644 and directories 0755 (Debian policy), executables named by the caller. */
function normalizeModes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      chmodSync(p, 0o755);
      normalizeModes(p);
    } else chmodSync(p, 0o644);
  }
}

function writeScript(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

function gz(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  // mtime 0 and no file name: the same input gives the same bytes.
  writeFileSync(path, gzipSync(Buffer.from(text), { level: 9 }));
}

/** Shared-library dependencies of the native modules, as dpkg-shlibdeps computes them. */
function shlibDepends(stage: string, objects: string[]): string {
  const work = mkdtempSync(join(tmpdir(), 'xenode-shlibs-'));
  try {
    // dpkg-shlibdeps reads debian/control; a minimal one names the package.
    mkdirSync(join(work, 'debian'));
    writeFileSync(join(work, 'debian', 'control'), 'Source: xenode\n\nPackage: xenode\nArchitecture: amd64\n');
    const out = run('dpkg-shlibdeps', ['-O', '--warnings=0', ...objects.map((o) => join(stage, o))], { cwd: work });
    const m = /shlibs:Depends=(.*)/.exec(out);
    return m?.[1]?.trim() ?? '';
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function findFiles(dir: string, suffix: string, base = dir): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findFiles(p, suffix, base));
    else if (name.endsWith(suffix)) out.push(relative(base, p));
  }
  return out;
}

function du(dir: string): number {
  let kib = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    kib += s.isDirectory() ? du(p) : Math.ceil(s.size / 1024);
  }
  return kib;
}

export interface BuildResult {
  deb: string;
  version: string;
}

export function buildDeb(o: { outDir: string; build: boolean }): BuildResult {
  if (o.build) run('npm', ['run', '--silent', 'build']);
  if (!existsSync(join(repo, 'web', 'dist', 'index.html'))) run('npm', ['run', '--silent', 'build:web']);
  for (const f of ['xenode.cjs', 'xenoded.mjs', 'xenode-switch.mjs', 'xenode-blk.mjs']) {
    if (!existsSync(join(repo, 'dist', f))) throw new Error(`dist/${f} missing: run npm run build`);
  }
  const version = pkgJson.version;
  const stage = mkdtempSync(join(tmpdir(), 'xenode-deb-'));
  try {
    const lib = join(stage, 'usr/lib/xenode');
    mkdirSync(join(lib, 'dist'), { recursive: true });
    for (const f of ['xenode.cjs', 'xenode.cjs.cache', 'xenoded.mjs', 'xenode-switch.mjs', 'xenode-blk.mjs']) {
      if (existsSync(join(repo, 'dist', f))) copyFileSync(join(repo, 'dist', f), join(lib, 'dist', f));
    }
    mkdirSync(join(lib, 'bin'), { recursive: true });
    copyFileSync(join(repo, 'bin', 'xenode-cli.cjs'), join(lib, 'bin', 'xenode-cli.cjs'));
    cpSync(join(repo, 'web', 'dist'), join(lib, 'web', 'dist'), { recursive: true });
    const externals = bundleExternals(join(repo, 'scripts/bundle.mjs'), join(repo, 'node_modules'));
    for (const m of runtimeModules(externals, join(repo, 'node_modules'))) {
      copyModule(m, join(repo, 'node_modules'), join(lib, 'node_modules'));
    }
    // Man pages and completion: generated now, from the tables this build bundles.
    gz(join(stage, 'usr/share/man/man1/xenode.1.gz'), renderXenodeMan());
    gz(join(stage, 'usr/share/man/man5/xenode.cfg.5.gz'), renderCfgMan());
    gz(join(stage, 'usr/share/man/man8/xenoded.8.gz'), renderXenodedMan());
    mkdirSync(join(stage, 'usr/share/bash-completion/completions'), { recursive: true });
    writeFileSync(join(stage, 'usr/share/bash-completion/completions/xenode'), renderBashCompletion());
    // Debian's zsh looks in vendor-completions for packages' completion functions.
    mkdirSync(join(stage, 'usr/share/zsh/vendor-completions'), { recursive: true });
    writeFileSync(join(stage, 'usr/share/zsh/vendor-completions/_xenode'), renderZshCompletion());
    mkdirSync(join(stage, 'lib/systemd/system'), { recursive: true });
    copyFileSync(join(repo, 'packaging/xenoded.service'), join(stage, 'lib/systemd/system/xenoded.service'));
    const doc = join(stage, 'usr/share/doc/xenode');
    mkdirSync(doc, { recursive: true });
    copyFileSync(join(repo, 'packaging/copyright'), join(doc, 'copyright'));
    copyFileSync(join(repo, 'README.md'), join(doc, 'README.md'));
    gz(join(doc, 'changelog.gz'), readFileSync(join(repo, 'packaging/changelog'), 'utf8'));
    normalizeModes(stage);
    writeScript(
      join(stage, 'usr/bin/xenode'),
      '#!/bin/sh\n# The xenode CLI (bundled; see /usr/lib/xenode).\nexec /usr/bin/node /usr/lib/xenode/bin/xenode-cli.cjs "$@"\n',
    );
    writeScript(
      join(stage, 'usr/sbin/xenoded'),
      // The same V8 flags as the daemon the CLI starts itself (src/toolstack/daemon-node-flags.ts).
      `#!/bin/sh\n# The Xenode daemon in the foreground (xenoded.service runs it).\nexec /usr/bin/node ${DAEMON_NODE_FLAGS.join(' ')} /usr/lib/xenode/dist/xenoded.mjs --foreground "$@"\n`,
    );

    const natives = findFiles(lib, '.node').map((p) => join('usr/lib/xenode', p));
    // As dh_strip does: no symbol tables or build notes in shipped objects.
    run('strip', ['--remove-section=.comment', '--remove-section=.note', '--strip-unneeded', ...natives.map((n) => join(stage, n))]);
    const shlibs = shlibDepends(stage, natives);
    const control = join(stage, 'DEBIAN');
    mkdirSync(control, { mode: 0o755 });
    const depends = [...DEPENDS, ...(shlibs ? shlibs.split(/,\s*/) : [])].join(', ');
    writeFileSync(
      join(control, 'control'),
      `Package: xenode
Version: ${version}
Architecture: amd64
Maintainer: Xenode maintainers <xenode@lists.xenode.dev>
Installed-Size: ${du(stage)}
Depends: ${depends}
Recommends: qemu-utils, bash-completion, man-db, gcc, libc6-dev
Suggests: xenstore-utils
Section: admin
Priority: optional
Homepage: https://github.com/xenode/xenode
Description: Xen-style virtualization toolstack driving QEMU
 Xenode runs unmodified Linux guests as QEMU machines (KVM where the host
 has hardware virtualization, TCG otherwise) and manages them with Xen's xl
 commands and xl.cfg files: a daemon (xenoded, run by systemd), the xenode
 command, a control store in the xenstore model, serial and web consoles,
 sponsors with tokens and quotas, save, restore and live migration.
`,
    );
    for (const s of ['postinst', 'prerm', 'postrm']) {
      copyFileSync(join(repo, 'packaging', s), join(control, s));
      chmodSync(join(control, s), 0o755);
    }
    mkdirSync(o.outDir, { recursive: true });
    const deb = join(o.outDir, `xenode_${version}_amd64.deb`);
    // gzip: xz takes minutes on a small machine for little gain on a 10 MB package.
    run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', stage, deb]);
    return { deb, version };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href) {
  const args = process.argv.slice(2);
  const oi = args.indexOf('--out');
  const outDir = resolve(oi >= 0 ? (args[oi + 1] ?? '.') : '.');
  const r = buildDeb({ outDir, build: !args.includes('--no-build') });
  process.stdout.write(`${r.deb}\n`);
}
