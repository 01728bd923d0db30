// The Xenode default guest: the Debian cloud kernel plus a busybox initramfs with the
// virtio drivers, built on first use from Debian packages (never installed on the
// host) and cached under a key that hashes everything it is made from.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { XenodeError } from '../src/errors.ts';
import { aptStateFingerprint, type DebPackage, downloadDeb, extractDeb, resolvePackages } from './apt.ts';
import { defaultGuestCacheDir, lockOrWait, publishDir, sweepTempDirs, tempDirName, writeFileAtomic } from './cache.ts';
import { runText } from './exec.ts';
import { buildInitramfs } from './initramfs.ts';
import { extractVmlinux } from './kernel.ts';
import { ON_DEMAND_MODULES, selectModules, WANTED_MODULES } from './modules.ts';
import { reseedProgram } from './reseed.ts';
import { GUEST_DIRS, GUEST_FILES, GUEST_LINKS, READY_MARKER } from './rootfs.ts';
import { buildStoreClient, STORE_CLIENT_SOURCE } from './store-client.ts';

export { defaultGuestCacheDir } from './cache.ts';

/** Bump when the build procedure changes in a way the other key inputs do not show. */
export const BUILDER_VERSION = 1;

export interface GuestImage {
  dir: string;
  /** The Debian bzImage. */
  kernel: string;
  /** Uncompressed ELF with a PVH entry note, for fast direct boot. */
  vmlinux: string;
  initrd: string;
  /** e.g. 6.1.0-28-cloud-amd64 */
  kernelVersion: string;
  /** The guest prints `XENODE-READY uptime=<seconds>` on its console once booted. */
  readyMarker: 'XENODE-READY';
}

export interface EnsureGuestOptions {
  cacheDir?: string;
  onProgress?: (msg: string) => void;
  signal?: AbortSignal;
}

const FILES = { kernel: 'vmlinuz', vmlinux: 'vmlinux', initrd: 'initrd.cpio' } as const;
const MANIFEST = 'guest.json';
const RESOLVED = 'resolved.json';

interface Manifest {
  builderVersion: number;
  key: string;
  kernelVersion: string;
  packages: DebPackage[];
  modules: string[];
  skippedModules: string[];
  builtAt: string;
  buildSeconds: number;
}

/** Everything the image is made from; its hash names the cache entry. */
export function cacheKey(packages: readonly DebPackage[]): string {
  const inputs = {
    builder: BUILDER_VERSION,
    packages: packages.map((p) => ({ name: p.name, version: p.version, filename: p.filename, sha256: p.sha256 })),
    files: GUEST_FILES,
    reseed: reseedProgram().toString('hex'),
    storeClient: STORE_CLIENT_SOURCE,
    links: GUEST_LINKS,
    dirs: GUEST_DIRS,
    modules: WANTED_MODULES,
    onDemandModules: ON_DEMAND_MODULES,
  };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}

function imageFor(dir: string, m: Manifest): GuestImage {
  return {
    dir,
    kernel: join(dir, FILES.kernel),
    vmlinux: join(dir, FILES.vmlinux),
    initrd: join(dir, FILES.initrd),
    kernelVersion: m.kernelVersion,
    readyMarker: READY_MARKER,
  };
}

/** The image in `dir`, if that directory holds a complete build. */
async function readImage(dir: string): Promise<{ image: GuestImage; manifest: Manifest } | undefined> {
  // Synchronous: the cache hit is on every create and restore, and a few local reads
  // and stats are cheaper than trips through libuv's thread pool (see aptStateFingerprint).
  try {
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
    const image = imageFor(dir, manifest);
    for (const f of [image.kernel, image.vmlinux, image.initrd]) statSync(f);
    return { image, manifest };
  } catch {
    return undefined;
  }
}

/**
 * Exact package versions to build from. apt-cache is slow (about 1 s a call here), so
 * its answer is remembered until apt's package lists change (after `apt-get update`).
 */
