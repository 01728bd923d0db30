// What travels with a domain when it moves (to a save file or another host):
// its typed config, its store subtree, metadata and the tail of its console
// log; and the checks a host makes before it takes a domain in.

import { accessSync, appendFileSync, closeSync, constants, existsSync, openSync, readSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { configProblem } from '../../config/config-check.ts';
import { parseOverrides } from '../../config/parser.ts';
import type { DomainConfig } from '../../config/types.ts';
import { validateConfig } from '../../config/validate.ts';
import { resolveAccel } from '../../engine/accel.ts';
import { chooseMachine, legacyCpuModel } from '../../engine/machine.ts';
import { qemuVersionOf } from '../../engine/migration.ts';
import { domainRunPaths } from '../../engine/paths.ts';
import { XenodeError } from '../../errors.ts';
import { domainPath, parseSnapshot, type SnapshotNode, type StoreSnapshot, TOOLSTACK } from '../../store/index.ts';
import type { Domain } from '../../toolstack/domain.ts';
import { loadVifs, vifToSpec } from '../../toolstack/net-vifs.ts';
import { ControlStoreSink } from '../../toolstack/store-factory.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';

export const XENODE_FORMAT_WRITER = 'xenode 0.1.0';

/** Who the domain is and where its state came from. */
export interface TransferMeta {
  name: string;
  uuid: string;
  sponsor: string;
  sourceHost: string;
  sourceDomid: number;
  qemuVersion: string;
  machine: string;
  /** QEMU -cpu model; absent in files from before it was recorded (they ran legacyCpuModel). */
  cpu?: string;
  accel: 'kvm' | 'tcg';
  savedAt: string;
  writer: string;
  targetMiB: number;
  maxMiB: number;
  wasRunning: boolean;
}

/** A QEMU -cpu value from a file or a peer: a model name and +/-feature flags, nothing else. */
function cpuField(v: unknown, where: string): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9][\w.-]*(,[+-]?[\w.-]+(=[\w.-]+)?)*$/.test(v)) {
    throw new XenodeError('config', `${where}: metadata field 'cpu' is not a CPU model`);
  }
  return v;
}

export function parseMeta(v: unknown, where: string): TransferMeta {
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof o[k] !== 'string') throw new XenodeError('config', `${where}: metadata field '${k}' is missing`);
    return o[k] as string;
  };
  const num = (k: string) => {
    if (typeof o[k] !== 'number') throw new XenodeError('config', `${where}: metadata field '${k}' is missing`);
    return o[k] as number;
  };
  const accel = str('accel');
  if (accel !== 'kvm' && accel !== 'tcg') throw new XenodeError('config', `${where}: unknown accelerator '${accel}'`);
  return {
    name: str('name'),
    uuid: str('uuid'),
    sponsor: str('sponsor'),
    sourceHost: str('sourceHost'),
    sourceDomid: num('sourceDomid'),
    qemuVersion: str('qemuVersion'),
    machine: str('machine'),
    ...(o.cpu === undefined ? {} : { cpu: cpuField(o.cpu, where) }),
    accel,
    savedAt: str('savedAt'),
    writer: str('writer'),
    targetMiB: num('targetMiB'),
    maxMiB: num('maxMiB'),
    wasRunning: o.wasRunning === true,
  };
}

export function parseConfigJson(v: unknown, where: string): DomainConfig {
  const problem = configProblem(v);
  if (problem) throw new XenodeError('config', `${where}: invalid domain config (${problem})`);
  return v as DomainConfig;
}

/** Domains that share memory with `d` through static_shm: QEMU cannot migrate ivshmem (reference §0.9). */
function refuseStaticShm(ts: Toolstack, d: Domain, what: string): void {
  const shm = d.rec.config.static_shm[0];
  if (!shm) return;
  const peers = ts
    .list({ sponsor: 'admin', admin: true })
    .filter((x) => x !== d && x.rec.config.static_shm.some((s) => s.id === shm.id))
    .map((x) => x.name);
  throw new XenodeError(
    'state',
    `domain ${d.name} uses static_shm '${shm.id}'${peers.length ? ` shared with ${peers.join(', ')}` : ''}; ${what} domains with shared memory is not supported`,
    { hint: 'QEMU cannot move ivshmem regions; shut the sharing domains down and recreate them where needed' },
  );
}

