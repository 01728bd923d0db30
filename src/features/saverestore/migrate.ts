// Live migration, source side: ask the target xenoded to take the domain,
// open the state stream with the key the target gave (migrate-stream.ts), let
// QEMU pre-copy over it straight into the target's QEMU, then hand over. Until
// the target confirms, the source copy stays intact and runs again on any failure.

import WebSocket from 'ws';
import { Migration, type MigrationStats } from '../../engine/migration.ts';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import {
  clearIntent,
  type IntentHost,
  type MigrateOutIntent,
  type MigrationPrint,
  recordStep,
} from '../../toolstack/intents.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { consoleTail, exportDomainStore, transferableConfig, transferMeta } from './domain-transfer.ts';
import { MIGRATE_PATH, MIGRATED_SUFFIX, parseMessage, type ToSource, type ToTarget } from './migrate-protocol.ts';
import { openStream, STREAM_KEY_BYTES } from './migrate-stream.ts';
import { exclusive, type ProgressFn, quiesceGuest } from './saverestore.ts';

export interface MigrateRequest {
  host: string;
  port: number;
  /** The target's API token: an admin token there (only its admin may send it domains). */
  token?: string;
  downtimeMs?: number;
  /** Megabits per second; undefined = no limit. */
  bandwidthMbps?: number;
  /** xl -p: leave the domain paused on the target. */
  paused?: boolean;
}

export interface MigrateResult {
  name: string;
  target: string;
  targetDomid: number;
  /** Whole operation, as the user waited for it. */
  ms: number;
  /** QEMU's: from the start of pre-copy to the end of stop-and-copy. */
  migrationMs: number;
  /** QEMU's stop-and-copy time on the source. */
  qemuDowntimeMs: number;
  /** Guest-visible: source QEMU's STOP to target QEMU's RESUME (QMP event times; across hosts, clock skew applies). */
  downtimeMs?: number;
  /** From QEMU's completion to the target confirming the guest runs (Xenode's hand-over). */
  switchoverMs: number;
  transferredBytes: number;
}

/** QMP name of the stream connection handed to the source QEMU. */
const STREAM_FD_NAME = 'migration-out';