async function resolveInputs(cacheDir: string, opts: EnsureGuestOptions): Promise<DebPackage[]> {
  const memoPath = join(cacheDir, RESOLVED);
  const fingerprint = await aptStateFingerprint();
  try {
    const memo = JSON.parse(readFileSync(memoPath, 'utf8')) as { fingerprint: string; packages: DebPackage[] };
    if (memo.fingerprint === fingerprint && memo.packages.length === 2) return memo.packages;
  } catch {
    // no memo yet, or unreadable: resolve afresh
  }
  opts.onProgress?.('resolving linux-image-cloud-amd64 and busybox-static with apt-cache');
  const packages = await resolvePackages(opts.signal);
  await writeFileAtomic(memoPath, `${JSON.stringify({ fingerprint, packages }, null, 2)}\n`);
  return packages;
}

/** The most recently built complete image in the cache, for hosts where apt cannot answer. */
async function newestCachedImage(cacheDir: string): Promise<GuestImage | undefined> {
  let best: { image: GuestImage; builtAt: string } | undefined;
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (name.startsWith('.')) continue;
    const found = await readImage(join(cacheDir, name));
    if (found && (!best || found.manifest.builtAt > best.builtAt)) {
      best = { image: found.image, builtAt: found.manifest.builtAt };
    }
  }
  return best?.image;
}

export async function ensureDefaultGuest(opts: EnsureGuestOptions = {}): Promise<GuestImage> {
  const cacheDir = resolve(opts.cacheDir ?? defaultGuestCacheDir());
  mkdirSync(cacheDir, { recursive: true });

  let packages: DebPackage[];
  try {
    packages = await resolveInputs(cacheDir, opts);
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    const cached = await newestCachedImage(cacheDir);
    if (!cached) throw e;
    opts.onProgress?.(`apt could not resolve the guest packages (${(e as Error).message}); using ${cached.dir}`);
    return cached;
  }

  const kernelPkg = packages[0] as DebPackage;
  const key = cacheKey(packages);
  const finalDir = join(cacheDir, `${kernelPkg.name.replace(/^linux-image-/, '')}-${key}`);
  const hit = await readImage(finalDir);
  if (hit) return hit.image;

  const unlock = await lockOrWait(`${finalDir}.lock`, async () => (await readImage(finalDir)) !== undefined, {
    signal: opts.signal,
    onWait: (holder) => opts.onProgress?.(`waiting for another build of the guest (pid ${holder})`),
  });
  try {
    // Someone may have published between our check and taking the lock.
    const done = await readImage(finalDir);
    if (done) return done.image;
    await sweepTempDirs(cacheDir);
    return await build(cacheDir, finalDir, key, packages, opts);
  } finally {
    await unlock?.();
  }
}

