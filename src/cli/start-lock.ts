// One CLI at a time starts xenoded: a lock file next to its socket, created
// atomically (link(2) of a file that already holds our pid, so the lock is
// never seen empty). A lock whose holder died is taken over.

import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in a lock file: null when the file is gone, undefined when it holds no pid. */
function holder(file: string): number | null | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** A held start lock; release() removes it. */
export interface StartLock {
  release(): void;
}

/** Take the lock, or undefined while a live process holds it. */
export function tryStartLock(file: string): StartLock | undefined {
  const mine = `${file}.${process.pid}`;
  writeFileSync(mine, String(process.pid), { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(mine, file);
        return { release: () => rmSync(file, { force: true }) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = holder(file);
      if (pid === null) continue;
      if (pid !== undefined && alive(pid)) return undefined;
      // Its holder died (a CLI killed while starting the daemon). Move it aside
      // first: of several CLIs that saw it stale, exactly one gets to remove it.
      const stale = `${file}.stale.${process.pid}`;
      try {
        renameSync(file, stale);
      } catch {
        continue;
      }
      const taken = holder(stale);
      if (taken !== pid && typeof taken === 'number' && alive(taken)) {
        // A live holder took the lock between our look and the rename: give it back.
        try {
          linkSync(stale, file);
        } catch {
          /* someone holds it again: theirs stands */
        }
        rmSync(stale, { force: true });
        return undefined;
      }
      rmSync(stale, { force: true });
    }
    return undefined;
  } finally {
    rmSync(mine, { force: true });
  }
}
