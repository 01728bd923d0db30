// QEMU's migration machinery as Xenode uses it: write a machine's state to a
// stream (save), load one into a fresh QEMU started with `-incoming defer`
// (restore), live pre-copy straight to another QEMU (migrate) over a socket
// the daemons authenticated first (adoptSocket). Only this file knows the QMP
// commands and URIs involved (reference qemu-engine.md §2.5).

import type { Socket } from 'node:net';
import { socketFd } from './fd-passing.ts';
import { lastQemuError } from './process.ts';
import type { QemuMachine } from './qemu-machine.ts';
import { QmpError, type QmpEvent } from './qmp.ts';

export type MigrationStatus =
  | 'none'
  | 'setup'
  | 'active'
  | 'completed'
  | 'failed'
  | 'cancelling'
  | 'cancelled'
  | 'device'
  | 'pre-switchover'
  | 'wait-unplug'
  | 'other';

/** query-migrate in the units the toolstack shows. */
export interface MigrationStats {
  status: MigrationStatus;
  totalMs?: number;
  /** Stop-and-copy time measured by the source QEMU. */
  downtimeMs?: number;
  expectedDowntimeMs?: number;
  setupMs?: number;
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  /** Guest pages dirtied per second, in bytes/s. */
  dirtyBytesPerSec: number;
  mbps: number;
  /** Completed dirty-bitmap syncs (pre-copy passes). */
  passes: number;
  error?: string;
}

export interface MigrationTuning {
  /** Bytes per second QEMU may send; undefined = effectively unlimited. */
  maxBandwidthBytes?: number;
  /** Longest pause of the guest QEMU aims for at switch-over. */
  downtimeLimitMs?: number;
  /**
   * Source of a live migration: QEMU completes only once the target's QEMU says
   * it loaded every byte (over the stream's return path), and resumes its guest
   * if the target fails instead.
   */
  returnPath?: boolean;
  /**
   * Source of a live migration: QEMU stops the guest for the last copy, then
   * waits for follow()'s onPreSwitchover before it sends the device state. Until
   * then a cancel is always safe (the target cannot have the whole state).
   */
  pauseBeforeSwitchover?: boolean;
  /**
   * Leave guest RAM in a shared backend out of the stream (QEMU's x-ignore-shared):
   * the device state only, both ends, for RAM that stays in a file (templates).
   */
  ignoreShared?: boolean;
}

/** QEMU's default max-bandwidth is 128 MiB/s; saves and local moves should not be capped by it. */
const UNLIMITED_BYTES = 10 * 1024 ** 3;

interface RawMigrate {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  'socket-address'?: Array<{ type?: string; host?: string; port?: string | number }>;
  ram?: {
    transferred?: number;
    remaining?: number;
    total?: number;
    'dirty-pages-rate'?: number;
    'page-size'?: number;
    mbps?: number;
    'dirty-sync-count'?: number;
  };
}

const STATUSES: readonly MigrationStatus[] = [
  'none',
  'setup',
  'active',
  'completed',
  'failed',
  'cancelling',
  'cancelled',
  'device',
  'pre-switchover',
  'wait-unplug',
];

function statusOf(s: string | undefined): MigrationStatus {
  return (STATUSES as readonly string[]).includes(s ?? '') ? (s as MigrationStatus) : s ? 'other' : 'none';
}

function toStats(r: RawMigrate): MigrationStats {
  const ram = r.ram ?? {};
  return {
    status: statusOf(r.status),
    totalMs: r['total-time'],
    downtimeMs: r.downtime,
    expectedDowntimeMs: r['expected-downtime'],
    setupMs: r['setup-time'],
    transferredBytes: ram.transferred ?? 0,
    remainingBytes: ram.remaining ?? 0,
    totalBytes: ram.total ?? 0,
    dirtyBytesPerSec: (ram['dirty-pages-rate'] ?? 0) * (ram['page-size'] ?? 4096),
    mbps: ram.mbps ?? 0,
    passes: ram['dirty-sync-count'] ?? 0,
    error: r['error-desc'],
  };
}

/** Arguments that make a new QEMU wait for a migration stream instead of booting. */
export function incomingArgs(): string[] {
  return ['-incoming', 'defer'];
}

