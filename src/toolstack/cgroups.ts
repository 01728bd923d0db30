// Each domain's QEMU in a cgroup of its own, libvirt's layout:
//   <mount>/<top>/<sponsor>/dom<domid>          QEMU's main and emulator threads
//   <mount>/<top>/<sponsor>/dom<domid>/vcpuN    vCPU thread N
// in the cpu, cpuacct and cpuset hierarchies (cgroup v1, one mount each) or in
// the one cgroup v2 tree (vcpuN threaded). The lifecycle core makes a domain's
// groups when its QEMU starts (and on reattach) and removes them after every
// plugin's onTeardown, so a destroyed domain's CPU time stays readable until then.
// The sched feature writes weights, caps and CPU sets through the setters here,
// which translate xl's units into the cgroup version's files.

import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type CgroupMode = 'v1' | 'v2';
export type CgroupController = 'cpu' | 'cpuacct' | 'cpuset';

/** Where each controller's hierarchy is mounted (v2: the one tree for all three). */
export interface CgroupMounts {
  mode: CgroupMode;
  cpu: string;
  cpuacct: string;
  cpuset: string;
}

/** CFS period for caps (v1 cpu.cfs_period_us, v2 cpu.max): 100 ms, the kernel's default. */
export const CAP_PERIOD_US = 100_000;
/** xl's default weight: 256 on credit's scale is cpu.shares 1024 (v1), cpu.weight 100 (v2). */
export const DEFAULT_WEIGHT = 256;

/** cgroup v1 cpu.shares for an xl weight (1-65535): 4 shares per unit, so 256 = 1024, the kernel's default. */
export function sharesForWeight(weight: number): number {
  return weight * 4;
}

/** cgroup v2 cpu.weight (1-10000, default 100) for an xl weight: proportional, 256 = 100. */
export function v2WeightForWeight(weight: number): number {
  return Math.min(10_000, Math.max(1, Math.round((weight * 100) / DEFAULT_WEIGHT)));
}

/** CFS quota in µs per CAP_PERIOD_US for a cap in percent of one CPU; undefined = no cap. */
export function quotaForCap(cap: number | undefined): number | undefined {
  return cap && cap > 0 ? cap * (CAP_PERIOD_US / 100) : undefined;
}

/** A CPU list in the kernel's format (0-3,5). */
export function formatCpuSet(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === (sorted[j] as number) + 1) j++;
    out.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** The kernel's CPU list format (0-3,5) back to numbers. */