/** A WebSocket to the target as a queue of messages. */
class TargetLink {
  private queue: ToSource[] = [];
  private waiter?: () => void;
  closed = false;
  closeReason = '';
  readonly lost = new AbortController();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const m = parseMessage<ToSource>(data);
      if (!m) return;
      this.queue.push(m);
      if (m.type === 'error') this.lost.abort(XenodeError.fromWire(m.error));
      this.waiter?.();
    });
    ws.on('close', () => {
      this.closed = true;
      this.lost.abort(new XenodeError('engine', `lost the connection to the target${this.closeReason}`));
      this.waiter?.();
    });
    ws.on('error', (e) => {
      this.closeReason = ` (${e.message})`;
    });
  }

  static open(req: MigrateRequest): Promise<TargetLink> {
    const host = req.host.includes(':') ? `[${req.host}]` : req.host;
    const where = `${req.host}:${req.port}`;
    const headers: Record<string, string> = {};
    if (req.token) headers.authorization = `Bearer ${req.token}`;
    const ws = new WebSocket(`ws://${host}:${req.port}${MIGRATE_PATH}`, { headers, handshakeTimeout: 10_000 });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new TargetLink(ws)));
      ws.once('unexpected-response', (_req, res) => {
        ws.terminate();
        const status = res.statusCode ?? 0;
        reject(
          status === 401
            ? new XenodeError('unauthorized', `xenoded at ${where} refused the token`, {
                hint: "pass the target's token with --token or XENODE_MIGRATE_TOKEN (xenode token create admin --admin on the target)",
              })
            : status === 403
              ? new XenodeError('permission', `xenoded at ${where} takes in domains only from its admin`, {
                  hint: 'pass an admin token of the target (xenode token create NAME --admin there)',
                })
              : status === 404
                ? new XenodeError('engine', `xenoded at ${where} does not accept migrations (HTTP 404)`)
                : new XenodeError('engine', `xenoded at ${where} answered HTTP ${status}`),
        );
      });
      ws.once('error', (e) =>
        reject(
          new XenodeError('engine', `cannot reach xenoded at ${where}: ${e.message}`, {
            hint: "give the target daemon's TCP API address (its XENODE_LISTEN)",
          }),
        ),
      );
    });
  }

  send(m: ToTarget): void {
    if (!this.closed) this.ws.send(JSON.stringify(m));
  }

  async next(timeoutMs: number): Promise<ToSource> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.closed) throw new XenodeError('engine', `lost the connection to the target${this.closeReason}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new XenodeError('engine', 'the target did not answer in time');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiter = undefined;
    }
  }

  close(): void {
    this.ws.close();
  }
}

function refusal(m: ToSource, where: string): XenodeError {
  if (m.type === 'error') {
    const e = XenodeError.fromWire(m.error);
    return new XenodeError(e.kind, `target ${where}: ${e.message}`, { hint: e.hint, exitCode: e.exitCode });
  }
  return new XenodeError('engine', `target ${where} answered '${m.type}' out of turn`);
}

export function migrateDomain(
  ts: Toolstack,
  d: Domain,
  req: MigrateRequest,
  progress?: ProgressFn,
): Promise<MigrateResult> {
  return exclusive(d, async () => {
    const t0 = Date.now();
    const where = `${req.host}:${req.port}`;
    // Connect while the local checks run; a local refusal closes the link unused.
    const linking = TargetLink.open(req);
    linking.catch(() => undefined);
    const local = () => {
      const cfg = transferableConfig(ts, d, 'migrating');
      const m = d.machine;
      if (!m?.alive) throw new XenodeError('state', `domain ${d.name} has no running machine`);
      return { cfg, m, meta: transferMeta(d) };
    };
    let checked: ReturnType<typeof local>;
    try {
      checked = local();
    } catch (e) {
      void linking.then(
        (l) => l.close(),
        () => undefined,
      );
      throw e;
    }
    const { cfg, m, meta } = checked;
    const name = d.name;
    const runDir = d.rec.runDir;
    const mig = new Migration(m);
    // Tune the source while the link opens and the target prepares (these only
    // apply to the next migration: harmless if the target refuses). The return
    // path makes QEMU complete only once the target's QEMU has loaded every byte:
    // that completion is the commit point both daemons judge by. The pause before
    // the switch-over keeps a cancel safe until the device state goes out.
    const tuned = mig.configure({
      maxBandwidthBytes: req.bandwidthMbps ? (req.bandwidthMbps * 1e6) / 8 : undefined,
      downtimeLimitMs: req.downtimeMs,
      returnPath: true,
      pauseBeforeSwitchover: true,
    });
    tuned.catch(() => undefined);
    const link = await linking;
    // Before the target hears of it: a restarted daemon finds the migration and settles it.
    let intent = recordStep<MigrateOutIntent>(
      runDir,
      { op: 'migrate-out', name, target: where, wasRunning: meta.wasRunning },
      'begin',
    );
    let started = false;
    let thaw: (() => Promise<void>) | undefined;
    try {
      link.send({ type: 'prepare', config: cfg, meta, paused: req.paused === true });
      // The target may first build the default guest image; allow for that.
      const ready = await link.next(600_000);
      if (ready.type !== 'listening') throw refusal(ready, where);
      const key = Buffer.from(typeof ready.key === 'string' ? ready.key : '', 'hex');
      if (key.length !== STREAM_KEY_BYTES) throw new XenodeError('engine', `target ${where} gave no stream key`);
      ts.log.info(`migrating to ${where} (target domid ${ready.domid})`, d.domid);
      // The stream: our key first; QEMU gets the connection once the target's QEMU holds it.
      const stream = await openStream(req.host, ready.port, key);
      const dropped = new Promise<never>((_, reject) =>
        stream.once('close', () =>
          reject(
            new XenodeError('engine', `target ${where} dropped the migration stream connection`, {
              hint: 'the stream must come from the address the source reaches the target API from (no proxy or NAT in between)',
            }),
          ),
        ),
      );
      dropped.catch(() => undefined);
      const running = d.rec.state === 'running';
      let uri: string;
      try {
        const accepted = await Promise.race([link.next(30_000), dropped]);
        if (accepted.type !== 'stream-accepted') throw refusal(accepted, where);
        await tuned;
        // A paused QEMU may still show a completed migration of an earlier save: a
        // restarted daemon must not take that one for this one.
        const prior = running ? undefined : migrationPrint(await mig.query());
        intent = recordStep(runDir, { ...intent, prior }, 'streaming');
        started = true;
        uri = await mig.adoptSocket(stream, STREAM_FD_NAME);
      } finally {
        stream.destroy();
      }
      // The guest's file systems frozen through its agent for the whole copy, as for a
      // save: the target gets them clean and thaws them once it runs the guest (the
      // agent's plugin, after an incoming migration); undone here if the guest stays.
      // Not with -p: a guest left paused on the target has nobody to thaw it later.
      if (running && !req.paused) thaw = await quiesceGuest(ts, d);
      await mig.start(uri, { running });
      // Hand over the moment QEMU reports completed: the target has every byte then;
      // the source's own finalizing (and its final statistics) overlaps the target's start.
      await mig.follow({
        finalize: false,
        // Lost before the switch-over: cancelled, the guest stays here. After it QEMU's outcome decides.
        abort: link.lost.signal,
        onPreSwitchover: () => {
          intent = recordStep(runDir, intent, 'switchover');
        },
        onProgress: (s) =>
          progress?.({
            phase: 'migrate',
            bytes: s.transferredBytes,
            totalBytes: s.totalBytes,
            dirtyBytesPerSec: s.dirtyBytesPerSec,
            expectedDowntimeMs: s.expectedDowntimeMs,
            mbps: s.mbps,
            passes: s.passes,
          }),
      });
      const tDone = Date.now();
      // Committed: the source QEMU is stopped for good and the target's holds the guest.
      intent = recordStep(runDir, intent, 'completed');
      link.send({ type: 'go', store: exportDomainStore(ts, d.domid), console: consoleTail(d).toString('base64') });
      const finalStats = mig.settle().then(() => mig.query());
      finalStats.catch(() => undefined);
      // xl's rename dance, off the guest's downtime: the target is already starting it.
      ts.rename(d, `${name}${MIGRATED_SUFFIX}`);
      let answer: ToSource | undefined;
      let why = '';
      try {
        answer = await link.next(120_000);
      } catch (e) {
        why = e instanceof Error ? e.message : String(e);
      }
      if (answer?.type !== 'running') {
        // Whatever the target's daemon says now, or not: its QEMU has the guest, and
        // that daemon (or the next one it starts as) runs it. Never two copies.
        const said = answer
          ? `the target answered ${answer.type === 'error' ? answer.error.message : `'${answer.type}'`}`
          : why;
        ts.log.error(
          `migration to ${where}: no confirmation after the hand-over (${said}); the guest is the target's`,
          d.domid,
        );
        ts.retire(d);
        throw new XenodeError(
          'engine',
          `migration to ${where}: the target's QEMU loaded the guest, but its daemon did not confirm (${said})`,
          {
            hint: `the guest belongs to ${where} now (its daemon runs it, after its restart if it stopped); nothing is left here`,
          },
        );
      }
      intent = recordStep(runDir, intent, 'confirmed');
      const switchoverMs = Date.now() - tDone;
      link.close();
      // Only statistics: a QEMU that cannot say any more does not undo the migration.
      // (Normally settled long before: QEMU finalized while the target started the guest.)
      const stats: MigrationStats | undefined = await finalStats.catch(() => undefined);
      // Gone from this host's list at once; its stopped QEMU (and this journal entry) go right after the answer.
      ts.retire(d);
      ts.log.info(`migrated to ${where} as domid ${answer.domid}`, d.domid);
      return {
        name,
        target: where,
        targetDomid: answer.domid,
        ms: Date.now() - t0,
        migrationMs: stats?.totalMs ?? 0,
        qemuDowntimeMs: stats?.downtimeMs ?? 0,
        downtimeMs:
          answer.resumedAt !== undefined && mig.stoppedAt !== undefined
            ? Math.round(answer.resumedAt - mig.stoppedAt)
            : undefined,
        switchoverMs,
        transferredBytes: stats?.transferredBytes ?? 0,
      };
    } catch (e) {
      if (intent.step === 'completed' || intent.step === 'confirmed') {
        // Past the commit nothing brings the guest back here.
        ts.retire(d);
        throw e;
      }
      // Not committed: stop QEMU sending. If it completed all the same (the cancel came
      // too late), the target's QEMU has the guest and it is the target's.
      let handedOver = false;
      if (started && d.machine?.alive) {
        try {
          const after = await mig.end();
          handedOver = after.stats.status === 'completed' && after.runState === 'postmigrate';
          if (!handedOver && meta.wasRunning) await mig.resumeIfStopped();
        } catch (re) {
          ts.log.error(`could not resume after a failed migration: ${(re as Error).message}`, d.domid);
        }
      }
      const why = e instanceof Error ? e.message : String(e);
      if (handedOver) {
        link.close();
        ts.log.error(`migration to ${where}: ${why}, but QEMU had handed the guest over; it is the target's`, d.domid);
        ts.retire(d);
        throw new XenodeError('engine', `migration to ${where}: ${why}; the guest had been handed over all the same`, {
          hint: `the guest belongs to ${where} now (its daemon runs it, after its restart if it stopped); nothing is left here`,
        });
      }
      // The target did not take it: the source is authoritative, make it whole again.
      if (d.machine?.alive && d.rec.state === 'running') await thaw?.();
      if (!link.closed) link.send({ type: 'abort', reason: why });
      link.close();
      if (d.name !== name) ts.rename(d, name);
      clearIntent(runDir, 'migrate-out');
      ts.log.warn(`migration to ${where} failed: ${why}`, d.domid);
      throw e instanceof XenodeError ? e : new XenodeError('engine', `migration failed: ${(e as Error).message}`);
    }
  });
}

