// Templates: a booted guest saved once, which later creates of the same guest
// start from instead of booting (docs/templates.md).
//
// Making one (the source domain keeps running; a config is booted first):
//   1. save the source (-c) to a file, as `xenode save` does;
//   2. restore that, paused, into a builder domain whose RAM is a file of the
//      template's (memory-backend-file, share=on);
//   3. save the builder with x-ignore-shared: the stream holds the device state
//      only, the RAM stays in the file; the builder is gone.
// Starting a clone: QEMU maps a sealed copy of that RAM privately (copy-on-write,
// template-ram.ts) and loads the device state (a few hundred KiB) from the
// save file; the guest runs on, and its agent takes the new domain's identity
// (guest/agent.ts: hostname, MACs, an RNG reseed), and QEMU's vmgenid changes.

import { randomBytes } from 'node:crypto';
import { closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { DomainConfig } from '../../config/types.ts';
import { FIRST_PASSED_FD, inheritedFdUri } from '../../engine/migration.ts';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { StartPoint } from '../../toolstack/lifecycle-hooks.ts';
import type { Principal } from '../../toolstack/principal.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { continueConsole, parseMeta, savedCpuModel } from './domain-transfer.ts';
import { jsonSection, openStreamAt, readSaveFileHeader, SECTION, verifyStream } from './save-format.ts';
import { loadIncoming, type ProgressFn, restoreFromFile, saveDomain } from './saverestore.ts';
import { templateFingerprint } from './template-fingerprint.ts';
import { sealedCopy } from './template-ram.ts';
import {
  buildDir,
  checkTemplateName,
  commitTemplate,
  fileSize,
  listTemplates,
  type TemplateMeta,
  templateFiles,
  templatesPerSponsor,
} from './template-store.ts';

const ADMIN: Principal = { sponsor: 'admin', admin: true };

/** The guest's ready line (the default guest), or a login prompt (a distribution's image). */
const READY_RE = /XENODE-READY uptime=|login: /;

export interface TemplateCreateRequest {
  name: string;
  /** A running domain of the caller's to make it from; or */
  domain?: string;
  /** a checked config to boot for it (not started from a template). */
  config?: DomainConfig;
}

/** Builds under way, per sponsor/name: one at a time. */
const building = new Set<string>();

/** Why a domain cannot become a template (throws), checked before anything is made. */
function checkSource(d: Domain): void {
  const cfg = d.rec.config;
  const why = (s: string, hint?: string) =>
    new XenodeError('state', `domain ${d.name} cannot become a template: ${s}`, hint ? { hint } : undefined);
  if (d.rec.state !== 'running' && d.rec.state !== 'paused') throw why(`it is ${d.rec.state}`);
  if (d.rec.boot?.machine === 'microvm') throw why('a microvm machine has no VM generation ID device');
  if (cfg.maxmem > cfg.memory) {
    throw why(`its hot-plug memory (maxmem ${cfg.maxmem} > memory ${cfg.memory}) is not kept`, 'set maxmem = memory');
  }
  const rw = cfg.disk.find((x) => x.devtype === 'disk' && x.access === 'rw');
  if (rw) throw why(`its disk ${rw.vdev} is writable: every clone would write the same image`, 'use read-only disks');
  const vu = cfg.disk.find((x) => x.backendtype === 'xenode');
  if (vu) throw why(`disk ${vu.vdev} uses a vhost-user backend, which needs shared guest memory`);
}

/** Wait until the guest printed its ready line (or a login prompt), from its console. */
function waitReady(d: Domain, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    const detach = d.console.attach({
      send(b) {
        text = (text + b.toString('latin1')).slice(-4096);
        if (READY_RE.test(text)) done();
      },
    });
    const timer = setTimeout(
      () => done(new XenodeError('state', `${d.name} printed no ready line within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    const gone = () => done(new XenodeError('state', `${d.name} went away while booting`));
    d.once('gone', gone);
    function done(e?: Error) {
      clearTimeout(timer);
      detach();
      d.off('gone', gone);
      if (e) reject(e);
      else resolve();
    }
  });
}

/** Until the guest's agent has registered (it knows its domain then), bounded; false if it never does. */
async function waitAgent(ts: Toolstack, d: Domain, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (ts.guestInfo(d)?.agent) return true;
    if (!d.machine?.alive) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

export async function createTemplate(
  ts: Toolstack,
  p: Principal,
  req: TemplateCreateRequest,
  progress?: ProgressFn,
): Promise<TemplateMeta & { agent: boolean; ms: number }> {
  const t0 = Date.now();
  const name = checkTemplateName(req.name);
  if ((req.domain === undefined) === (req.config === undefined)) {
    throw new XenodeError('usage', 'a template is made from a domain or from a config, one of the two');
  }
  let source = req.domain !== undefined ? ts.find(req.domain, p) : undefined;
  const sponsor = source ? source.rec.sponsor : !p.admin ? p.sponsor : (req.config?.sponsor ?? 'admin');
  const files = templateFiles(ts.dirs.base, sponsor, name);
  const owner = { sponsor, admin: false };
  const others = listTemplates(ts.dirs.base, owner).filter((x) => x.name !== name);
  if (others.length >= templatesPerSponsor()) {
    throw new XenodeError('quota', `sponsor ${sponsor} has ${others.length} templates, the most it may keep`, {
      hint: 'delete one first (xenode template delete NAME)',
    });
  }
  const key = `${sponsor}/${name}`;
  if (building.has(key)) throw new XenodeError('conflict', `template ${name} is being made already`);
  building.add(key);
  const build = buildDir(ts.dirs.base, sponsor);
  let temp: Domain | undefined;
  let builder: Domain | undefined;
  try {
    if (source) checkSource(source);
    else {
      const cfg = req.config as DomainConfig;
      const tmpName = `tmpl-${randomBytes(4).toString('hex')}`;
      temp = await ts.create({ ...cfg, name: tmpName, uuid: undefined }, p);
      checkSource(temp);
      await waitReady(temp, 180_000);
      source = temp;
    }
    // The agent records which domain it is in once it registered: a template taken before
    // that would give clones no new identity.
    const agent = await waitAgent(ts, source, 30_000);
    const fingerprint = await templateFingerprint(ts, source.rec.config);
    const config = structuredClone(source.rec.config);
    // 1. The source's state, with its RAM, into a file (the source keeps running unless it is ours).
    const full = join(build, 'full.xsave');
    await saveDomain(ts, source, { file: full, checkpoint: temp === undefined }, progress);
    if (temp) temp = undefined; // saved away: gone
    // 2. Into a builder whose RAM is the template's file.
    const r = await restoreFromFile(ts, p, {
      file: full,
      paused: true,
      overrides: [`name=tmpl-build-${randomBytes(4).toString('hex')}`],
      ramFile: join(build, 'ram'),
      freshMacs: true,
    });
    builder = ts.find(String(r.domid), ADMIN);
    rmSync(full, { force: true });
    // 3. The device state alone; the builder goes with the save.
    await saveDomain(ts, builder, { file: join(build, 'state.xsave'), ramInFile: true });
    builder = undefined;
    const meta: TemplateMeta = {
      name,
      sponsor,
      fingerprint,
      config,
      source: req.domain !== undefined ? `domain ${req.domain}` : 'config',
      createdAt: new Date().toISOString(),
      memoryMiB: config.memory,
      ramBytes: fileSize(join(build, 'ram')),
      stateBytes: fileSize(join(build, 'state.xsave')),
    };
    forgetRam(files.ram);
    commitTemplate(build, files, meta);
    ts.log.info(`template ${key} made from ${meta.source} in ${Date.now() - t0} ms`);
    return { ...meta, agent, ms: Date.now() - t0 };
  } catch (e) {
    for (const d of [builder, temp]) if (d) await ts.destroy(d).catch(() => undefined);
    rmSync(build, { recursive: true, force: true });
    throw e;
  } finally {
    building.delete(key);
  }
}

// ---- starting from a template ----------------------------------------------------

/** Sealed RAM copies, one per template RAM file (by its identity on disk), kept while the daemon runs. */
const sealed = new Map<string, { id: string; fd: number }>();

function ramIdentity(t: TemplateMeta): string {
  return `${t.createdAt}:${t.ramBytes}`;
}

function sealedRam(path: string, t: TemplateMeta): number {
  const id = ramIdentity(t);
  const have = sealed.get(path);
  if (have?.id === id) return have.fd;
  if (have) closeSync(have.fd);
  sealed.delete(path);
  const fd = sealedCopy(path, t.name);
  sealed.set(path, { id, fd });
  return fd;
}

/** Drop the daemon's copy of a template's RAM (deleted or replaced); clones keep theirs. */
export function forgetRam(path: string): void {
  const have = sealed.get(path);
  if (!have) return;
  sealed.delete(path);
  try {
    closeSync(have.fd);
  } catch {
    /* closed */
  }
}

/** The newest template of the config's sponsor made from the same inputs, as a start point. */
export async function templateStart(ts: Toolstack, cfg: DomainConfig, p: Principal): Promise<StartPoint | undefined> {
  const sponsor = !p.admin && cfg.sponsor === 'admin' ? p.sponsor : cfg.sponsor;
  const mine = listTemplates(ts.dirs.base, { sponsor, admin: false });
  if (mine.length === 0) return undefined;
  const fp = await templateFingerprint(ts, cfg);
  const t = mine.filter((x) => x.fingerprint === fp).sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
  if (!t) return undefined;
  const f = readSaveFileHeader(t.files.state);
  const meta = parseMeta(jsonSection(f, SECTION.meta), `template ${t.name}`);
  const ramFd = sealedRam(t.files.ram, t);
  const streamFd = openStreamAt(t.files.state, f.stream.offset);
  try {
    // A few hundred KiB: checked before QEMU starts.
    await verifyStream(t.files.state, streamFd, f.stream, f.trailer);
  } catch (e) {
    closeSync(streamFd);
    throw e;
  }
  const label = `template ${t.name}`;
  return {
    label: t.name,
    // QEMU's fd 3 is the sealed RAM, fd 4 the state stream.
    ram: { path: `/proc/self/fd/${FIRST_PASSED_FD}`, shared: false },
    passFds: [ramFd, streamFd],
    cpu: savedCpuModel(meta),
    async incoming(d, m) {
      await loadIncoming(
        d,
        m,
        async (mig) => {
          await mig.listen(inheritedFdUri(FIRST_PASSED_FD + 1));
          continueConsole(d, undefined, `started from ${label}, made ${t.createdAt}`);
        },
        60_000,
        undefined,
        { ignoreShared: true },
      );
      return undefined;
    },
    release() {
      try {
        closeSync(streamFd);
      } catch {
        /* closed */
      }
    },
  };
}
