// The on-disk cache of built guests, and how concurrent builders share it safely:
// each build happens in a private temporary directory that is renamed into place only
// when complete (rename of a directory onto a missing name is atomic, and fails if
// another builder got there first). A lock file created with O_EXCL keeps a second
// process from duplicating a build already in progress; correctness never depends on
// it, so a stale lock is simply broken.

import { open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** $XENODE_CACHE_DIR, else $XDG_CACHE_HOME/xenode/guest, else ~/.cache/xenode/guest. */
export function defaultGuestCacheDir(): string {
  const env = process.env;
  if (env.XENODE_CACHE_DIR) return env.XENODE_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'xenode', 'guest');
  return join(homedir(), '.cache', 'xenode', 'guest');
}

const TMP_PREFIX = '.tmp-';
/** A lock older than this is presumed abandoned even if its pid is alive (pid reuse). */
const LOCK_MAX_AGE_MS = 30 * 60_000;
const LOCK_POLL_MS = 200;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A private build directory name that records its owner, so leftovers can be swept. */
export function tempDirName(key: string): string {
  return `${TMP_PREFIX}${key}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Removes build directories left behind by builders that died. */
export async function sweepTempDirs(cacheDir: string): Promise<void> {
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (!name.startsWith(TMP_PREFIX)) continue;
    const pid = Number(name.split('-').at(-2));
    if (Number.isInteger(pid) && pid > 0 && !pidAlive(pid)) {
      await rm(join(cacheDir, name), { recursive: true, force: true });
    }
  }
}

/** Moves a finished build into place. False if another builder published first. */
export async function publishDir(tmp: string, final: string): Promise<boolean> {
  try {
    await rename(tmp, final);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      await rm(tmp, { recursive: true, force: true });
      return false;
    }
    throw e;
  }
}

export async function writeFileAtomic(path: string, data: string): Promise<void> {
  // Unique per call: two builders in one process may write the same file at once.
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

async function lockIsStale(lockPath: string): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    const pid = Number.parseInt(text, 10);
    // An empty lock is one being written right now, unless it is old.
    if (!Number.isInteger(pid)) return Date.now() - st.mtimeMs > 10_000;
    return !pidAlive(pid) || Date.now() - st.mtimeMs > LOCK_MAX_AGE_MS;
  } catch {
    return false; // gone already: the next attempt will take it
  }
}

export type Unlock = () => Promise<void>;

/**
 * Takes the lock at `lockPath`, or waits while another live process holds it.
 * Returns undefined instead of a lock when `isDone()` says the work was done meanwhile.
 */
export async function lockOrWait(
  lockPath: string,
  isDone: () => Promise<boolean>,
  opts: { signal?: AbortSignal; onWait?: (holder: string) => void } = {},
): Promise<Unlock | undefined> {
  let told = false;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const fh = await open(lockPath, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await unlink(lockPath).catch(() => undefined);
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (await isDone()) return undefined;
    if (await lockIsStale(lockPath)) {
      await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (!told) {
      told = true;
      const holder = (await readFile(lockPath, 'utf8').catch(() => '')).trim();
      opts.onWait?.(holder || 'unknown');
    }
    await sleep(LOCK_POLL_MS, undefined, { signal: opts.signal });
  }
}

/** Removes every built guest (and apt's remembered answer), keeping downloaded .debs. */
export async function clearBuiltGuests(cacheDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
    if (name === 'downloads') continue;
    await rm(join(cacheDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