/**
 * The config to recreate `d` elsewhere: as created, with each vif's MAC pinned
 * to the one the guest has (a generated MAC depends on the name, which changes
 * during the move). Refuses what cannot move.
 */
export function transferableConfig(ts: Toolstack, d: Domain, what: 'saving' | 'migrating'): DomainConfig {
  if (d.rec.state !== 'running' && d.rec.state !== 'paused') {
    throw new XenodeError('state', `domain ${d.name} is ${d.rec.state}; only a running or paused domain can be saved`);
  }
  refuseStaticShm(ts, d, what);
  const cfg: DomainConfig = structuredClone(d.rec.config);
  cfg.uuid = d.rec.uuid;
  const vifs = loadVifs(d.rec.runDir);
  if (vifs) {
    const hot = vifs.find((v) => v.hotplugged);
    if (hot) {
      throw new XenodeError('state', `domain ${d.name} has hot-plugged vif ${hot.devid}; ${what} it is not supported`, {
        hint: `detach it first (xenode network-detach ${d.name} ${hot.devid}); hot-plugged devices are not recreated`,
      });
    }
    cfg.vif = [...vifs].sort((a, b) => a.devid - b.devid).map(vifToSpec);
  }
  return cfg;
}

export function transferMeta(d: Domain): TransferMeta {
  const m = d.machine;
  return {
    name: d.name,
    uuid: d.rec.uuid,
    sponsor: d.rec.sponsor,
    sourceHost: hostname(),
    sourceDomid: d.domid,
    qemuVersion: (m && qemuVersionOf(m)) ?? 'unknown',
    machine: d.rec.boot?.machine ?? chooseMachine(d.rec.config),
    cpu: d.rec.boot?.cpu ?? legacyCpuModel(d.rec.boot?.accel ?? 'tcg'),
    accel: d.rec.boot?.accel ?? 'tcg',
    savedAt: new Date().toISOString(),
    writer: XENODE_FORMAT_WRITER,
    targetMiB: d.rec.targetMiB,
    maxMiB: d.rec.maxMiB,
    wasRunning: d.rec.state === 'running',
  };
}

// ---- store subtree ------------------------------------------------------------

/** Keys that describe one domain instance on one host; the new home writes its own. */
const VOLATILE = new Set(['domid', 'name', 'vm', 'state', 'shutdown-reason']);

function controlStore(ts: Toolstack) {
  return ts.store instanceof ControlStoreSink ? ts.store.store : undefined;
}

/** The domain's home in the store, minus volatile keys; undefined without a control store. */
export function exportDomainStore(ts: Toolstack, domid: number): StoreSnapshot | undefined {
  const cs = controlStore(ts);
  const home = domainPath(domid);
  if (!cs || cs.tryRead(TOOLSTACK, home) === undefined) return undefined;
  const snap = cs.exportSubtree(home);
  const keep = (n: SnapshotNode) => !VOLATILE.has(n.path.split('/')[0] ?? '');
  return { ...snap, nodes: snap.nodes.filter((n) => n.path === '' || keep(n)) };
}

/**
 * Put a saved home under the new domid: what the new home already has (written
 * for this instance by the toolstack and plugins) wins; everything else comes
 * from the saved tree, with the old domid in permissions mapped to the new one.
 */
export function importDomainStore(ts: Toolstack, d: Domain, saved: unknown, oldDomid: number): void {
  const cs = controlStore(ts);
  if (!cs || saved === undefined || saved === null) return;
  const snap = parseSnapshot(saved);
  const home = domainPath(d.domid);
  if (cs.tryRead(TOOLSTACK, home) === undefined) return;
  const fresh = cs.exportSubtree(home);
  const have = new Set(fresh.nodes.map((n) => n.path));
  const mapId = (id: number) => (id === oldDomid ? d.domid : id);
  const extra = snap.nodes
    .filter((n) => !have.has(n.path) && !VOLATILE.has(n.path.split('/')[0] ?? ''))
    .map((n) => ({ ...n, perms: n.perms.map((p) => ({ id: mapId(p.id), perm: p.perm })) }));
  cs.importSubtree(home, { ...fresh, nodes: [...fresh.nodes, ...extra] });
}

