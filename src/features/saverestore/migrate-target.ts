// Live migration, target side: only the admin may send a domain here. Check
// this host can take it before anything moves, as if it were created here,
// start its QEMU waiting for the stream, let through only the source's
// authenticated stream connection, and run the guest only when the source
// says it has stopped its copy (`go`).

import { Migration } from '../../engine/migration.ts';
import type { QemuMachine } from '../../engine/qemu-machine.ts';
import { type WireError, XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import { clearIntent, type IntentHost, type MigrateInIntent, readIntent, recordStep } from '../../toolstack/intents.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { Principal } from '../../toolstack/principal.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import {
  checkHostFiles,
  checkIdentityFree,
  checkMachineCompat,
  checkMetaMemory,
  parseConfigJson,
  parseMeta,
  pinMachine,
  savedCpuModel,
} from './domain-transfer.ts';
import { INCOMING_SUFFIX, parseMessage, type ToSource, type ToTarget } from './migrate-protocol.ts';
import { StreamGate } from './migrate-stream.ts';
import { adoptState, loadIncoming } from './saverestore.ts';

/** The part of a WebSocket this needs (ws's WebSocket in the daemon). */
export interface MigrationSocket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  on(event: 'message', fn: (data: unknown) => void): unknown;
  on(event: 'close', fn: () => void): unknown;
}

export interface TargetOptions {
  /** Address the source reached us on; the stream is taken there too. */
  bindHost: string;
  /** The control link's remote address: the stream may come from there only (undefined: any, key still needed). */
  peerHost?: string;
  /** This host's QEMU version (`qemu --version` text). */
  qemuVersion?: string;
}

/** How long a guest that got `cont` while loading may take to start once loaded. */
const RESUME_WAIT_MS = 5000;
/** A live migration with a low bandwidth limit may take long; the source's socket bounds it. */
const INCOMING_TIMEOUT_MS = 6 * 3600_000;

function wire(e: unknown): WireError {
  return e instanceof XenodeError
    ? e.toJSON()
    : { kind: 'internal', message: e instanceof Error ? e.message : String(e) };
}

/** QMP name of the stream connection handed to the incoming QEMU. */
const STREAM_FD_NAME = 'migration-in';

/**
 * Who may send this host a domain: the admin, who may name any host path and
 * sponsor. (Hosts of a pool will be let in here too, by their host identity.)
 */
export function mayReceiveMigrations(p: Principal): boolean {
  return p.admin;
}

export const RECEIVE_REFUSAL = 'only the admin of this host may send it domains';

