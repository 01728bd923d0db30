// `save` and `restore`: a domain's machine state, config, store subtree and
// console tail into one checksummed file (save-format.ts), and back into a new
// domain. QEMU moves the machine state; everything around it is ours.

import { closeSync, existsSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import {
  appendToFileUri,
  FIRST_PASSED_FD,
  inheritedFdUri,
  Migration,
  MigrationError,
  type MigrationTuning,
} from '../../engine/migration.ts';
import type { QemuMachine } from '../../engine/qemu-machine.ts';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import { clearIntent, crashPoint, type IntentHost, recordStep, type SaveIntent } from '../../toolstack/intents.ts';
import type { Principal } from '../../toolstack/principal.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import {
  applyOverrides,
  checkHostFiles,
  checkIdentityFree,
  checkMachineCompat,
  consoleTail,
  continueConsole,
  exportDomainStore,
  importDomainStore,
  parseConfigJson,
  parseMeta,
  pinMachine,
  savedCpuModel,
  type TransferMeta,
  transferableConfig,
  transferMeta,
} from './domain-transfer.ts';
import {
  FLAG_OPTIONAL,
  jsonSection,
  openStreamAt,
  readSaveFileHeader,
  SaveFileWriter,
  SECTION,
  verifyStream,
} from './save-format.ts';

/** What long operations report while they run (CLI progress lines). */
export interface OpProgress {
  phase: 'save' | 'verify' | 'restore' | 'migrate';
  bytes: number;
  totalBytes?: number;
  /** Live migration: guest memory dirtied per second. */
  dirtyBytesPerSec?: number;
  expectedDowntimeMs?: number;
  mbps?: number;
  passes?: number;
}

export type ProgressFn = (p: OpProgress) => void;

export interface SaveRequest {
  file: string;
  /** xl -c: keep the domain (running if it was) after saving. */
  checkpoint?: boolean;
  /** xl -p: keep the domain, paused. */
  leavePaused?: boolean;
  /** Templates: guest RAM stays in its shared file; the stream holds the device state only. */
  ramInFile?: boolean;
}

export interface SaveResult {
  file: string;
  bytes: number;
  streamBytes: number;
  ms: number;
  /** Of `ms`, the final fsync of the file (a save that destroys the domain), or trailer and rename. */
  flushMs: number;
  domain: 'destroyed' | 'running' | 'paused';
  /** The save file format version written, "major.minor". */
  format: string;
}

export interface RestoreRequest {
  file: string;
  paused?: boolean;
  overrides?: string[];
  /** Directory relative paths in overrides are resolved against (the CLI's). */
  cwd?: string;
  /** Templates: guest RAM in this file, shared, so that a save with ramInFile leaves it there. */
  ramFile?: string;
  /** Templates: the builder never runs, so its vifs get fresh MACs (the source's are in use). */
  freshMacs?: boolean;
}

export interface RestoreResult {
  domid: number;
  name: string;
  ms: number;
  /** Checking the stream's checksum, which runs while QEMU starts. */
  verifyMs: number;
  /** Of `verifyMs`, the part QEMU waited for (the rest overlapped its start-up). */
  verifyWaitMs: number;
  format: string;
  meta: TransferMeta;
}

/** Domains with a save or migration under way: one at a time per domain. */
const busy = new WeakSet<Domain>();

export async function exclusive<T>(d: Domain, fn: () => Promise<T>): Promise<T> {
  if (busy.has(d)) throw new XenodeError('state', `domain ${d.name} is already being saved or migrated`);
  busy.add(d);
  try {
    return await fn();
  } finally {
    busy.delete(d);
  }
}

function machineOf(d: Domain): QemuMachine {
  if (!d.machine?.alive) throw new XenodeError('state', `domain ${d.name} has no running machine`);
  return d.machine;
}

function engineError(e: unknown, what: string): unknown {
  if (e instanceof XenodeError) return e;
  return new XenodeError('engine', `${what}: ${e instanceof Error ? e.message : String(e)}`);
}

/**
 * Freezes the guest's file systems through its agent (a plugin's quiesceGuest);
 * the returned thaw undoes every freeze and never throws.
 */
export async function quiesceGuest(ts: Toolstack, d: Domain): Promise<() => Promise<void>> {
  const thaws: Array<() => Promise<void>> = [];
  for (const p of ts.plugins) {
    const t = await p.quiesceGuest?.(d).catch(() => undefined);
    if (t) thaws.push(t);
  }
  return async () => {
    for (const t of thaws.reverse()) await t().catch(() => undefined);
  };
}