// ---- console --------------------------------------------------------------------

const CONSOLE_TAIL = 64 * 1024;

export function consoleTail(d: Domain, max = CONSOLE_TAIL): Buffer {
  const path = domainRunPaths(d.rec.runDir).consoleLog;
  try {
    const size = statSync(path).size;
    const len = Math.min(size, max);
    const buf = Buffer.alloc(len);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    return buf;
  } catch {
    return Buffer.alloc(0);
  }
}

/** Continue the console log where the old instance left it, with a note, and fill the scroll-back. */
export function continueConsole(d: Domain, tail: Buffer | undefined, note: string): void {
  const path = domainRunPaths(d.rec.runDir).consoleLog;
  appendFileSync(path, Buffer.concat([tail ?? Buffer.alloc(0), Buffer.from(`\r\n[xenode: ${note}]\r\n`)]));
  d.console.preloadFromLog(path);
}

// ---- checks before a host takes a domain ----------------------------------------

/** Disks are not copied: every image must already be here. Kernel and initrd too. */
export function checkHostFiles(cfg: DomainConfig): void {
  for (const disk of cfg.disk) {
    if (disk.target === '') continue;
    const mode = disk.access === 'rw' && disk.devtype === 'disk' ? constants.R_OK | constants.W_OK : constants.R_OK;
    try {
      accessSync(disk.target, mode);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new XenodeError(
        'not-found',
        `${disk.devtype} ${disk.vdev}: ${code === 'ENOENT' ? `image '${disk.target}' does not exist on this host` : `cannot open '${disk.target}' (${code})`}`,
        { hint: 'disks are not copied with the domain: make the image available at the same path, or override disk=' },
      );
    }
  }
  for (const [what, p] of [
    ['kernel', cfg.kernel],
    ['ramdisk', cfg.ramdisk],
    ['device model', cfg.device_model_override],
  ] as const) {
    if (p !== undefined && !existsSync(p)) {
      throw new XenodeError('not-found', `${what} '${p}' does not exist on this host`, {
        hint: 'the domain needs the same files where it is restored',
      });
    }
  }
}