export function receiveMigration(ts: Toolstack, p: Principal, sock: MigrationSocket, o: TargetOptions): void {
  if (!mayReceiveMigrations(p)) {
    // The route refuses these before the upgrade; this is the second lock.
    sock.send(JSON.stringify({ type: 'error', error: new XenodeError('permission', RECEIVE_REFUSAL).toJSON() }));
    sock.close(1008, 'forbidden');
    return;
  }
  const abort = new AbortController();
  /**
   * How the hand-over ends: the source's `go`, or the source gone once its stream
   * was accepted. Then the stream itself decides: a state that loads completely was
   * handed over (the source QEMU completes only then), one that breaks off was not.
   */
  let decide: ((h: Handover) => void) | undefined;
  const decided = new Promise<Handover>((resolve, reject) => {
    decide = resolve;
    abort.signal.addEventListener('abort', () => reject(abort.signal.reason));
  });
  decided.catch(() => undefined);
  let committed = false;
  let prepared = false;
  /** The migration is over here, one way or the other. */
  let over = false;
  /** The incoming QEMU holds the source's authenticated stream connection. */
  let streamAccepted = false;
  /** The incoming domain and its journal entry, once they exist. */
  let incoming: { d: Domain; intent: MigrateInIntent } | undefined;
  const step = (name: string) => {
    if (incoming) incoming.intent = recordStep(incoming.d.rec.runDir, incoming.intent, name);
  };
  const send = (m: ToSource) => {
    try {
      sock.send(JSON.stringify(m));
    } catch {
      /* the source is gone; the abort path cleans up */
    }
  };

  sock.on('message', (data) => {
    const m = parseMessage<ToTarget>(data);
    if (!m) return;
    if (m.type === 'prepare' && !prepared) {
      prepared = true;
      void take(m).then(
        () => {
          over = true;
          sock.close(1000, 'done');
        },
        (e: unknown) => {
          over = true;
          send({ type: 'error', error: wire(e) });
          sock.close(1000, 'failed');
        },
      );
    } else if (m.type === 'go') {
      if (!streamAccepted) {
        abort.abort(new XenodeError('engine', 'the source said go before its state stream was accepted'));
        return;
      }
      committed = true;
      decide?.({ kind: 'go', go: m });
    } else if (m.type === 'abort') {
      // The source keeps the guest: whatever arrived here must not run. Journaled
      // first, so that a restart does not take a state that loaded for a hand-over.
      if (!committed) step('refused');
      abort.abort(new XenodeError('engine', `the source gave up: ${m.reason}`));
    }
  });
  sock.on('close', () => {
    if (committed || over) return;
    if (streamAccepted) {
      ts.log.warn(
        'the source went away after its stream was accepted; the stream decides the hand-over',
        incoming?.d.domid,
      );
      decide?.({ kind: 'orphaned' });
    } else abort.abort(new XenodeError('engine', 'the source went away before the hand-over'));
  });

  /** Listen for the state stream, let the source's authenticated connection through to QEMU. */
  async function takeStream(nd: Domain, mig: Migration): Promise<void> {
    const gate = await StreamGate.open({
      bindHost: o.bindHost,
      peer: o.peerHost,
      onRefused: (why) => ts.log.warn(why, nd.domid),
    });
    const stop = () =>
      gate.close(abort.signal.reason instanceof Error ? abort.signal.reason : new XenodeError('engine', 'aborted'));
    abort.signal.addEventListener('abort', stop);
    try {
      if (abort.signal.aborted) stop();
      send({ type: 'listening', port: gate.port, domid: nd.domid, key: gate.key.toString('hex') });
      const conn = await gate.accepted;
      await mig.listen(await mig.adoptSocket(conn, STREAM_FD_NAME));
      step('accepted');
    } finally {
      abort.signal.removeEventListener('abort', stop);
      gate.close();
    }
  }

  async function take(m: Extract<ToTarget, { type: 'prepare' }>): Promise<void> {
    const where = 'incoming migration';
    const meta = parseMeta(m.meta, where);
    // The sender's config is checked here as any config that arrives as JSON
    // (parseConfigJson), its files must exist on this host (checkHostFiles), and
    // ts.create (through restoreDomain) admits it against quotas and host memory.
    const cfg = pinMachine(parseConfigJson(m.config, where), meta);
    checkMetaMemory(cfg, meta, where);
    // Everything a refusal can be about, before anything moves.
    checkIdentityFree(ts, cfg.name, cfg.uuid);
    checkIdentityFree(ts, `${cfg.name}${INCOMING_SUFFIX}`, undefined);
    checkHostFiles(cfg);
    checkMachineCompat(ts, cfg, meta, o.qemuVersion);
    const note = `migrated from ${meta.sourceHost} (domid ${meta.sourceDomid}) at ${new Date().toISOString()}`;
    // A guest that ran on the source runs here as soon as the create brings it up:
    // its pause lasts from the source's stop to this `cont`, nothing more.
    const run = meta.wasRunning && !m.paused;
    let resumed: Promise<number | undefined> | undefined;
    let confirmed: Promise<void> | undefined;
    // From the moment the guest may run on this host nothing may fail the
    // migration, or the source would resume its copy too: take the name and
    // confirm at once (the plugins' set-up follows, and only logs its failures).
    const confirm = (nd: Domain): void => {
      if (confirmed) return;
      try {
        ts.rename(nd, cfg.name);
      } catch (e) {
        ts.log.warn(
          `migrated in, but kept the name ${nd.name}: ${e instanceof Error ? e.message : String(e)}`,
          nd.domid,
        );
      }
      step('running');
      ts.log.info(`migrated in from ${meta.sourceHost} (its domid ${meta.sourceDomid})`, nd.domid);
      confirmed = (resumed ?? Promise.resolve(undefined)).then((resumedAt) =>
        send({ type: 'running', domid: nd.domid, name: nd.name, paused: nd.rec.state === 'paused', resumedAt }),
      );
    };
    let d: Domain | undefined;
    try {
      d = await ts.restoreDomain(
        { ...cfg, name: `${cfg.name}${INCOMING_SUFFIX}` },
        p,
        async (nd, qm) => {
          d = nd;
          // Before the stream can come: a restarted daemon keeps this domain only
          // if its QEMU has loaded a state (intent-recovery.ts).
          incoming = {
            d: nd,
            intent: recordStep<MigrateInIntent>(
              nd.rec.runDir,
              {
                op: 'migrate-in',
                name: cfg.name,
                source: `${meta.sourceHost} (domid ${meta.sourceDomid})`,
                run,
                targetMiB: meta.targetMiB,
                maxMiB: meta.maxMiB,
              },
              'prepared',
            ),
          };
          // `go` comes once the source QEMU completed, which with its return path is
          // after this QEMU loaded the state; a source without one (or a source gone)
          // may be decided while QEMU still loads: then `cont` goes in at once, and
          // QEMU starts the guest the moment the load completes, as plain QEMU
          // without -S does; a load that fails never starts it.
          const handover = decided.then(async (h) => {
            if (h.kind === 'go') {
              step('go');
              adoptState(ts, nd, meta, h.go.store, Buffer.from(h.go.console, 'base64'), note);
            } else {
              adoptState(ts, nd, meta, undefined, undefined, `${note}; its daemon went away before the hand-over`);
            }
            if (!run) return false;
            resumed = new Migration(qm).whenResumed(RESUME_WAIT_MS);
            await qm.resume();
            return true;
          });
          handover.catch(() => undefined);
          await loadIncoming(
            nd,
            qm,
            async (mig) => {
              await takeStream(nd, mig);
              streamAccepted = true;
              send({ type: 'stream-accepted' });
            },
            INCOMING_TIMEOUT_MS,
            abort.signal,
          );
          // The commit: the whole state is here, and the source QEMU has stopped its
          // copy for good (it completes, with its return path, only now).
          step('loaded');
          if (!(await handover)) return undefined;
          // Running once QEMU says so; if it does not in time, launch sends `cont` itself.
          return { running: (await resumed) !== undefined };
        },
        { paused: !run, cpu: savedCpuModel(meta), onRunning: confirm, machineName: cfg.name },
      );
    } catch (e) {
      // Never ran here, so the source resumes its copy on our error: this one must go.
      if (d && ts.list({ sponsor: 'admin', admin: true }).includes(d) && d.rec.state !== 'running') {
        await ts.destroy(d);
      }
      throw e;
    }
    // Left paused (xl migrate -p, or a guest paused on the source): confirm now.
    confirm(d);
    await confirmed;
    clearIntent(d.rec.runDir, 'migrate-in');
  }
}