/** xl save: consistent (the guest is stopped first), then destroy unless -c/-p. */
export function saveDomain(ts: Toolstack, d: Domain, req: SaveRequest, progress?: ProgressFn): Promise<SaveResult> {
  return exclusive(d, async () => {
    const t0 = Date.now();
    const cfg = transferableConfig(ts, d, 'saving');
    const m = machineOf(d);
    const meta = transferMeta(d);
    const wasRunning = d.rec.state === 'running';
    // Only a save that destroys the domain leaves the file as its sole copy: that one
    // waits for the disk (xl waits for none); with -c and -p the domain lives on.
    const destroying = !req.checkpoint && !req.leavePaused;
    const runDir = d.rec.runDir;
    // Journaled before anything exists: a restarted daemon removes what this save made
    // and resumes the guest, or, once the file is whole under its name, finishes it.
    const partial = `${req.file}.partial`;
    let intent = recordStep<SaveIntent>(
      runDir,
      {
        op: 'save',
        file: req.file,
        partial,
        status: `${partial}.status`,
        ino: 0,
        aside: `${req.file}.replaced-${process.pid}`,
        destroying,
        leavePaused: req.leavePaused === true,
        wasRunning,
      },
      'begin',
    );
    let w: SaveFileWriter;
    try {
      w = new SaveFileWriter(req.file, { durable: destroying });
    } catch (e) {
      clearIntent(runDir, 'save');
      throw e;
    }
    let stopped = false;
    // The guest's file systems frozen (by its agent, if it runs one) before it stops:
    // the snapshot holds them clean. A domain saved away comes back frozen, and is
    // thawed by the agent's plugin after the restore; otherwise thawed here.
    let thaw: (() => Promise<void>) | undefined;
    try {
      intent = recordStep(runDir, { ...intent, ino: statSync(w.partial).ino }, 'paused');
      if (wasRunning) {
        thaw = await quiesceGuest(ts, d);
        await ts.pause(d);
        stopped = true;
      }
      w.addJson(SECTION.config, cfg);
      w.addJson(SECTION.meta, meta);
      const store = exportDomainStore(ts, d.domid);
      if (store) w.addJson(SECTION.store, store, FLAG_OPTIONAL);
      w.addSection(SECTION.console, consoleTail(d), FLAG_OPTIONAL);
      w.beginStream();
      const mig = new Migration(m);
      await mig.configure({ ignoreShared: req.ramInFile === true });
      // QEMU appends the stream to the file itself; we hash it just behind.
      const status = intent.status;
      rmSync(status, { force: true });
      const stop = new AbortController();
      try {
        intent = recordStep(runDir, intent, 'streaming');
        await mig.start(appendToFileUri(w.partial, status));
        // Complete once the shell has written cat's status and its newline.
        let code: string | undefined;
        const catDone = () => {
          try {
            const t = readFileSync(status, 'utf8');
            if (t.endsWith('\n')) code = t.trim();
          } catch {
            /* not yet */
          }
          return code !== undefined;
        };
        const hashed = w.followAppended(catDone, stop.signal, (n) => progress?.({ phase: 'save', bytes: n }));
        hashed.catch(() => undefined);
        try {
          await mig.follow();
        } catch (e) {
          stop.abort(e);
          throw e;
        }
        // QEMU is done; the pipe drains in moments. A writer that never reports is an error, not a hang.
        const late = setTimeout(
          () => stop.abort(new XenodeError('engine', `writing ${req.file} did not finish`)),
          60_000,
        );
        await hashed.finally(() => clearTimeout(late));
        if (code !== '0') throw new XenodeError('engine', `writing ${req.file} failed (cat exited with ${code})`);
      } finally {
        rmSync(status, { force: true });
      }
      progress?.({ phase: 'save', bytes: w.streamBytes });
      const tStream = Date.now();
      intent = recordStep(runDir, intent, 'finishing');
      const bytes = await w.finish();
      const flushMs = Date.now() - tStream;
      // The commit: the file is whole under its name. From here the save is done, whatever happens.
      intent = recordStep(runDir, intent, 'written');
      ts.log.info(
        `saved to ${req.file} (${(bytes / 1048576).toFixed(1)} MiB) in ${Date.now() - t0} ms, ${destroying ? 'flush to disk' : 'finish'} ${flushMs} ms`,
        d.domid,
      );
      let domain: SaveResult['domain'];
      if (destroying) {
        // Gone from the list at once; its QEMU, store entries and run directory (with
        // this journal entry) go right after the answer, as a migrated-away domain's.
        ts.retire(d);
        domain = 'destroyed';
      } else {
        await mig.settle();
        if (stopped && !req.leavePaused) await ts.unpause(d);
        // A guest left paused (-p) stays frozen until it runs: its agent cannot answer before.
        if (d.rec.state === 'running') await thaw?.();
        domain = d.rec.state === 'running' ? 'running' : 'paused';
        clearIntent(runDir, 'save');
      }
      return {
        file: req.file,
        bytes,
        streamBytes: w.streamBytes,
        ms: Date.now() - t0,
        flushMs,
        domain,
        format: w.format,
      };
    } catch (e) {
      // Asked before abort() frees the space a full disk's partial file holds.
      const cause = w.explainFailure(e) ?? e;
      await w.abort();
      // xl: "Failed to save domain, resuming domain".
      if (stopped && d.machine?.alive) {
        await new Migration(d.machine).settle().catch(() => undefined);
        await ts.unpause(d).catch(() => undefined);
      }
      if (d.machine?.alive && d.rec.state === 'running') await thaw?.();
      clearIntent(runDir, 'save');
      ts.log.warn(`save to ${req.file} failed: ${cause instanceof Error ? cause.message : String(cause)}`, d.domid);
      throw engineError(cause, 'save failed');
    }
  });
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/**
 * A save the daemon was killed in. Committed once its file is whole under its
 * name (the partial file renamed): then it is finished (the domain destroyed,
 * or left running or paused as asked); before that it is undone: the partial
 * file goes, a file it was replacing comes back, and the guest runs again.
 */
export async function resolveSave(host: IntentHost, d: Domain | undefined, it: SaveIntent): Promise<string> {
  // QEMU may still be writing the file: stop it before the files are judged.
  if (d?.machine?.alive) await new Migration(d.machine).end().catch(() => undefined);
  const committed = it.ino !== 0 && inodeOf(it.file) === it.ino;
  rmSync(it.partial, { force: true });
  rmSync(it.status, { force: true });
  if (existsSync(it.aside)) {
    if (committed || existsSync(it.file)) rmSync(it.aside, { force: true });
    else renameSync(it.aside, it.file);
  }
  const what = `save to ${it.file}`;
  if (!d) return `${what}: the domain is gone; ${committed ? 'the file is complete' : 'its partial file removed'}`;
  if (committed && it.destroying) {
    await host.destroy(d);
    return `${what} had completed: destroyed the domain`;
  }
  const run = committed ? it.wasRunning && !it.leavePaused : it.wasRunning;
  if (run) await host.resume(d);
  clearIntent(d.rec.runDir, 'save');
  return committed
    ? `${what} had completed; domain ${run ? 'running' : 'left paused'}`
    : `${what} undone (killed at ${it.step}); ${run ? 'the guest runs again' : 'domain left as it was'}`;
}

/**
 * Load a migration stream into a QEMU started with `-incoming defer`. A
 * broken stream makes QEMU exit: that is this operation's error, not a
 * guest crash, so the toolstack is told to expect it meanwhile.
 */
export async function loadIncoming(
  d: Domain,
  m: QemuMachine,
  run: (mig: Migration) => Promise<void>,
  timeoutMs: number,
  abort?: AbortSignal,
  tuning: MigrationTuning = {},
): Promise<void> {
  const mig = new Migration(m);
  // Aborted before the wait below listens for it: it would never hear of it.
  if (abort?.aborted) throw abort.reason;
  d.expectingExit = true;
  try {
    // Sent ahead of run()'s commands (QMP keeps their order): events are on before the load starts.
    const tuned = mig.configure(tuning);
    const loaded = mig.waitIncoming(timeoutMs, abort);
    loaded.catch(() => undefined);
    const fed = run(mig);
    fed.catch(() => undefined);
    // Without events no completion would ever be seen: fail at once.
    await tuned;
    const [a, b] = await Promise.allSettled([loaded, fed]);
    // QEMU's own reason beats a broken pipe on our side.
    if (a.status === 'rejected') throw a.reason;
    if (b.status === 'rejected') throw b.reason;
  } catch (e) {
    if (e instanceof MigrationError) throw new XenodeError('engine', e.message);
    throw e;
  } finally {
    d.expectingExit = false;
  }
}

/** xl restore: everything in the file is checked before QEMU loads any of it. */
export async function restoreFromFile(
  ts: Toolstack,
  p: Principal,
  req: RestoreRequest,
  progress?: ProgressFn,
): Promise<RestoreResult> {
  const t0 = Date.now();
  // A domain just saved may still be leaving (its QEMU holds its disks' locks).
  await ts.finishRetiring();
  const f = readSaveFileHeader(req.file);
  const where = `save file '${req.file}'`;
  const meta = parseMeta(jsonSection(f, SECTION.meta), where);
  let cfg = parseConfigJson(jsonSection(f, SECTION.config), where);
  const store = f.sections.has(SECTION.store) ? jsonSection(f, SECTION.store) : undefined;
  const tail = f.sections.get(SECTION.console);
  cfg = pinMachine(applyOverrides(cfg, req.overrides ?? [], req.cwd), meta);
  if (req.freshMacs) cfg = { ...cfg, vif: cfg.vif.map(({ mac: _mac, ...v }) => v) };
  checkHostFiles(cfg);
  checkMachineCompat(ts, cfg, meta);
  // A checkpoint restored next to its still-running original: give the copy its own uuid.
  if (cfg.uuid && ts.list({ sponsor: 'admin', admin: true }).some((x) => x.rec.uuid === cfg.uuid)) {
    if (!(req.overrides ?? []).some((o) => /^\s*uuid\s*=/.test(o))) cfg = { ...cfg, uuid: undefined };
  }
  checkIdentityFree(ts, cfg.name, cfg.uuid);
  // QEMU reads the state through this descriptor, the one the checksum is computed
  // through: whatever happens to the path meanwhile, it loads what was checked.
  const streamFd = openStreamAt(req.file, f.stream.offset);
  // The stream's checksum runs while the domain is set up and its QEMU starts
  // (both take about as long); QEMU gets the stream only once every byte of it
  // passed, so a damaged file ends as a failed create: no domain, no QEMU left.
  const tVerify = Date.now();
  let verifyMs = 0;
  const verified = verifyStream(req.file, streamFd, f.stream, f.trailer, (n) =>
    progress?.({ phase: 'verify', bytes: n, totalBytes: f.stream.length }),
  ).then(() => {
    verifyMs = Date.now() - tVerify;
  });
  verified.catch(() => undefined);
  let waitedMs = 0;
  const format = `${f.version.major}.${f.version.minor}`;
  let d: Domain;
  try {
    d = await ts.restoreDomain(
      cfg,
      p,
      async (d, m) => {
        const tWait = Date.now();
        await verified;
        waitedMs = Date.now() - tWait;
        await loadIncoming(
          d,
          m,
          async (mig) => {
            await mig.listen(inheritedFdUri(FIRST_PASSED_FD));
            crashPoint('restore.loading');
            progress?.({ phase: 'restore', bytes: 0, totalBytes: f.stream.length });
            // The store and console while QEMU loads. (No early `cont` as a migration
            // target sends: the state of a save was taken stopped, and QEMU keeps a
            // guest that was stopped paused whatever `cont` said during the load.)
            adoptState(
              ts,
              d,
              meta,
              store,
              tail,
              `restored from ${req.file}, saved on ${meta.sourceHost} at ${meta.savedAt}`,
            );
          },
          300_000,
        );
        return undefined;
      },
      {
        paused: req.paused === true,
        cpu: savedCpuModel(meta),
        passFds: [streamFd],
        ...(req.ramFile ? { ram: { path: req.ramFile, shared: true } } : {}),
      },
    );
  } catch (e) {
    // A damaged file is the news, whatever else failed meanwhile.
    await verified;
    throw e;
  } finally {
    // QEMU has its own copy; the checksum is done with it once `verified` settled.
    await verified.catch(() => undefined);
    closeSync(streamFd);
  }
  ts.log.info(
    `restored ${d.name} from ${req.file} (saved on ${meta.sourceHost} at ${meta.savedAt}) in ${Date.now() - t0} ms, checksum ${verifyMs} ms (${waitedMs} ms of it after QEMU was up)`,
    d.domid,
  );
  return { domid: d.domid, name: d.name, ms: Date.now() - t0, verifyMs, verifyWaitMs: waitedMs, format, meta };
}

/** After the machine state is in: the store subtree, the console history and the memory target. */
export function adoptState(
  ts: Toolstack,
  d: Domain,
  meta: TransferMeta,
  store: unknown,
  tail: Buffer | undefined,
  note: string,
): void {
  try {
    importDomainStore(ts, d, store, meta.sourceDomid);
  } catch (e) {
    ts.log.warn(`store subtree not restored: ${e instanceof Error ? e.message : String(e)}`, d.domid);
  }
  continueConsole(d, tail, note);
  // The memory plugin drives balloon and virtio-mem back to the saved target after this.
  if (meta.maxMiB >= d.rec.config.memory) d.rec.maxMiB = meta.maxMiB;
  if (meta.targetMiB <= d.rec.maxMiB) d.rec.targetMiB = meta.targetMiB;
  ts.store.setMemory(d.rec);
  ts.touch(d);
}
