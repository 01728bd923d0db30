// The rules every DomainConfig obeys, whatever its origin: xl.cfg text (checked
// with locations by validate.ts first), API JSON, save files and migration
// streams. The schema gives shapes; this gives values: the same enums, names,
// addresses and cross-key rules the xl.cfg path enforces, so no JSON config can
// carry what a config file could not (a NIC "model" with QEMU options in it, a
// relative path, a vdev twice).

import { isIP } from 'node:net';
import { isAbsolute, normalize } from 'node:path';
import { parseCpuList } from './cpulist.ts';
import { vdevNumber } from './disk.ts';
import { throttleProblem } from './disk-throttle.ts';
import { CACHE_POLICIES } from './shm.ts';
import type { DomainConfig } from './types.ts';
import { NIC_MODELS, parseMac, parseVifRate } from './vif.ts';

/** The key table's bound on memory and maxmem. */
const MAX_MEMORY_MIB = 1 << 20;
const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;
/** Linux's x86 COMMAND_LINE_SIZE. */
const MAX_CMDLINE = 2048;
/** Far beyond a real host path; QEMU and the kernel refuse longer ones anyway. */
const MAX_PATH = 4096;

function pathProblem(what: string, p: string): string | undefined {
  if (p.length > MAX_PATH) return `${what}: path is too long`;
  if (p.includes('\0')) return `${what}: path contains a NUL byte`;
  if (!isAbsolute(p)) return `${what}: path '${p}' must be absolute`;
  if (normalize(p) !== p) return `${what}: path '${p}' is not in normal form (no '.', '..' or '//')`;
  return undefined;
}

function ipProblem(value: string): boolean {
  return value.split(' ').some((a) => {
    const m = /^([^/]+)(?:\/([0-9]{1,3}))?$/.exec(a);
    const family = m ? isIP(m[1] as string) : 0;
    return !m || family === 0 || (m[2] !== undefined && Number(m[2]) > (family === 4 ? 32 : 128));
  });
}

function attempt(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** The first rule `cfg` breaks, as "where: what", or undefined. */
export function configRuleProblem(cfg: DomainConfig): string | undefined {
  if (cfg.maxmem > MAX_MEMORY_MIB) return `/maxmem: more than ${MAX_MEMORY_MIB} MiB`;
  if (cfg.maxmem < cfg.memory) return `/maxmem: ${cfg.maxmem} MiB is less than memory (${cfg.memory} MiB)`;
  if (cfg.maxvcpus < cfg.vcpus) return `/maxvcpus: ${cfg.maxvcpus} is less than vcpus (${cfg.vcpus})`;
  if (cfg.cap > 100 * cfg.maxvcpus) return `/cap: ${cfg.cap}% is more than ${cfg.maxvcpus} vCPU(s) can use`;
  if (cfg.cmdline.length > MAX_CMDLINE) return `/cmdline: longer than ${MAX_CMDLINE} bytes`;
  if (cfg.cmdline.includes('\0')) return '/cmdline: contains a NUL byte';
  for (const [k, p] of [
    ['kernel', cfg.kernel],
    ['ramdisk', cfg.ramdisk],
    ['device_model_override', cfg.device_model_override],
  ] as const) {
    const problem = p === undefined ? undefined : pathProblem(`/${k}`, p);
    if (problem) return problem;
  }
  for (const [k, spec] of [
    ['cpus', cfg.cpus],
    ...(cfg.cpus_per_vcpu ?? []).map((c, i) => [`cpus_per_vcpu/${i}`, c] as const),
    ['cpus_soft', cfg.cpus_soft],
    ...(cfg.cpus_soft_per_vcpu ?? []).map((c, i) => [`cpus_soft_per_vcpu/${i}`, c] as const),
  ] as const) {
    const problem = spec === undefined ? undefined : attempt(() => parseCpuList(spec));
    if (problem) return `/${k}: ${problem}`;
  }

  const vdevs = new Set<number>();
  for (const [i, d] of cfg.disk.entries()) {
    const where = `/disk/${i}`;
    if (d.target === '') {
      if (d.devtype !== 'cdrom') return `${where}: only a CD-ROM may have no target`;
    } else {
      const problem = pathProblem(`${where}/target`, d.target);
      if (problem) return problem;
    }
    const num = vdevNumber(d.vdev);
    if (num === undefined) return `${where}/vdev: invalid vdev '${d.vdev.slice(0, 32)}'`;
    if (vdevs.has(num)) return `${where}/vdev: '${d.vdev}' is used twice`;
    vdevs.add(num);
    const limits =
      d.throttle && (d.target === '' ? 'an empty CD-ROM has no image to limit' : throttleProblem(d.throttle));
    if (limits) return `${where}/throttle: ${limits}`;
  }

  const macs = new Set<string>();
  const vifnames = new Set<string>();
  for (const [i, v] of cfg.vif.entries()) {
    const where = `/vif/${i}`;
    if (v.mac !== undefined) {
      const problem = attempt(() => {
        if (parseMac(v.mac as string) !== v.mac) throw new Error('not in canonical form');
      });
      if (problem) return `${where}/mac: ${problem}`;
      if (macs.has(v.mac)) return `${where}/mac: ${v.mac} is used twice`;
      macs.add(v.mac);
    }
    if (v.model !== undefined && !(NIC_MODELS as readonly string[]).includes(v.model))
      return `${where}/model: unknown NIC model (models: ${NIC_MODELS.join(', ')})`;
    if (v.bridge !== undefined && !IFNAME.test(v.bridge)) return `${where}/bridge: invalid bridge name`;
    if (v.vifname !== undefined) {
      if (!IFNAME.test(v.vifname)) return `${where}/vifname: invalid interface name`;
      if (vifnames.has(v.vifname)) return `${where}/vifname: ${v.vifname} is used twice`;
      vifnames.add(v.vifname);
    }
    if (v.ip !== undefined && (v.ip === '' || ipProblem(v.ip))) return `${where}/ip: invalid address list`;
    if (v.rate !== undefined) {
      const problem = attempt(() => parseVifRate(v.rate as string));
      if (problem) return `${where}/rate: ${problem}`;
    }
  }

  const shmIds = new Set<string>();
  for (const [i, s] of cfg.static_shm.entries()) {
    const where = `/static_shm/${i}`;
    if (shmIds.has(s.id)) return `${where}/id: '${s.id}' appears twice`;
    shmIds.add(s.id);
    if (!(CACHE_POLICIES as readonly string[]).includes(s.cachePolicy))
      return `${where}/cachePolicy: must be one of ${CACHE_POLICIES.join(', ')}`;
    if (s.role === 'borrower' && s.offset + s.size > 2 ** 48) return `${where}: offset + size is out of range`;
  }
  return undefined;
}