function migrationPrint(s: MigrationStats): MigrationPrint {
  return { status: s.status, totalMs: s.totalMs, transferredBytes: s.transferredBytes };
}

/**
 * A migration to another host the daemon was killed in. Committed once the
 * source QEMU completed it (it does only after the target's QEMU loaded every
 * byte): the copy here goes. Otherwise a migration QEMU still runs is
 * cancelled, and the guest runs here again under its own name.
 */
export async function resolveMigrateOut(
  host: IntentHost,
  d: Domain | undefined,
  it: MigrateOutIntent,
): Promise<string> {
  const what = `migration to ${it.target}`;
  if (!d) return `${what}: the domain is gone`;
  let committed = false;
  if (d.machine?.alive) {
    // Cancelled if no device state went out yet; else QEMU's outcome is waited for.
    const { runState, stats } = await new Migration(d.machine).end();
    const older =
      it.prior !== undefined &&
      stats.status === it.prior.status &&
      stats.totalMs === it.prior.totalMs &&
      stats.transferredBytes === it.prior.transferredBytes;
    committed = it.step !== 'begin' && stats.status === 'completed' && runState === 'postmigrate' && !older;
  }
  if (committed) {
    await host.destroy(d);
    return `${what} had completed (killed at ${it.step}; the target's QEMU has the guest): removed the copy here`;
  }
  if (d.name !== it.name) {
    try {
      host.rename(d, it.name);
    } catch (e) {
      host.log.warn(`kept the name ${d.name}: ${e instanceof Error ? e.message : String(e)}`, d.domid);
    }
  }
  if (it.wasRunning) await host.resume(d);
  clearIntent(d.rec.runDir, 'migrate-out');
  return `${what} undone (killed at ${it.step}); the guest ${it.wasRunning ? 'runs here again' : 'stays here'}`;
}
