// Live migration, target side: check this host can take the domain before
// anything moves, start its QEMU waiting for the stream, and run the guest
// only when the source says it has stopped its copy (`go`).

import { Migration, tcpUri } from '../engine/migration.ts';
import { type WireError, XenodeError } from '../errors.ts';
import type { Domain } from './domain.ts';
import {
  availableMiB,
  checkHostFiles,
  checkIdentityFree,
  checkMachineCompat,
  parseConfigJson,
  parseMeta,
  pinMachine,
  savedCpuModel,
} from './domain-transfer.ts';
import { INCOMING_SUFFIX, parseMessage, type ToSource, type ToTarget } from './migrate-protocol.ts';
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
  /** Address the source reached us on; QEMU listens there for the stream. */
  bindHost: string;
  /** This host's QEMU version (`qemu --version` text). */
  qemuVersion?: string;
}

/** QEMU and its translation cache need room beyond guest RAM. */
const QEMU_OVERHEAD_MIB = 64;
/** How long a guest that got `cont` while loading may take to start once loaded. */
const RESUME_WAIT_MS = 5000;
/** A live migration with a low bandwidth limit may take long; the source's socket bounds it. */
const INCOMING_TIMEOUT_MS = 6 * 3600_000;

function wire(e: unknown): WireError {
  return e instanceof XenodeError
    ? e.toJSON()
    : { kind: 'internal', message: e instanceof Error ? e.message : String(e) };
}

export function receiveMigration(ts: Toolstack, p: Principal, sock: MigrationSocket, o: TargetOptions): void {
  const abort = new AbortController();
  let go: ((m: Extract<ToTarget, { type: 'go' }>) => void) | undefined;
  const goMsg = new Promise<Extract<ToTarget, { type: 'go' }>>((resolve, reject) => {
    go = resolve;
    abort.signal.addEventListener('abort', () => reject(abort.signal.reason));
  });
  goMsg.catch(() => undefined);
  let committed = false;
  let prepared = false;
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
      committed = true;
      go?.(m);
    } else if (m.type === 'abort') {
      abort.abort(new XenodeError('engine', `the source gave up: ${m.reason}`));
    }
  });
  sock.on('close', () => {
    if (!committed) abort.abort(new XenodeError('engine', 'the source went away before the hand-over'));
  });

  async function take(m: Extract<ToTarget, { type: 'prepare' }>): Promise<void> {
    const where = 'incoming migration';
    const meta = parseMeta(m.meta, where);
    const cfg = pinMachine(parseConfigJson(m.config, where), meta);
    if (!p.admin && cfg.sponsor !== p.sponsor) {
      throw new XenodeError('permission', `this token may not take in domains of sponsor '${cfg.sponsor}'`);
    }
    // Everything a refusal can be about, before anything moves.
    checkIdentityFree(ts, cfg.name, cfg.uuid);
    checkIdentityFree(ts, `${cfg.name}${INCOMING_SUFFIX}`, undefined);
    checkHostFiles(cfg);
    checkMachineCompat(ts, cfg, meta, o.qemuVersion);
    const avail = availableMiB();
    if (avail !== undefined && avail < cfg.memory + QEMU_OVERHEAD_MIB) {
      throw new XenodeError('quota', `not enough memory: ${avail} MiB available, the domain needs ${cfg.memory} MiB`);
    }
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
              const port = await mig.listen(tcpUri(o.bindHost, 0));
              if (port === undefined) throw new XenodeError('engine', 'QEMU did not report its incoming port');
              send({ type: 'listening', port, domid: nd.domid });
            },
            INCOMING_TIMEOUT_MS,
            abort.signal,
          );
          if (!(await handover)) return undefined;
          // Running once QEMU says so; if it does not in time, launch sends `cont` itself.
          return { running: (await resumed) !== undefined };
        },
        { paused: !run, cpu: savedCpuModel(meta), onRunning: confirm },
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