async function build(
  cacheDir: string,
  finalDir: string,
  key: string,
  packages: DebPackage[],
  opts: EnsureGuestOptions,
): Promise<GuestImage> {
  const { signal, onProgress } = opts;
  const started = performance.now();
  const downloads = join(cacheDir, 'downloads');
  await mkdir(downloads, { recursive: true });
  const tmp = join(cacheDir, tempDirName(key));
  const root = join(tmp, 'root');
  await mkdir(root, { recursive: true });
  try {
    const debs: string[] = [];
    for (const pkg of packages) debs.push(await downloadDeb(pkg, downloads, { signal, onProgress }));

    onProgress?.(`extracting ${packages.map((p) => p.name).join(' and ')}`);
    await Promise.all(debs.map((d) => extractDeb(d, root, signal)));
    const kernelVersion = await onlyKernelVersion(root);

    onProgress?.('decompressing the kernel to vmlinux');
    const bzPath = join(root, 'boot', `vmlinuz-${kernelVersion}`);
    const vmlinux = await extractVmlinux(await readFile(bzPath), join(tmp, 'payload.tmp'), signal).catch((e: Error) => {
      throw signal?.aborted || e instanceof XenodeError ? e : new XenodeError('internal', `${bzPath}: ${e.message}`);
    });
    await rm(join(tmp, 'payload.tmp'), { force: true });
    await writeFile(join(tmp, FILES.vmlinux), vmlinux);
    await rename(bzPath, join(tmp, FILES.kernel));

    const modulesDir = join(root, 'lib', 'modules', kernelVersion);
    const selection = await selectModules(modulesDir, [...WANTED_MODULES, ...ON_DEMAND_MODULES]);
    const atBoot = await selectModules(modulesDir, WANTED_MODULES);
    onProgress?.(`building initramfs (${selection.ordered.length} modules)`);
    const busyboxPath = join(root, 'bin', 'busybox');
    // The applet list comes from the binary itself (it is static amd64, runnable here).
    const applets = (await runText(busyboxPath, ['--list-full'], { signal })).split('\n').filter((l) => l !== '');
    const initrd = buildInitramfs({
      busybox: await readFile(busyboxPath),
      applets,
      kernelVersion,
      modules: await Promise.all(selection.ordered.map(async (m) => ({ ...m, data: await readFile(m.path) }))),
      bootModules: atBoot.ordered.map((m) => m.name),
      storeClient: await buildStoreClient(tmp, signal),
    });
    await writeFile(join(tmp, FILES.initrd), initrd);
    await rm(root, { recursive: true, force: true });

    const buildSeconds = (performance.now() - started) / 1000;
    const manifest: Manifest = {
      builderVersion: BUILDER_VERSION,
      key,
      kernelVersion,
      packages,
      modules: selection.ordered.map((m) => m.name),
      skippedModules: selection.skipped,
      builtAt: new Date().toISOString(),
      buildSeconds: Math.round(buildSeconds * 10) / 10,
    };
    // Written last: a directory with a manifest is a complete build.
    await writeFile(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    signal?.throwIfAborted();
    await publishDir(tmp, finalDir);
    await pruneOldBuilds(cacheDir, finalDir);
    onProgress?.(`done in ${buildSeconds.toFixed(1)} s`);
    const published = await readImage(finalDir);
    if (!published) throw new XenodeError('internal', `guest build in ${finalDir} vanished after publishing`);
    return published.image;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** How many built guests to keep: enough to switch between a few checkouts without rebuilding. */
const KEEP_BUILDS = 3;

/**
 * Drops all but the newest KEEP_BUILDS builds, and downloads no kept build was made
 * from. A QEMU already running from a dropped build is unaffected: it read its kernel
 * and initrd into memory at start.
 */
async function pruneOldBuilds(cacheDir: string, keep: string): Promise<void> {
  const builds: Array<{ dir: string; manifest: Manifest }> = [];
  for (const name of await readdir(cacheDir)) {
    if (name.startsWith('.') || name === 'downloads') continue;
    const found = await readImage(join(cacheDir, name));
    if (found) builds.push({ dir: found.image.dir, manifest: found.manifest });
  }
  builds.sort((a, b) =>
    a.dir === keep ? -1 : b.dir === keep ? 1 : b.manifest.builtAt.localeCompare(a.manifest.builtAt),
  );
  const kept = builds.slice(0, KEEP_BUILDS);
  for (const old of builds.slice(KEEP_BUILDS)) await rm(old.dir, { recursive: true, force: true });
  const wanted = new Set(kept.flatMap((b) => b.manifest.packages.map((p) => basename(p.filename))));
  const downloads = join(cacheDir, 'downloads');
  for (const deb of await readdir(downloads).catch(() => [] as string[])) {
    if (deb.endsWith('.deb') && !wanted.has(deb)) await rm(join(downloads, deb), { force: true });
  }
}

async function onlyKernelVersion(root: string): Promise<string> {
  const versions = await readdir(join(root, 'lib', 'modules')).catch(() => [] as string[]);
  if (versions.length !== 1) {
    throw new XenodeError('internal', `expected one kernel under lib/modules, found ${versions.length}`);
  }
  return versions[0] as string;
}