export function unixUri(path: string): string {
  return `unix:${path}`;
}

/** Single-quote a word for /bin/sh (QEMU runs `exec:` URIs through it). */
function shellWord(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** The number a QEMU knows the first of QemuCommand.passFds by. */
export const FIRST_PASSED_FD = 3;

/**
 * An incoming URI for a descriptor QEMU inherited (QemuCommand.passFds), e.g. a
 * save file positioned at its stream: QEMU reads the file itself, with no
 * process or pipe in between (an `exec:dd` of the byte range cost a fork, an
 * exec and a copy through a pipe). The stream's own end marker ends the load,
 * so what follows it in the file is never read as state.
 */
export function inheritedFdUri(fd: number): string {
  return `fd:${fd}`;
}

/**
 * An outgoing URI that appends the stream to `file` (as fast as plain QEMU's
 * `exec:cat > FILE`), then writes cat's exit status to `statusFile`: the
 * sign that every byte is in the file, which QEMU's own events come before.
 */
export function appendToFileUri(file: string, statusFile: string): string {
  return `exec:cat >> ${shellWord(file)}; echo $? > ${shellWord(statusFile)}`;
}

export class MigrationError extends Error {
  constructor(
    message: string,
    readonly status: MigrationStatus,
  ) {
    super(message);
    this.name = 'MigrationError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A QMP event's own timestamp in ms since the epoch (QEMU's clock, not ours). */
function eventTime(e: QmpEvent): number | undefined {
  return e.timestamp ? e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000 : undefined;
}

/** Migration control of one QEMU. */
export class Migration {
  /** When the source guest stopped for the last stop-and-copy (QEMU's STOP event). */
  stoppedAt?: number;

  constructor(private readonly m: QemuMachine) {}

  private get qmp() {
    return this.m.qmpClient;
  }

  async query(): Promise<MigrationStats> {
    return toStats(await this.qmp.execute<RawMigrate>('query-migrate'));
  }

  /**
   * Enable MIGRATION events and set bandwidth and downtime (both ends call this).
   * QMP runs a connection's commands in order, so these and whatever the caller
   * sends next go out at once, without a round trip each.
   */
  async configure(t: MigrationTuning = {}): Promise<void> {
    const params: Record<string, number> = { 'max-bandwidth': Math.round(t.maxBandwidthBytes ?? UNLIMITED_BYTES) };
    if (t.downtimeLimitMs !== undefined) params['downtime-limit'] = Math.round(t.downtimeLimitMs);
    // Always set: QEMU keeps capabilities from one migration to the next (a save to a file has no return path).
    const capabilities = [
      { capability: 'events', state: true },
      { capability: 'return-path', state: t.returnPath === true },
      { capability: 'pause-before-switchover', state: t.pauseBeforeSwitchover === true },
      { capability: 'x-ignore-shared', state: t.ignoreShared === true },
    ];
    await Promise.all([
      this.qmp.execute('migrate-set-capabilities', { capabilities }),
      this.qmp.execute('migrate-set-parameters', params),
    ]);
  }

  /** Run state as QEMU names it (postmigrate, finish-migrate, inmigrate, ...). */
  async rawRunState(): Promise<string> {
    return (await this.qmp.execute<{ status: string }>('query-status')).status;
  }

  /**
   * Wait until QEMU has finalized a completed or failed migration: the MIGRATION
   * event comes before the main loop leaves finish-migrate, and `cont` in that
   * window fails with "Migration is not finalized yet". Short, bounded poll.
   */
  async settle(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.rawRunState();
      if (s !== 'finish-migrate' || Date.now() > deadline) return s;
      await sleep(2);
    }
  }

  /**
   * Begin an outgoing migration to `uri`. QEMU refuses to migrate a VM still
   * paused from an earlier migration (postmigrate, e.g. after a checkpoint left
   * paused); a cont+stop pair clears that state without letting the guest run
   * more than a moment. `running`: the caller knows the guest runs.
   */
  async start(uri: string, opts: { running?: boolean } = {}): Promise<void> {
    // A guest known to run cannot be in postmigrate: spare the query.
    if (!opts.running && (await this.settle()) === 'postmigrate') {
      await this.qmp.execute('cont');
      await this.qmp.execute('stop');
    }
    await this.qmp.execute('migrate', { uri });
  }

  /**
   * Follow an outgoing migration until it completes; `onProgress` gets
   * query-migrate every `intervalMs`. Rejects with MigrationError when QEMU
   * reports failed or cancelled, or when `abort` fires (then it cancels first).
   */
  async follow(
    opts: {
      onProgress?: (s: MigrationStats) => void;
      intervalMs?: number;
      abort?: AbortSignal;
      /**
       * false: return as soon as QEMU reports completed, before it has finalized
       * (times and byte counts may still change; query after settle() for those).
       */
      finalize?: boolean;
      /**
       * With pauseBeforeSwitchover: called once QEMU waits before the switch-over;
       * QEMU is told to go on when it resolves. From then on `abort` no longer
       * cancels: the device state is on its way and QEMU's own outcome decides.
       */
      onPreSwitchover?: () => Promise<void> | void;
    } = {},
  ): Promise<MigrationStats> {
    const qmp = this.qmp;
    // An event that lands while a query is in flight must still cut the next wait short.
    let poked = false;
    let wake: () => void = () => {
      poked = true;
    };
    let completedEvent = false;
    let switchedOver = false;
    let last: MigrationStats | undefined;
    const onEvent = (e: QmpEvent) => {
      if (e.event === 'STOP') this.stoppedAt = eventTime(e);
      if (e.event === 'MIGRATION') {
        if (e.data?.status === 'completed') completedEvent = true;
        wake();
      }
    };
    const onAbort = () => wake();
    qmp.on('event', onEvent);
    qmp.on('close', onAbort);
    opts.abort?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (opts.abort?.aborted && !switchedOver) {
          await this.cancel();
          const why = opts.abort.reason instanceof Error ? opts.abort.reason.message : String(opts.abort.reason);
          throw new MigrationError(why, 'cancelled');
        }
        // The event is enough: a query now would wait for QEMU's main loop, busy
        // finishing the migration, and only tell what the caller does not need yet.
        if (completedEvent && opts.finalize === false) {
          return { ...(last ?? (await this.query())), status: 'completed', remainingBytes: 0 };
        }
        const s = await this.query();
        last = s;
        // Times and byte counts are final only once QEMU has finalized the migration.
        if (s.status === 'completed') {
          if (opts.finalize === false) return s;
          await this.settle();
          return this.query();
        }
        if (s.status === 'failed' || s.status === 'cancelled') {
          throw new MigrationError(s.error ?? `migration ${s.status}`, s.status);
        }
        if (s.status === 'pre-switchover' && !switchedOver) {
          if (opts.abort?.aborted) continue;
          await opts.onPreSwitchover?.();
          switchedOver = true;
          await qmp.execute('migrate-continue', { state: 'pre-switchover' });
          continue;
        }
        if (s.status !== 'none') opts.onProgress?.(s);
        if (poked) {
          poked = false;
          continue;
        }
        await new Promise<void>((r) => {
          const t = setTimeout(done, opts.intervalMs ?? 250);
          function done() {
            clearTimeout(t);
            wake = () => {
              poked = true;
            };
            r();
          }
          wake = done;
        });
      }
    } finally {
      qmp.off('event', onEvent);
      qmp.off('close', onAbort);
      opts.abort?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * End an outgoing migration nobody follows any more: cancelled while QEMU has
   * not begun sending the device state (then the target cannot complete, so this
   * is always safe), else waited for, since the target may have it all by now.
   * Returns QEMU's run state and the migration's outcome.
   */
  async end(timeoutMs = 60_000): Promise<{ runState: string; stats: MigrationStats }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.query();
      if (s.status === 'setup' || s.status === 'active' || s.status === 'pre-switchover') {
        await this.cancel();
        break;
      }
      if ((s.status !== 'device' && s.status !== 'cancelling') || Date.now() > deadline) break;
      await sleep(10);
    }
    const runState = await this.settle();
    return { runState, stats: await this.query() };
  }

  /** Cancel an outgoing migration and wait until QEMU has given up on it. */
  async cancel(timeoutMs = 10_000): Promise<void> {
    try {
      await this.qmp.execute('migrate_cancel');
    } catch (e) {
      if (!(e instanceof QmpError)) throw e;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.query();
      if (s.status !== 'active' && s.status !== 'setup' && s.status !== 'cancelling' && s.status !== 'pre-switchover')
        break;
      if (Date.now() > deadline) break;
      await sleep(5);
    }
    await this.settle();
  }

  /**
   * Make the guest run again after an outgoing migration stopped short (or a
   * checkpoint): only if it was running before and QEMU has it paused now.
   */
  async resumeIfStopped(): Promise<boolean> {
    const s = await this.settle();
    if (s === 'running') return false;
    await this.qmp.execute('cont');
    return true;
  }

  /** QEMU's own time of its next RESUME event (undefined if none comes in time). */
  whenResumed(timeoutMs = 10_000): Promise<number | undefined> {
    return this.qmp.waitEvent('RESUME', timeoutMs).then(eventTime, () => undefined);
  }

  /**
   * Hand QEMU a connected socket for the stream (QMP getfd) and return the URI
   * that names it, for listen() or start(). Xenode's descriptor is closed as
   * soon as QEMU holds its own: from then on the connection is QEMU's alone.
   */
  async adoptSocket(sock: Socket, name: string): Promise<string> {
    try {
      await this.qmp.executeWithFd('getfd', { fdname: name }, socketFd(sock));
    } finally {
      sock.destroy();
    }
    return `fd:${name}`;
  }

  /**
   * Start listening for an incoming stream on `uri` (QEMU started with
   * incomingArgs()). For a `tcp:HOST:0` URI returns the port QEMU picked.
   */
  async listen(uri: string): Promise<number | undefined> {
    const [, r] = await Promise.all([
      this.qmp.execute('migrate-incoming', { uri }),
      this.qmp.execute<RawMigrate>('query-migrate'),
    ]);
    const port = r['socket-address']?.find((a) => a.type === 'inet')?.port;
    return port === undefined ? undefined : Number(port);
  }

  /**
   * Wait until the incoming stream is loaded. A failed load makes QEMU exit, so
   * the QMP connection closing counts as failure, with QEMU's own last words.
   */
  waitIncoming(timeoutMs: number, abort?: AbortSignal): Promise<void> {
    const qmp = this.qmp;
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: Error) => {
        clearTimeout(timer);
        qmp.off('event', onEvent);
        qmp.off('close', onClose);
        abort?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onEvent = (e: QmpEvent) => {
        if (e.event !== 'MIGRATION') return;
        const st = statusOf(typeof e.data?.status === 'string' ? e.data.status : undefined);
        if (st === 'completed') finish();
        else if (st === 'failed') finish(new MigrationError(this.failureText('loading the machine state failed'), st));
      };
      const onClose = () => {
        // QEMU writes its reason to its log as it exits; give it a moment to land.
        setTimeout(
          () => finish(new MigrationError(this.failureText('QEMU exited while loading the state'), 'failed')),
          50,
        );
      };
      const onAbort = () =>
        finish(
          new MigrationError(
            abort?.reason instanceof Error ? abort.reason.message : 'incoming migration aborted',
            'failed',
          ),
        );
      const timer = setTimeout(
        () => finish(new MigrationError(`no complete machine state arrived within ${timeoutMs / 1000} s`, 'failed')),
        timeoutMs,
      );
      qmp.on('event', onEvent);
      qmp.on('close', onClose);
      abort?.addEventListener('abort', onAbort);
      if (abort?.aborted) onAbort();
      if (qmp.isClosed) onClose();
    });
  }

  private failureText(fallback: string): string {
    const last = lastQemuError(this.m.paths);
    return last ? `${fallback}: ${last}` : fallback;
  }
}

/** QEMU's version as `major.minor.micro`, from the QMP greeting. */
export function qemuVersionOf(m: QemuMachine): string | undefined {
  const v = m.qmpClient.version;
  return v ? `${v.major}.${v.minor}.${v.micro}` : undefined;
}
