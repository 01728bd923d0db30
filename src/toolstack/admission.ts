// Admission of a new domain (create, restore, incoming migration): what a
// sponsor may ask for, and what the host can back. Runs synchronously before
// the domain enters the table, so two racing creates cannot both slip under a
// limit. The admin is never limited by quotas, but the host's memory binds all.

import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { DomainConfig, VifSpec } from '../config/types.ts';
import type { FileCheck } from '../config/validate.ts';
import { XenodeError } from '../errors.ts';
import type { FileUse, SponsorFileGate } from './lifecycle-hooks.ts';
import type { Principal } from './principal.ts';
import { checkLimit, type SponsorLimits, type SponsorPolicy } from './sponsors.ts';

/** QEMU, its translation cache and the daemon's share, beyond guest RAM (MiB). */
export const QEMU_OVERHEAD_MIB = 64;
/** Kept for the host itself (dom0 in Xen's terms) whatever domains ask for. */
const HOST_RESERVE_MIB = 1024;

/** A domain that already holds resources, as admission counts it. */
export interface Holder {
  sponsor: string;
  /** static_shm regions the domain owns, MiB: host memory like its RAM. */
  shmMiB: number;
  /** Boot memory or current target, MiB: what the host backs now. */
  targetMiB: number;
  maxMiB: number;
  maxvcpus: number;
}

export interface HostMemory {
  totalMiB: number;
  availableMiB: number;
}

export function hostMemory(): HostMemory {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const kib = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { totalMiB: Math.floor(kib('MemTotal') / 1024), availableMiB: Math.floor(kib('MemAvailable') / 1024) };
}

export interface AdmissionInput {
  cfg: DomainConfig;
  principal: Principal;
  holders: readonly Holder[];
  sponsors?: SponsorPolicy;
  fileGates: readonly SponsorFileGate[];
  host?: HostMemory;
}

function refuse(message: string, hint?: string): never {
  throw new XenodeError('permission', message, { hint });
}

/** A sponsor's host file, through the storage pools' gate; without one, none at all. */
export function sponsorFile(gates: readonly SponsorFileGate[], sponsor: string, path: string, use: FileUse): string {
  const gate = gates[0];
  if (!gate)
    refuse(`${use.kind} '${path}' is not a volume of yours`, 'sponsors may use only volumes of their storage pools');
  return gate.sponsorFile(sponsor, path, use);
}

/** xl's default bridge name, which means Xenode's own switch to a sponsor. */
const DEFAULT_BRIDGE = 'xenbr0';

/**
 * A sponsor's vif as it may be used: no host interface names, and a Linux
 * bridge only where the admin opened it (`bridges=`); `bridge=xenbr0`, found in
 * most xl configs, means Xenode's switch. Errors never say whether a bridge exists.
 */
export function sponsorVif(v: VifSpec, limits: SponsorLimits): VifSpec {
  if (v.vifname !== undefined)
    refuse('vifname= names a host network interface: only the admin may set it', 'leave it out');
  // The host port carries every VLAN tagged: an unopened id could be the host's own network.
  if (v.vlan !== undefined && !(limits.vlans ?? []).includes(v.vlan))
    refuse(`vlan ${v.vlan} is not open to you`, `ask the admin to allow it (xenode quota-set SPONSOR vlans=${v.vlan})`);
  if (v.bridge === undefined || (limits.bridges ?? []).includes(v.bridge)) return v;
  if (v.bridge === DEFAULT_BRIDGE) {
    const { bridge: _, ...rest } = v;
    return rest;
  }
  return refuse(
    `bridge '${v.bridge}' is not open to you`,
    "leave bridge= out to use Xenode's switch, or ask the admin to allow it (xenode quota-set SPONSOR bridges=NAME)",
  );
}

/**
 * The parser's check of a sponsor's host files (xl.cfg text from a sponsor), so
 * refusals point at the config line; admission checks them again in any case.
 */
export function sponsorFileCheck(sponsor: string, gates: readonly SponsorFileGate[]): FileCheck {
  return (kind, path, write, format = 'raw') => {
    if (kind === 'device_model_override') refuse(DM_REFUSAL, 'leave it out');
    sponsorFile(gates, sponsor, path, kind === 'disk' ? { kind, write, format } : { kind, write });
  };
}

const DM_REFUSAL = 'device_model_override names a host binary: only the admin may set it';

/** What only the admin may put in a config: host binaries, bridges, host interface names. */
function sponsorKeys(cfg: DomainConfig, limits: SponsorLimits): DomainConfig {
  if (cfg.device_model_override !== undefined) refuse(DM_REFUSAL, 'leave it out');
  return { ...cfg, vif: cfg.vif.map((v) => sponsorVif(v, limits)) };
}

