// Finding, fetching and unpacking the Debian packages the default guest is made of.
// Nothing is installed on the host: packages are downloaded into the cache and
// unpacked there with dpkg-deb.

import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { XenodeError } from '../src/errors.ts';
import { runText } from './exec.ts';

/** The kernel metapackage; its dependency names the real, versioned kernel package. */
export const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';
export const BUSYBOX_PACKAGE = 'busybox-static';

export interface DebPackage {
  name: string;
  version: string;
  /** Pool path from the archive index; its basename is the .deb file name. */
  filename: string;
  sha256: string;
  size: number;
}

type Stanza = Map<string, string>;

/** Parses deb822 records as printed by `apt-cache show`. */
export function parseStanzas(text: string): Stanza[] {
  const out: Stanza[] = [];
  let cur: Stanza = new Map();
  let lastKey = '';
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (cur.size > 0) out.push(cur);
      cur = new Map();
      continue;
    }
    if (/^\s/.test(line) && lastKey) {
      cur.set(lastKey, `${cur.get(lastKey) ?? ''}\n${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    lastKey = line.slice(0, colon);
    cur.set(lastKey, line.slice(colon + 1).trim());
  }
  if (cur.size > 0) out.push(cur);
  return out;
}

function toPackage(s: Stanza): DebPackage {
  const name = s.get('Package') ?? '';
  const version = s.get('Version') ?? '';
  const filename = s.get('Filename') ?? '';
  const sha256 = s.get('SHA256') ?? '';
  if (!name || !version || !filename || !sha256) {
    throw new XenodeError('internal', `apt-cache show gave an incomplete record for ${name || 'a package'}`);
  }
  return { name, version, filename, sha256, size: Number(s.get('Size') ?? 0) };
}

/** Candidate versions only: `--no-all-versions` prints what `apt-get download` would fetch. */
async function showCandidates(names: readonly string[], signal?: AbortSignal): Promise<Map<string, Stanza>> {
  let text: string;
  try {
    text = await runText('apt-cache', ['show', '--no-all-versions', ...names], { signal, providedBy: 'apt' });
  } catch (e) {
    if (e instanceof XenodeError && e.kind === 'internal') {
      throw new XenodeError('not-found', `apt does not know ${names.join(' or ')}: ${e.message}`, {
        hint: 'run `apt-get update` (as root) and try again',
      });
    }
    throw e;
  }
  const byName = new Map<string, Stanza>();
  for (const s of parseStanzas(text)) {
    const name = s.get('Package');
    if (name && !byName.has(name)) byName.set(name, s);
  }
  for (const n of names) {
    if (!byName.has(n)) {
      throw new XenodeError('not-found', `apt has no installable candidate for ${n}`, {
        hint: 'run `apt-get update` (as root) and try again',
      });
    }
  }
  return byName;
}

/** The real kernel package a metapackage depends on, e.g. linux-image-6.1.0-56-cloud-amd64. */
export function kernelDependency(meta: Stanza): string {
  const deps = (meta.get('Depends') ?? '').split(/[,|]/).map((d) => d.trim().split(/\s/)[0] ?? '');
  const real = deps.find((d) => /^linux-image-\d/.test(d));
  if (!real) throw new XenodeError('internal', `${KERNEL_METAPACKAGE} does not depend on a linux-image package`);
  return real;
}

/** Resolves the kernel metapackage and busybox-static to exact, downloadable versions. */
export async function resolvePackages(signal?: AbortSignal): Promise<DebPackage[]> {
  const first = await showCandidates([KERNEL_METAPACKAGE, BUSYBOX_PACKAGE], signal);
  const meta = first.get(KERNEL_METAPACKAGE) as Stanza;
  const kernelName = kernelDependency(meta);
  const second = await showCandidates([kernelName], signal);
  return [toPackage(second.get(kernelName) as Stanza), toPackage(first.get(BUSYBOX_PACKAGE) as Stanza)];
}

/**
 * A cheap fingerprint of apt's view of the archive. The candidate versions can only
 * change when one of these files changes, so a cache hit can skip apt-cache, which
 * costs about a second per call on hosts that keep no binary package cache.
 */
export async function aptStateFingerprint(): Promise<string> {
  const h = createHash('sha256');
  const dirs = ['/var/lib/apt/lists', '/etc/apt/sources.list.d', '/etc/apt/preferences.d'];
  const files = ['/etc/apt/sources.list', '/etc/apt/preferences'];
  // Synchronous on purpose: a dozen local stats take microseconds this way, while each
  // trip through libuv's thread pool waited behind whatever else the daemon was doing
  // (8-13 ms of a restore whose checksum runs meanwhile).
  for (const d of dirs) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch {
      /* absent */
    }
    for (const n of names.sort()) if (n !== 'lock' && n !== 'partial') files.push(join(d, n));
  }
  for (const f of files) {
    const st = statSync(f, { throwIfNoEntry: false });
    h.update(`${f}\0${st ? `${st.size}:${st.mtimeMs}` : '-'}\n`);
  }
  return h.digest('hex');
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/**
 * Downloads `pkg` into `downloadsDir` (reusing a verified earlier download). Each call
 * downloads into its own temporary directory and renames the checked file into place,
 * so concurrent builders never see a partial .deb.
 */
export async function downloadDeb(
  pkg: DebPackage,
  downloadsDir: string,
  opts: { signal?: AbortSignal; onProgress?: (msg: string) => void } = {},
): Promise<string> {
  const dest = join(downloadsDir, basename(pkg.filename));
  if ((await sha256File(dest).catch(() => '')) === pkg.sha256) return dest;
  const mb = pkg.size > 0 ? ` (${(pkg.size / 1e6).toFixed(1)} MB)` : '';
  opts.onProgress?.(`downloading ${pkg.name} ${pkg.version}${mb}`);
  const tmp = await mkdtemp(join(downloadsDir, '.dl-'));
  try {
    try {
      await runText('apt-get', ['download', `${pkg.name}=${pkg.version}`], {
        cwd: tmp,
        signal: opts.signal,
        providedBy: 'apt',
      });
    } catch (e) {
      if (e instanceof XenodeError && e.kind === 'internal') {
        throw new XenodeError('not-found', `could not download ${pkg.name} ${pkg.version}: ${e.message}`, {
          hint: 'run `apt-get update` (as root) and try again',
        });
      }
      throw e;
    }
    const debs = (await readdir(tmp)).filter((n) => n.endsWith('.deb'));
    if (debs.length !== 1) throw new XenodeError('internal', `apt-get download ${pkg.name} produced no .deb file`);
    const got = join(tmp, debs[0] as string);
    if ((await sha256File(got)) !== pkg.sha256) {
      throw new XenodeError('internal', `${pkg.name} ${pkg.version}: downloaded file does not match apt's SHA256`, {
        hint: 'run `apt-get update` (as root) and try again',
      });
    }
    await rename(got, dest);
    return dest;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Unpacks a .deb's files (not its maintainer scripts) under `root`. */
export async function extractDeb(deb: string, root: string, signal?: AbortSignal): Promise<void> {
  await runText('dpkg-deb', ['-x', deb, root], { signal, providedBy: 'dpkg' });
}
