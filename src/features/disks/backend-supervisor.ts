// xenoded's supervision of the disk backend processes (`backendtype=xenode`):
// one xenode-blk process per disk, started before QEMU (QEMU waits for its
// vhost-user socket at start), detached so that it outlives a daemon restart,
// and found again by the next daemon through its control socket. The control
// connection closing is the news of a death: the backend is started again at
// once, QEMU reconnects within a second (reconnect=1) and the inflight region
// lets the new process serve what the old one left unfinished. A backend that
// keeps dying before it serves anything is given up after MAX_FAILED_STARTS,
// with an error in the daemon log and `state = failed` in the store, instead
// of a restart loop.

import { spawn } from 'node:child_process';
import { existsSync, openSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_DISK_IO } from '../../engine/disk-args.ts';
import type { DaemonLog } from '../../toolstack/log.ts';

/** How long a backend may take to answer on its control socket after it is spawned. */
const START_TIMEOUT_MS = 15_000;
/** A backend that lived this long, or served a request, was healthy: its death starts a new count. */
const HEALTHY_AFTER_MS = 10_000;
/** Deaths in a row without being healthy before the supervisor gives up. */
export const MAX_FAILED_STARTS = 5;
/** A backend with no frontend for this long exits by itself (its domain went while no daemon ran). */
const IDLE_EXIT_S = 120;

/** One disk served by a backend process. */
export interface BackendSpec {
  domid: number;
  devnum: number;
  vdev: string;
  image: string;
  readOnly: boolean;
  /** The domain's run directory: sockets and the backend's log live there. */
  runDir: string;
}

export interface BackendPaths {
  socket: string;
  control: string;
  log: string;
  /** The disk's I/O counters, kept by the backend, read by block-stats and accounting (backend-stats.ts). */
  stats: string;
}

export function backendPaths(runDir: string, devnum: number): BackendPaths {
  return {
    socket: join(runDir, `vblk-${devnum}.sock`),
    control: join(runDir, `vblk-${devnum}.ctl`),
    log: join(runDir, `vblk-${devnum}.log`),
    stats: join(runDir, `vblk-${devnum}.stats`),
  };
}

/** What the backend says on its control socket (src/backends/vhost-blk/main.ts). */
export interface BackendStatus {
  version: number;
  pid: number;
  direct: boolean;
  startedAt: number;
  firstCompletionAt: number | null;
  requests: number;
  errors: number;
  resubmitted: number;
  connections: number;
  inFlight: number;
}

export type BackendState = 'starting' | 'running' | 'restarting' | 'failed' | 'stopped';

/** What the store and the API are told about a backend. */
export interface BackendReport {
  state: BackendState;
  pid?: number;
  restarts: number;
}

interface Entry {
  spec: BackendSpec;
  paths: BackendPaths;
  ctl?: Socket;
  status?: BackendStatus;
  state: BackendState;
  restarts: number;
  failedStarts: number;
  stopping: boolean;
  starting?: Promise<void>;
}

export interface SupervisorEvents {
  log: Pick<DaemonLog, 'info' | 'warn' | 'error'>;
  /** State changes, for the store. */
  report(spec: BackendSpec, r: BackendReport): void;
}

function key(domid: number, devnum: number): string {
  return `${domid}/${devnum}`;
}

export class BlkBackendSupervisor {
  private readonly entries = new Map<string, Entry>();
  private closing = false;

  constructor(private readonly ev: SupervisorEvents) {}

  /** The program: the bundle beside the daemon's, or the source under tsx. */
  private program(): string[] {
    const here = dirname(fileURLToPath(import.meta.url));
    const bundled = join(here, 'xenode-blk.mjs');
    return existsSync(bundled)
      ? [bundled]
      : ['--import', 'tsx', join(here, '..', '..', 'backends', 'vhost-blk', 'main.ts')];
  }

  report(domid: number, devnum: number): BackendReport | undefined {
    const e = this.entries.get(key(domid, devnum));
    return e && { state: e.state, ...(e.status ? { pid: e.status.pid } : {}), restarts: e.restarts };
  }

  status(domid: number, devnum: number): BackendStatus | undefined {
    return this.entries.get(key(domid, devnum))?.status;
  }

  /**
   * A backend serving `spec`, running and answering: one already there (a
   * restarted daemon, a domain restarted with a new QEMU) is kept, else one is started.
   */
  async ensure(spec: BackendSpec): Promise<void> {
    const k = key(spec.domid, spec.devnum);
    let e = this.entries.get(k);
    if (!e) {
      e = {
        spec,
        paths: backendPaths(spec.runDir, spec.devnum),
        state: 'starting',
        restarts: 0,
        failedStarts: 0,
        stopping: false,
      };
      this.entries.set(k, e);
    }
    e.spec = spec;
    e.stopping = false;
    if (e.ctl && !e.ctl.destroyed) return;
    if (await this.attach(e).catch(() => false)) return;
    await this.startOnce(e);
  }

  private startOnce(e: Entry): Promise<void> {
    if (!e.starting) {
      e.starting = this.spawnAndAttach(e).finally(() => {
        e.starting = undefined;
      });
    }
    return e.starting;
  }