/**
 * The config as it will run (a sponsor's file paths in canonical form), or a
 * refusal naming the limit. Sponsors: their own name, volumes only, no host
 * binaries or bridges. A sponsor's domain, whoever asks: within the sponsor's
 * quotas. Everyone: memory the host can back.
 */
export function admit(a: AdmissionInput): DomainConfig {
  let cfg = a.cfg;
  const p = a.principal;
  if (!p.admin) {
    if (p.sponsor === 'admin') refuse("the sponsor name 'admin' is reserved for the host's admin");
    if (cfg.sponsor !== p.sponsor) refuse(`cannot create a domain for sponsor '${cfg.sponsor}'`);
    const limits = a.sponsors?.limits(p.sponsor) ?? {};
    cfg = sponsorKeys(cfg, limits);
    const nrCpus = cpus().length;
    if (cfg.maxvcpus > nrCpus)
      throw new XenodeError('quota', `${cfg.maxvcpus} vCPUs are more than this host's ${nrCpus} CPUs`, {
        hint: `use vcpus (and maxvcpus) of at most ${nrCpus}`,
      });
    const kernel = cfg.kernel && sponsorFile(a.fileGates, p.sponsor, cfg.kernel, { kind: 'kernel', write: false });
    const ramdisk = cfg.ramdisk && sponsorFile(a.fileGates, p.sponsor, cfg.ramdisk, { kind: 'ramdisk', write: false });
    const disk = cfg.disk.map((d) =>
      d.target === ''
        ? d
        : {
            ...d,
            target: sponsorFile(a.fileGates, p.sponsor, d.target, {
              kind: 'disk',
              write: d.access === 'rw' && d.devtype === 'disk',
              format: d.format,
            }),
          },
    );
    cfg = { ...cfg, disk };
    if (kernel) cfg.kernel = kernel;
    if (ramdisk) cfg.ramdisk = ramdisk;
  }
  // A sponsor's quota binds what it holds, whoever creates or restores the domain for it.
  if (cfg.sponsor !== 'admin' && a.sponsors) checkQuotas(cfg, a.holders, a.sponsors.limits(cfg.sponsor));
  checkHostMemory(cfg, a.holders, a.host ?? hostMemory());
  return cfg;
}

function checkQuotas(cfg: DomainConfig, holders: readonly Holder[], limits: SponsorLimits): void {
  const mine = holders.filter((h) => h.sponsor === cfg.sponsor);
  const sum = (f: (h: Holder) => number) => mine.reduce((n, h) => n + f(h), 0);
  checkLimit(cfg.sponsor, limits, 'domains', mine.length, 1);
  checkLimit(
    cfg.sponsor,
    limits,
    'memoryMiB',
    sum((h) => h.maxMiB + h.shmMiB),
    cfg.maxmem + shmMiB(cfg),
  );
  checkLimit(
    cfg.sponsor,
    limits,
    'vcpus',
    sum((h) => h.maxvcpus),
    cfg.maxvcpus,
  );
}

/** The static_shm regions a config owns, in MiB (borrowers map memory someone else backs). */
export function shmMiB(cfg: DomainConfig): number {
  const bytes = cfg.static_shm.filter((r) => r.role === 'owner').reduce((n, r) => n + r.size, 0);
  return Math.ceil(bytes / 1048576);
}

/** The host refuses a domain whose memory it cannot back. */
export function checkHostMemory(cfg: DomainConfig, holders: readonly Holder[], host: HostMemory): void {
  checkHostRoom(cfg.name, cfg.memory + shmMiB(cfg), holders, host, false);
}

/**
 * `wantMiB` more for domain `name` (a new domain's RAM and regions, or what a
 * mem-set adds) must fit in what the host has and in what it has not promised.
 */
export function checkHostRoom(
  name: string,
  wantMiB: number,
  holders: readonly Holder[],
  host: HostMemory,
  grow: boolean,
): void {
  const need = wantMiB + QEMU_OVERHEAD_MIB;
  const committed = holders.reduce((n, h) => n + h.targetMiB + h.shmMiB + QEMU_OVERHEAD_MIB, 0);
  const capacity = host.totalMiB - HOST_RESERVE_MIB;
  if (committed + need > capacity || need > host.availableMiB) {
    const free = Math.max(0, Math.min(capacity - committed, host.availableMiB) - QEMU_OVERHEAD_MIB);
    throw new XenodeError('quota', `this host cannot back ${wantMiB} MiB ${grow ? 'more ' : ''}for domain ${name}`, {
      hint: `about ${free} MiB can be given now; ask for less memory`,
    });
  }
}