function versionTuple(v: string): number[] | undefined {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** The CPU model a moved domain must keep: its guest saw that CPUID. */
export function savedCpuModel(meta: TransferMeta): string {
  return meta.cpu ?? legacyCpuModel(meta.accel);
}

/**
 * machine="auto" resolves to whatever this Xenode's default is, which may have
 * changed since the domain started (pc became q35); its state only loads into the
 * machine it was saved from, so a moved domain keeps that one.
 */
export function pinMachine(cfg: DomainConfig, meta: TransferMeta): DomainConfig {
  if (cfg.machine !== 'auto') return cfg;
  const m = meta.machine;
  return m === 'pc' || m === 'q35' || m === 'microvm' ? { ...cfg, machine: m } : cfg;
}

/** The machine state only loads into the same accelerator and machine type, and an equal or newer QEMU. */
export function checkMachineCompat(ts: Toolstack, cfg: DomainConfig, meta: TransferMeta, hostQemu?: string): void {
  const accel = resolveAccel(cfg.accel, ts.hostAccel).accel;
  if (accel !== meta.accel) {
    throw new XenodeError('state', `the domain ran under ${meta.accel.toUpperCase()}; this host would use ${accel}`, {
      hint: 'QEMU cannot move machine state between KVM and TCG',
    });
  }
  const machine = chooseMachine(cfg);
  if (machine !== meta.machine) {
    throw new XenodeError('state', `the domain is a '${meta.machine}' machine; its config here gives '${machine}'`);
  }
  const src = versionTuple(meta.qemuVersion);
  const dst = hostQemu ? versionTuple(hostQemu) : undefined;
  if (src && dst) {
    const cmp = dst[0] - src[0] || dst[1] - src[1];
    if (cmp < 0) {
      throw new XenodeError(
        'state',
        `the domain ran on QEMU ${meta.qemuVersion}; this host has the older QEMU ${dst.join('.')}`,
        { hint: 'QEMU loads state from the same or an older version only' },
      );
    }
  }
}

/**
 * The memory the sender says the domain had must fit the config it sent: the
 * host admits the config's maxmem (ts.create), so a larger maximum in the
 * metadata would slip past that.
 */
export function checkMetaMemory(cfg: DomainConfig, meta: TransferMeta, where: string): void {
  if (meta.maxMiB > cfg.maxmem || meta.targetMiB > meta.maxMiB || meta.targetMiB <= 0) {
    throw new XenodeError(
      'config',
      `${where}: memory target ${meta.targetMiB} MiB / maximum ${meta.maxMiB} MiB do not fit the config's maxmem ${cfg.maxmem} MiB`,
    );
  }
}

/** A name (and uuid) must be free before anything starts. */
export function checkIdentityFree(ts: Toolstack, name: string, uuid: string | undefined): void {
  const all = ts.list({ sponsor: 'admin', admin: true });
  if (all.some((x) => x.name === name)) {
    throw new XenodeError('conflict', `domain with name '${name}' already exists`, {
      hint: 'destroy it first, or pass name=NEW',
    });
  }
  if (uuid && all.some((x) => x.rec.uuid === uuid)) {
    throw new XenodeError('conflict', `domain with uuid ${uuid} already exists`, { hint: 'pass uuid=NEW' });
  }
}

// ---- restore overrides ----------------------------------------------------------

/** Keys that may change on restore; the rest describe the machine the state was saved from. */
const OVERRIDABLE: ReadonlyMap<string, ReadonlyArray<keyof DomainConfig>> = new Map([
  ['name', ['name']],
  ['uuid', ['uuid']],
  ['on_poweroff', ['on_poweroff']],
  ['on_reboot', ['on_reboot']],
  ['on_crash', ['on_crash']],
  ['on_watchdog', ['on_watchdog']],
  ['on_memory_noncompliance', ['on_memory_noncompliance']],
  ['cpus', ['cpus', 'cpus_per_vcpu']],
  ['cpu_weight', ['cpu_weight']],
  ['cap', ['cap']],
  ['disk', ['disk']],
  ['vif', ['vif']],
]);

/** Apply `key=value` overrides (xl syntax) to a saved config. */
export function applyOverrides(cfg: DomainConfig, overrides: readonly string[], cwd?: string): DomainConfig {
  if (overrides.length === 0) return cfg;
  const keys = [...parseOverrides(overrides).keys()];
  for (const key of keys) {
    if (!OVERRIDABLE.has(key)) {
      throw new XenodeError('usage', `'${key}' cannot be changed on restore`, {
        hint: `the saved machine state fixes it; changeable: ${[...OVERRIDABLE.keys()].join(', ')}`,
      });
    }
  }
  // The validator needs a name; the saved one comes first so an override wins.
  const raw = parseOverrides([`name=${JSON.stringify(cfg.name)}`, ...overrides]);
  const typed = validateConfig(raw, { file: '<restore>', baseDir: cwd ?? process.cwd(), cwd, checkFiles: false });
  const out: DomainConfig = { ...cfg };
  for (const key of keys) {
    for (const field of OVERRIDABLE.get(key) ?? []) {
      (out as unknown as Record<string, unknown>)[field] = typed[field];
    }
  }
  if (keys.includes('disk')) {
    const before = cfg.disk.map((x) => `${x.vdev}/${x.devtype}`).join(',');
    const after = out.disk.map((x) => `${x.vdev}/${x.devtype}`).join(',');
    if (before !== after) {
      throw new XenodeError(
        'usage',
        `disk= must keep the saved devices (${before || 'none'}); only their images may change`,
      );
    }
  }
  if (keys.includes('vif') && out.vif.length !== cfg.vif.length) {
    throw new XenodeError('usage', `vif= must keep the saved ${cfg.vif.length} network device(s)`);
  }
  return out;
}