type Handover = { kind: 'go'; go: Extract<ToTarget, { type: 'go' }> } | { kind: 'orphaned' };

/** How long a restarted daemon waits for an incoming QEMU still loading a state its source sends. */
const RESTART_LOAD_WAIT_MS = 60_000;

/**
 * At reattach, for a domain still being created: true when it is an incoming
 * migration whose QEMU has loaded the whole state (waiting, within a bound,
 * for a load still under way), so that it is kept and taken over rather than
 * torn down. A state that loaded completely was handed over: the source QEMU
 * completes only once this one has it.
 */
export async function incomingLoaded(d: Domain, m: QemuMachine, log?: DaemonLog): Promise<boolean> {
  const it = readIntent<MigrateInIntent>(d.rec.runDir, 'migrate-in');
  if (!it || it.step === 'refused') return false;
  const mig = new Migration(m);
  const deadline = Date.now() + RESTART_LOAD_WAIT_MS;
  let waiting = false;
  try {
    for (;;) {
      const rs = await mig.rawRunState();
      if (rs !== 'inmigrate' && rs !== 'prelaunch') return true;
      const { status } = await mig.query();
      // Nothing came (no stream was handed to QEMU), or what came broke off.
      if (status === 'none' || status === 'failed' || status === 'cancelled') return false;
      if (Date.now() > deadline) {
        log?.warn(`the incoming state from ${it.source} did not finish loading in time; giving it up`, d.domid);
        return false;
      }
      if (!waiting) log?.info(`the incoming QEMU still loads the state from ${it.source}; waiting for it`, d.domid);
      waiting = true;
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch {
    // QEMU exited: the load failed.
    return false;
  }
}

/**
 * After reattach: an incoming migration the daemon was killed in, whose QEMU
 * has the whole state (reattach kept the domain): the guest is this host's
 * now. It takes its name and runs if it ran on the source.
 */
export async function resolveMigrateIn(host: IntentHost, d: Domain | undefined, it: MigrateInIntent): Promise<string> {
  const what = `incoming migration from ${it.source}`;
  if (!d) return `${what} undone (killed at ${it.step}); nothing of it is left`;
  const m = d.machine;
  if (!m?.alive) {
    clearIntent(d.rec.runDir, 'migrate-in');
    return `${what}: its QEMU is gone`;
  }
  if (d.name !== it.name) {
    try {
      host.rename(d, it.name);
    } catch (e) {
      host.log.warn(`kept the name ${d.name}: ${e instanceof Error ? e.message : String(e)}`, d.domid);
    }
  }
  // Killed before the record had it: reattach found this QEMU by its run directory.
  d.rec.pid = m.pid;
  // What `go` would have brought: the memory target (the store subtree and console tail it carried are lost).
  if (it.maxMiB >= d.rec.config.memory) d.rec.maxMiB = it.maxMiB;
  if (it.targetMiB <= d.rec.maxMiB) d.rec.targetMiB = it.targetMiB;
  host.store.setMemory(d.rec);
  if (it.run) await host.resume(d);
  else if (d.rec.state === 'creating') host.setState(d, (await m.runState()) === 'running' ? 'running' : 'paused');
  host.touch(d);
  clearIntent(d.rec.runDir, 'migrate-in');
  return `${what} had loaded the guest (killed at ${it.step}): taken over here, ${it.run ? 'running' : 'paused'}`;
}
