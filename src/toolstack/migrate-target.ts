// Live migration, target side: only the admin may send a domain here. Check
// this host can take it before anything moves, as if it were created here,
// start its QEMU waiting for the stream, let through only the source's
// authenticated stream connection, and run the guest only when the source
// says it has stopped its copy (`go`).

import { Migration } from '../engine/migration.ts';
import { type WireError, XenodeError } from '../errors.ts';
import type { Domain } from './domain.ts';
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
import type { Principal } from './principal.ts';
import { adoptState, loadIncoming } from './saverestore.ts';
import type { Toolstack } from './toolstack.ts';

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
  let go: ((m: Extract<ToTarget, { type: 'go' }>) => void) | undefined;
  const goMsg = new Promise<Extract<ToTarget, { type: 'go' }>>((resolve, reject) => {
    go = resolve;
    abort.signal.addEventListener('abort', () => reject(abort.signal.reason));
  });
  goMsg.catch(() => undefined);
  let committed = false;
  let prepared = false;
  /** The incoming QEMU holds the source's authenticated stream connection. */
  let streamAccepted = false;
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
        () => sock.close(1000, 'done'),
        (e: unknown) => {
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
      go?.(m);
    } else if (m.type === 'abort') {
      abort.abort(new XenodeError('engine', `the source gave up: ${m.reason}`));
    }
  });
  sock.on('close', () => {
    if (!committed) abort.abort(new XenodeError('engine', 'the source went away before the hand-over'));
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
          // `go` usually arrives while QEMU still loads the last of the state: take
          // the store and console then, and, for a guest that ran, send `cont`
          // already. QEMU's answer to a `cont` during a load is to start the guest
          // the moment the load completes, as plain QEMU without -S does; a load
          // that fails never starts it. The source's copy is stopped for good by
          // `go`, so the guest never runs twice.
          const handover = goMsg.then(async (g) => {
            adoptState(ts, nd, meta, g.store, Buffer.from(g.console, 'base64'), note);
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
  }
}