export function parseCpuSet(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isInteger(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

/**
 * The cgroup mounts Xenode can use, from /proc/self/mounts: v1 when cpu, cpuacct
 * and cpuset are mounted as v1 hierarchies; else v2 when the unified tree offers
 * the cpu controller. `controllersOf` reads a v2 tree's cgroup.controllers.
 */
export function detectCgroupMounts(
  mountsText: string,
  controllersOf: (dir: string) => string = (dir) => readFileSync(join(dir, 'cgroup.controllers'), 'utf8'),
): CgroupMounts | undefined {
  const v1: Partial<Record<CgroupController, string>> = {};
  const v2: string[] = [];
  for (const line of mountsText.split('\n')) {
    const [, dir, fstype, options] = line.split(' ');
    if (!dir || !options) continue;
    const opts = options.split(',');
    if (!opts.includes('rw')) continue;
    if (fstype === 'cgroup') {
      for (const c of ['cpu', 'cpuacct', 'cpuset'] as const) if (opts.includes(c)) v1[c] ??= dir;
    } else if (fstype === 'cgroup2') v2.push(dir);
  }
  if (v1.cpu && v1.cpuacct && v1.cpuset) return { mode: 'v1', cpu: v1.cpu, cpuacct: v1.cpuacct, cpuset: v1.cpuset };
  for (const dir of v2) {
    let controllers: string[];
    try {
      controllers = controllersOf(dir).trim().split(/\s+/);
    } catch {
      continue;
    }
    if (controllers.includes('cpu')) return { mode: 'v2', cpu: dir, cpuacct: dir, cpuset: dir };
  }
  return undefined;
}

/**
 * The top group's name: `xenode` for the daemon with the default state
 * directory; another daemon on the host (XENODE_DIR, tests) gets one of its own,
 * `xenode-<8 hex digits of its directory>`, so sponsors' groups never mix.
 * XENODE_CGROUP names it outright ("off": no cgroups at all).
 */
export function cgroupTopName(base: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.XENODE_CGROUP) return env.XENODE_CGROUP;
  const defaults = ['/var/lib/xenode', join(homedir(), '.local', 'state', 'xenode')];
  if (defaults.includes(base)) return 'xenode';
  return `xenode-${createHash('sha256').update(base).digest('hex').slice(0, 8)}`;
}

const TOP_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Cgroups {
  /** Why there are no cgroups (unavailable only). */
  readonly why?: string;

  private constructor(
    readonly mounts: CgroupMounts | undefined,
    readonly top: string,
    why?: string,
  ) {
    this.why = why;
  }

  /** Probe the host: mounts, and whether the top group can be made. */
  static probe(top: string, mountsText?: string): Cgroups {
    if (top === 'off') return new Cgroups(undefined, top, 'turned off (XENODE_CGROUP=off)');
    if (!TOP_RE.test(top)) return new Cgroups(undefined, top, `invalid group name '${top}' in XENODE_CGROUP`);
    let text = mountsText;
    try {
      text ??= readFileSync('/proc/self/mounts', 'utf8');
    } catch (e) {
      return new Cgroups(undefined, top, `cannot read the mount table: ${errText(e)}`);
    }
    const mounts = detectCgroupMounts(text);
    if (!mounts) return new Cgroups(undefined, top, 'no cgroup hierarchy with the cpu, cpuacct and cpuset controllers');
    for (const dir of new Set([mounts.cpu, mounts.cpuacct, mounts.cpuset])) {
      try {
        accessSync(dir, constants.W_OK);
      } catch {
        return new Cgroups(undefined, top, `${dir} is not writable (xenoded is not root)`);
      }
    }
    return new Cgroups(mounts, top);
  }

  /** For tests: a layout under fake mount directories. */
  static at(mounts: CgroupMounts, top: string): Cgroups {
    return new Cgroups(mounts, top);
  }

  get available(): boolean {
    return this.mounts !== undefined;
  }

  get mode(): CgroupMode | undefined {
    return this.mounts?.mode;
  }

  // ---- naming --------------------------------------------------------------

  /** `<top>/<sponsor>`, relative to a controller's mount. */
  sponsorGroup(sponsor: string): string {
    return `${this.top}/${sponsor}`;
  }

  /** `<top>/<sponsor>/dom<domid>`, relative to a controller's mount. */
  domainGroup(sponsor: string, domid: number): string {
    return `${this.sponsorGroup(sponsor)}/dom${domid}`;
  }

  /** `<top>/<sponsor>/dom<domid>/vcpu<N>`. */
  vcpuGroup(sponsor: string, domid: number, vcpu: number): string {
    return `${this.domainGroup(sponsor, domid)}/vcpu${vcpu}`;
  }

  /** Absolute directory of `group` in `controller`'s hierarchy. */
  dir(controller: CgroupController, group: string): string {
    if (!this.mounts) throw new Error('no cgroups on this host');
    return join(this.mounts[controller], group);
  }

  private controllerDirs(): CgroupController[] {
    return this.mounts?.mode === 'v1' ? ['cpu', 'cpuacct', 'cpuset'] : ['cpu'];
  }

  private write(controller: CgroupController, group: string, file: string, value: string): void {
    writeFileSync(join(this.dir(controller, group), file), value);
  }

  read(controller: CgroupController, group: string, file: string): string | undefined {
    try {
      return readFileSync(join(this.dir(controller, group), file), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  // ---- making and removing groups -----------------------------------------

  /** Make `group` and its parents in every hierarchy (a v1 cpuset group starts empty: give it its parent's). */
  private ensure(group: string): void {
    const parts = group.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const g = parts.slice(0, i).join('/');
      const parent = parts.slice(0, i - 1).join('/');
      for (const c of this.controllerDirs()) {
        const dir = this.dir(c, g);
        if (existsSync(dir)) continue;
        mkdirSync(dir);
        if (this.mounts?.mode === 'v1' && c === 'cpuset') {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) this.write(c, g, f, this.read(c, parent, f) ?? '');
        }
      }
      // v2: the children of a group see only the controllers it passes down
      // (refused while a domain group holds QEMU without threaded children; placeVcpus retries).
      if (this.mounts?.mode === 'v2' && i < parts.length) this.enableV2(g);
    }
  }

  private enableV2(group: string): void {
    for (const c of ['+cpu', '+cpuset']) {
      try {
        this.write('cpu', group, 'cgroup.subtree_control', c);
      } catch {
        /* cpuset may be missing; cpu is checked by probe() */
      }
    }
  }

  /**
   * Put a domain's QEMU in its group and each vCPU thread in its vcpuN group
   * (vcpuTids[i] is vCPU i). Idempotent: reattach and hot-plug call it again.
   */
  attach(sponsor: string, domid: number, pid: number, vcpuTids: readonly number[]): void {
    if (!this.mounts) return;
    const dom = this.domainGroup(sponsor, domid);
    if (this.mounts.mode === 'v2') this.enableV2Root();
    this.ensure(dom);
    for (const c of this.controllerDirs()) this.write(c, dom, 'cgroup.procs', String(pid));
    this.placeVcpus(sponsor, domid, vcpuTids);
  }

  private enableV2Root(): void {
    if (!this.mounts) return;
    for (const c of ['+cpu', '+cpuset']) {
      try {
        writeFileSync(join(this.mounts.cpu, 'cgroup.subtree_control'), c);
      } catch {
        /* already on, or not ours to change */
      }
    }
  }

  /** Move vCPU threads into vcpu0..N-1 and drop vcpuN groups of vCPUs that are gone. */
  placeVcpus(sponsor: string, domid: number, vcpuTids: readonly number[]): void {
    if (!this.mounts) return;
    const dom = this.domainGroup(sponsor, domid);
    vcpuTids.forEach((tid, vcpu) => {
      const g = this.vcpuGroup(sponsor, domid, vcpu);
      this.ensure(g);
      if (this.mounts?.mode === 'v2') {
        if (this.read('cpu', g, 'cgroup.type') !== 'threaded') this.write('cpu', g, 'cgroup.type', 'threaded');
        this.enableV2(dom);
        this.write('cpu', g, 'cgroup.threads', String(tid));
      } else {
        for (const c of this.controllerDirs()) this.write(c, g, 'tasks', String(tid));
      }
    });
    for (const n of this.vcpuGroupsOf(sponsor, domid)) {
      if (n >= vcpuTids.length) this.removeGroup(this.vcpuGroup(sponsor, domid, n));
    }
  }

  /** The vcpuN groups that exist for a domain. */
  vcpuGroupsOf(sponsor: string, domid: number): number[] {
    if (!this.mounts) return [];
    try {
      return readdirSync(this.dir('cpu', this.domainGroup(sponsor, domid)))
        .map((n) => /^vcpu(\d+)$/.exec(n)?.[1])
        .filter((n): n is string => n !== undefined)
        .map(Number)
        .sort((a, b) => a - b);
    } catch {
      return [];
    }
  }

  /** rmdir in every hierarchy; false if some group still has threads. */
  private removeGroup(group: string): boolean {
    let ok = true;
    for (const c of this.controllerDirs()) {
      try {
        rmdirSync(this.dir(c, group));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') ok = false;
      }
    }
    return ok;
  }

  /**
   * Remove a domain's groups (its QEMU is gone), then its sponsor's and the
   * top group if nothing else is left in them. Throws if threads remain.
   */
  remove(sponsor: string, domid: number): void {
    if (!this.mounts) return;
    for (const n of this.vcpuGroupsOf(sponsor, domid)) this.removeGroup(this.vcpuGroup(sponsor, domid, n));
    if (!this.removeGroup(this.domainGroup(sponsor, domid))) {
      throw new Error(`cgroup ${this.domainGroup(sponsor, domid)} still has threads`);
    }
    // Empty parents go too (rmdir refuses a group with children): nothing is left behind.
    if (this.removeGroup(this.sponsorGroup(sponsor))) this.removeGroup(this.top);
  }

  /**
   * A new domain must not inherit a group an earlier domain with the same domid
   * left behind (its removal gave up while threads lingered): that group's CPU
   * time would be billed to the new domain. Remove it; if threads still hold it,
   * zero its v1 usage counter (accounting reads a counter going back as a reset).
   */
  clearLeftover(sponsor: string, domid: number): void {
    if (!this.mounts) return;
    const dom = this.domainGroup(sponsor, domid);
    if (!existsSync(this.dir('cpu', dom))) return;
    try {
      this.remove(sponsor, domid);
    } catch {
      if (this.mounts.mode === 'v1') this.write('cpuacct', dom, 'cpuacct.usage', '0');
    }
  }

  /**
   * Remove other daemons' top groups (`xenode-*`) that hold no thread anywhere
   * and are over a minute old: left by daemons killed with their domains (tests).
   * A live domain's groups always hold its QEMU's threads.
   */
  sweepStale(now = Date.now()): string[] {
    if (!this.mounts) return [];
    const swept: string[] = [];
    let names: string[];
    try {
      names = readdirSync(this.mounts.cpu);
    } catch {
      return [];
    }
    for (const name of names) {
      if (name === this.top || !/^xenode-[0-9a-f]{8}$/.test(name)) continue;
      try {
        if (now - statSync(this.dir('cpu', name)).mtimeMs < 60_000) continue;
        if (this.controllerDirs().some((c) => this.hasThreads(this.dir(c, name)))) continue;
        for (const c of this.controllerDirs()) removeTree(this.dir(c, name));
        swept.push(name);
      } catch {
        /* in use after all, or gone meanwhile */
      }
    }
    return swept;
  }

  private hasThreads(dir: string): boolean {
    if (!existsSync(dir)) return false;
    for (const f of ['tasks', 'cgroup.threads']) {
      try {
        if (readFileSync(join(dir, f), 'utf8').trim() !== '') return true;
      } catch {
        /* not this version's file */
      }
    }
    return readdirSync(dir, { withFileTypes: true }).some((e) => e.isDirectory() && this.hasThreads(join(dir, e.name)));
  }

  // ---- settings (xl's units) -----------------------------------------------

  /** Weight on credit's scale (1-65535). */
  setWeight(group: string, weight: number): void {
    if (this.mounts?.mode === 'v1') this.write('cpu', group, 'cpu.shares', String(sharesForWeight(weight)));
    else if (this.mounts) this.write('cpu', group, 'cpu.weight', String(v2WeightForWeight(weight)));
  }

  /** Cap in percent of one CPU; undefined or 0 = none. */
  setCap(group: string, cap: number | undefined): void {
    const q = quotaForCap(cap);
    if (this.mounts?.mode === 'v1') {
      this.write('cpu', group, 'cpu.cfs_period_us', String(CAP_PERIOD_US));
      this.write('cpu', group, 'cpu.cfs_quota_us', String(q ?? -1));
    } else if (this.mounts) this.write('cpu', group, 'cpu.max', `${q ?? 'max'} ${CAP_PERIOD_US}`);
  }

  /** The cap now in force on a group, in percent of one CPU (0 = none). */
  capOf(group: string): number | undefined {
    if (this.mounts?.mode === 'v1') {
      const q = Number(this.read('cpu', group, 'cpu.cfs_quota_us'));
      const p = Number(this.read('cpu', group, 'cpu.cfs_period_us'));
      if (!Number.isFinite(q) || !Number.isFinite(p) || p <= 0) return undefined;
      return q < 0 ? 0 : Math.round((q * 100) / p);
    }
    const m = /^(\S+) (\d+)$/.exec(this.read('cpu', group, 'cpu.max') ?? '');
    if (!m) return undefined;
    return m[1] === 'max' ? 0 : Math.round((Number(m[1]) * 100) / Number(m[2]));
  }

  /** Host CPUs a group's threads may run on. */
  setCpus(group: string, cpus: readonly number[]): void {
    if (this.mounts) this.write('cpuset', group, 'cpuset.cpus', formatCpuSet(cpus));
  }

  /** CPU time in ns a group's threads used (children included), or undefined. */
  usageNs(group: string): number | undefined {
    if (this.mounts?.mode === 'v1') {
      const v = this.read('cpuacct', group, 'cpuacct.usage');
      return v === undefined ? undefined : Number(v);
    }
    const m = /^usage_usec (\d+)$/m.exec(this.read('cpu', group, 'cpu.stat') ?? '');
    return m ? Number(m[1]) * 1000 : undefined;
  }
}

/** rmdir a cgroup and its children, deepest first (cgroup directories are removed empty of files). */
function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
  rmdirSync(dir);
}

let active: Cgroups | undefined;

/** The daemon's cgroups (set by the Toolstack); probed with the default top if none was set. */
export function hostCgroups(): Cgroups {
  active ??= Cgroups.probe(cgroupTopName('/var/lib/xenode'));
  return active;
}

export function setHostCgroups(c: Cgroups): void {
  active = c;
}

/**
 * CPU time in nanoseconds a domain's QEMU has used (all its threads), from its
 * cgroup: cpuacct.usage (v1) or cpu.stat usage_usec (v2). It counts from when
 * the group was made and stays readable after the domain is destroyed until the
 * core removes the group (after every plugin's onTeardown). Undefined without
 * cgroups or without the group.
 */
export function cpuUsageNs(rec: { sponsor: string; domid: number }): number | undefined {
  const c = hostCgroups();
  if (!c.available) return undefined;
  return c.usageNs(c.domainGroup(rec.sponsor, rec.domid));
}

/** Describe a failure to set up cgroups in one line. */
export function cgroupError(what: string, e: unknown): string {
  return `${what}: ${errText(e)}`;
}