  private async spawnAndAttach(e: Entry): Promise<void> {
    const s = e.spec;
    const args = [
      ...this.program(),
      '--socket',
      e.paths.socket,
      '--control',
      e.paths.control,
      '--stats',
      e.paths.stats,
      '--image',
      s.image,
      '--serial',
      s.vdev,
      '--idle-exit',
      String(IDLE_EXIT_S),
      // The host page cache, as Xenode's QEMU disks use it (cache.direct=off): the same
      // write-back semantics (a guest flush is fdatasync), and page-cache hits served
      // without a worker thread (docs/benchmarks.md, bench:io).
      '--direct',
      DEFAULT_DISK_IO.direct ? 'auto' : 'off',
      ...(s.readOnly ? ['--read-only'] : []),
    ];
    const out = openSync(e.paths.log, 'a');
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (await this.attach(e).catch(() => false)) return;
      if (exited || Date.now() > deadline) {
        if (!exited) {
          try {
            process.kill(child.pid ?? 0, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        throw new Error(`the disk backend of ${s.vdev} did not start (see ${e.paths.log})`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Connect to a running backend's control socket and watch it; false if none answers. */
  private attach(e: Entry): Promise<boolean> {
    return new Promise((resolve) => {
      if (!existsSync(e.paths.control)) return resolve(false);
      const c = createConnection(e.paths.control);
      let buf = '';
      let first = true;
      const fail = () => {
        if (first) {
          first = false;
          c.destroy();
          resolve(false);
        }
      };
      c.once('error', fail);
      const timer = setTimeout(fail, 2000);
      c.on('data', (d) => {
        buf += d.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          let st: BackendStatus;
          try {
            st = JSON.parse(line) as BackendStatus;
          } catch {
            continue;
          }
          e.status = st;
          if (st.firstCompletionAt !== null) e.failedStarts = 0;
          if (first) {
            first = false;
            clearTimeout(timer);
            c.removeListener('error', fail);
            c.on('error', () => {});
            c.on('close', () => this.died(e, c));
            e.ctl = c;
            e.state = 'running';
            this.ev.report(e.spec, { state: 'running', pid: st.pid, restarts: e.restarts });
            resolve(true);
          }
        }
      });
      c.once('close', fail);
    });
  }

  private died(e: Entry, c: Socket): void {
    if (e.ctl !== c) return;
    e.ctl = undefined;
    if (e.stopping || this.closing) return;
    const s = e.spec;
    const st = e.status;
    const healthy =
      st !== undefined && (st.firstCompletionAt !== null || Date.now() - st.startedAt >= HEALTHY_AFTER_MS);
    e.failedStarts = healthy ? 0 : e.failedStarts + 1;
    if (e.failedStarts >= MAX_FAILED_STARTS) {
      this.giveUp(e, `it died ${e.failedStarts} times in a row before serving a request`);
      return;
    }
    e.restarts++;
    e.state = 'restarting';
    this.ev.log.warn(
      `disk backend of ${s.vdev} (pid ${st?.pid ?? '?'}) exited; restarting it (restart ${e.restarts})`,
      s.domid,
    );
    this.ev.report(s, { state: 'restarting', restarts: e.restarts });
    // Backing off only while it fails to come up, so a crash loop does not take the host's CPU.
    const delay = e.failedStarts > 0 ? Math.min(2000, 250 * 2 ** (e.failedStarts - 1)) : 0;
    setTimeout(() => this.restart(e), delay);
  }

  private restart(e: Entry): void {
    if (e.stopping || this.closing) return;
    e.status = undefined;
    this.startOnce(e).catch((err: unknown) => {
      e.failedStarts++;
      this.ev.log.warn(err instanceof Error ? err.message : String(err), e.spec.domid);
      if (e.failedStarts >= MAX_FAILED_STARTS) this.giveUp(e, `it failed to start ${e.failedStarts} times in a row`);
      else setTimeout(() => this.restart(e), Math.min(2000, 250 * 2 ** (e.failedStarts - 1)));
    });
  }

  private giveUp(e: Entry, why: string): void {
    e.state = 'failed';
    this.ev.log.error(
      `disk backend of ${e.spec.vdev} given up: ${why}; the guest's I/O on it waits (see ${e.paths.log}; destroy or restart the domain)`,
      e.spec.domid,
    );
    this.ev.report(e.spec, { state: 'failed', restarts: e.restarts });
  }

  /** The domain is gone: stop its backends (all, or one disk's). */
  stop(domid: number, devnum?: number): void {
    for (const [k, e] of this.entries) {
      if (e.spec.domid !== domid || (devnum !== undefined && e.spec.devnum !== devnum)) continue;
      e.stopping = true;
      e.state = 'stopped';
      const pid = e.status?.pid;
      e.ctl?.destroy();
      e.ctl = undefined;
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
      }
      // The counters go with the disk: a disk served again later counts from zero (under a new epoch).
      for (const p of [e.paths.socket, e.paths.control, e.paths.stats]) rmSync(p, { force: true });
      this.entries.delete(k);
    }
  }

  /** Daemon exit: stop watching; the backends stay for their domains. */
  close(): void {
    this.closing = true;
    for (const e of this.entries.values()) e.ctl?.destroy();
  }
}
