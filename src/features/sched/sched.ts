// CPU guarantees of running domains through their cgroups (src/toolstack/cgroups.ts):
// cpu_weight and cap on the domain's group, its sponsor's cpuWeight/cpuCap on the
// sponsor's group, cpus= as each vCPU thread's cpuset; and the operations behind
// sched-credit, vcpu-pin, vcpu-set and vcpu-list. Every change is written to the
// domain's config (so save files, migration and a restarted daemon carry it) and
// applied at once.

import { cpuSlots, plugCpu, unplugCpu } from '../../engine/cpu-hotplug.ts';
import { XenodeError } from '../../errors.ts';
import { type Cgroups, DEFAULT_WEIGHT, hostCgroups, parseCpuSet } from '../../toolstack/cgroups.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import { threadAffinity, threadStat } from '../../toolstack/proc-stats.ts';
import type { SponsorLimits, SponsorPolicy } from '../../toolstack/sponsors.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { cpusOf, type HostCpus, hardSpec, pinConfig, readHostCpus, showCpus, softSpec } from './affinity.ts';

/** One row of vcpu-list, as the API returns it. */
export interface VcpuView {
  vcpu: number;
  online: boolean;
  /** Host CPU the vCPU thread last ran on. */
  cpu?: number;
  running: boolean;
  blocked: boolean;
  paused: boolean;
  /** CPU time of the vCPU thread. */
  seconds: number;
  /** Hard affinity as the kernel has it for the thread (xl's "all" when every CPU). */
  hard: string;
  /** Soft affinity as recorded (Linux has none to apply). */
  soft: string;
}

/** One row of sched-credit. */
export interface SchedView {
  domid: number;
  name: string;
  weight: number;
  cap: number;
}

export interface PinRequest {
  vcpu: number | 'all';
  /** CPU list, or undefined/'-' to leave it. */
  hard?: string;
  soft?: string;
  force?: boolean;
}

const WEIGHT_ERR = 'Cpu weight out of range, valid values are within range from 1 to 65535';

function noCgroups(c: Cgroups, what: string): XenodeError {
  return new XenodeError('config', `${what} needs writable cgroups, which this host does not offer: ${c.why}`, {
    hint: 'run xenoded as root with the cpu, cpuacct and cpuset cgroup controllers (v1) or cgroup v2 with cpu and cpuset',
  });
}

/** A sponsor's rate limits, or none for the admin's own domains (the admin is never limited). */
export function sponsorLimits(policy: SponsorPolicy | undefined, sponsor: string): SponsorLimits {
  return sponsor === 'admin' || !policy ? {} : policy.limits(sponsor);
}

/** The cap a domain's group gets: its own, within its sponsor's (cgroup v1 refuses a child quota above its parent's). */
function effectiveCap(domCap: number, sponsorCap: number | undefined): number {
  const a = domCap > 0 ? domCap : Number.POSITIVE_INFINITY;
  const b = sponsorCap && sponsorCap > 0 ? sponsorCap : Number.POSITIVE_INFINITY;
  const m = Math.min(a, b);
  return Number.isFinite(m) ? m : 0;
}

export class Scheduler {
  private log?: DaemonLog;
  private policy?: SponsorPolicy;
  /** The domains with a QEMU this daemon set up (afterLaunch / afterReattach). */
  private readonly live = new Set<Domain>();

  start(log: DaemonLog, policy: SponsorPolicy): void {
    this.log = log;
    this.policy = policy;
  }

  get cgroups(): Cgroups {
    return hostCgroups();
  }

  /** Refuse non-default keys that could not take effect (no cgroups), and CPU lists selecting no host CPU. */
  admit(cfg: { cpu_weight: number; cap: number; cpus?: string; cpus_per_vcpu?: string[] }): void {
    const c = this.cgroups;
    if (!c.available) {
      const set = [
        cfg.cpu_weight !== DEFAULT_WEIGHT ? `cpu_weight=${cfg.cpu_weight}` : undefined,
        cfg.cap !== 0 ? `cap=${cfg.cap}` : undefined,
        cfg.cpus !== undefined && cfg.cpus !== 'all' ? 'cpus=' : undefined,
        cfg.cpus_per_vcpu?.some((s) => s !== 'all') ? 'cpus=[...]' : undefined,
      ].filter(Boolean);
      if (set.length) throw noCgroups(c, set.join(', '));
      return;
    }
    const host = readHostCpus();
    for (const spec of [cfg.cpus, ...(cfg.cpus_per_vcpu ?? [])]) {
      if (spec === undefined) continue;
      try {
        cpusOf(spec, host);
      } catch (e) {
        throw new XenodeError('config', `cpus: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  attached(d: Domain): void {
    this.live.add(d);
    this.apply(d);
  }

  detached(d: Domain): void {
    this.live.delete(d);
  }

  private sponsorsDomains(sponsor: string): Domain[] {
    return [...this.live].filter((x) => x.rec.sponsor === sponsor && x.machine);
  }

  private warn(msg: string, domid?: number): void {
    this.log?.warn(`sched: ${msg}`, domid);
  }

  /** Everything for one domain: its sponsor's group, its own weight and cap, each vCPU's CPUs. */
  apply(d: Domain): void {
    const c = this.cgroups;
    if (!c.available || !d.machine) return;
    try {
      this.applySponsor(d.rec.sponsor, sponsorLimits(this.policy, d.rec.sponsor));
      c.setWeight(c.domainGroup(d.rec.sponsor, d.domid), d.rec.config.cpu_weight);
      this.applyAffinity(d);
    } catch (e) {
      this.warn(e instanceof Error ? e.message : String(e), d.domid);
    }
  }

  /**
   * A sponsor's weight and cap on its group, and its domains' caps within it.
   * cgroup v1 refuses a child's quota above its parent's, so every cap goes first
   * to the lower of old and new, then the sponsor's, then the domains' own.
   */
  applySponsor(sponsor: string, limits: SponsorLimits): void {
    const c = this.cgroups;
    if (!c.available) return;
    const group = c.sponsorGroup(sponsor);
    const doms = this.sponsorsDomains(sponsor);
    // No running domain, no group to write: the next launch applies the limits (apply()).
    if (doms.length === 0) return;
    const oldCap = c.capOf(group) ?? 0;
    const newCap = limits.cpuCap ?? 0;
    try {
      c.setWeight(group, limits.cpuWeight ?? DEFAULT_WEIGHT);
      for (const d of doms) {
        c.setCap(c.domainGroup(sponsor, d.domid), effectiveCap(effectiveCap(d.rec.config.cap, oldCap), newCap));
      }
      c.setCap(group, newCap);
      for (const d of doms) c.setCap(c.domainGroup(sponsor, d.domid), effectiveCap(d.rec.config.cap, newCap));
    } catch (e) {
      this.warn(`sponsor ${sponsor}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Each online vCPU thread's cpuset from the config's hard affinity, and QEMU's
   *  other threads (main loop, I/O) on the union of them, as libvirt's emulatorpin
   *  defaults: left free, they put part of the domain's load on other CPUs, and the
   *  kernel then splits the domain's cpu.shares across CPUs, so weights between
   *  domains pinned together stop holding (bench:qos measured 2.1-2.4 for 2:1). */
  applyAffinity(d: Domain, host: HostCpus = readHostCpus()): void {
    const c = this.cgroups;
    if (!c.available) return;
    const domain = c.domainGroup(d.rec.sponsor, d.domid);
    const union = new Set<number>();
    // v1 keeps a child's cpuset within its parent's: widen the domain first, narrow it last.
    c.setCpus(domain, host.online);
    d.vcpuTids.forEach((_, vcpu) => {
      const spec = hardSpec(d.rec.config, vcpu);
      let cpus: number[];
      try {
        cpus = cpusOf(spec, host);
      } catch {
        // The host changed under a recorded pinning: run anywhere rather than nowhere.
        this.warn(`vCPU ${vcpu}: cpus '${spec}' selects no CPU of this host; not pinned`, d.domid);
        cpus = host.online;
      }
      c.setCpus(c.vcpuGroup(d.rec.sponsor, d.domid, vcpu), cpus);
      for (const cpu of cpus) union.add(cpu);
    });
    if (union.size > 0)
      c.setCpus(
        domain,
        [...union].sort((a, b) => a - b),
      );
  }

  // ---- sched-credit ----------------------------------------------------------

  schedRow(d: Domain): SchedView {
    return { domid: d.domid, name: d.name, weight: d.rec.config.cpu_weight, cap: d.rec.config.cap };
  }

  async setParams(ts: Toolstack, d: Domain, body: { weight?: unknown; cap?: unknown }): Promise<SchedView> {
    const { weight, cap } = body;
    if (weight !== undefined && !(Number.isInteger(weight) && (weight as number) >= 1 && (weight as number) <= 65535))
      throw new XenodeError('usage', WEIGHT_ERR, { exitCode: 1 });
    const maxCap = 100 * d.rec.config.maxvcpus;
    if (cap !== undefined && !(Number.isInteger(cap) && (cap as number) >= 0 && (cap as number) <= maxCap))
      throw new XenodeError(
        'usage',
        `Cpu cap out of range, valid range is from 0 to ${maxCap} for specified number of vcpus`,
        {
          exitCode: 1,
        },
      );
    if (weight === undefined && cap === undefined) return this.schedRow(d);
    const c = this.cgroups;
    if (!c.available) throw noCgroups(c, 'sched-credit -w/-c');
    return d.serial(async () => {
      const cfg = { ...d.rec.config };
      if (weight !== undefined) cfg.cpu_weight = weight as number;
      if (cap !== undefined) cfg.cap = cap as number;
      d.rec.config = cfg;
      ts.touch(d);
      if (d.machine) {
        const group = c.domainGroup(d.rec.sponsor, d.domid);
        c.setWeight(group, cfg.cpu_weight);
        c.setCap(group, effectiveCap(cfg.cap, sponsorLimits(this.policy, d.rec.sponsor).cpuCap));
      }
      return this.schedRow(d);
    });
  }

  // ---- vcpu-pin ----------------------------------------------------------------

  async pin(ts: Toolstack, d: Domain, req: PinRequest): Promise<void> {
    const { vcpu } = req;
    const max = d.rec.config.maxvcpus;
    if (vcpu !== 'all' && !(Number.isInteger(vcpu) && vcpu >= 0))
      throw new XenodeError('usage', `Error: Invalid argument ${String(vcpu)} as VCPU.`, { exitCode: 1 });
    if (vcpu === 'all' && req.force)
      throw new XenodeError('usage', "Error: --force and 'all' as VCPU not allowed.", { exitCode: 1 });
    if (vcpu !== 'all' && vcpu >= max)
      throw new XenodeError('usage', `Could not set affinity for vcpu \`${vcpu}'.`, {
        exitCode: 1,
        hint: `the domain has vCPUs 0-${max - 1} (maxvcpus=${max})`,
      });
    const host = readHostCpus();
    const hard = req.hard === undefined || req.hard === '-' ? undefined : req.hard;
    const soft = req.soft === undefined || req.soft === '-' ? undefined : req.soft;
    for (const s of [hard, soft]) if (s !== undefined) cpusOf(s, host);
    const c = this.cgroups;
    if (hard !== undefined && !c.available) throw noCgroups(c, 'vcpu-pin');
    await d.serial(async () => {
      let cfg = d.rec.config;
      if (hard !== undefined) cfg = pinConfig(cfg, 'hard', vcpu, hard);
      if (soft !== undefined) cfg = pinConfig(cfg, 'soft', vcpu, soft);
      d.rec.config = cfg;
      ts.touch(d);
      if (d.machine) this.applyAffinity(d, host);
    });
  }

  // ---- vcpu-set ----------------------------------------------------------------

  async setVcpus(ts: Toolstack, d: Domain, n: unknown, ignoreHost: boolean): Promise<{ vcpus: number }> {
    if (!Number.isInteger(n) || (n as number) < 0)
      throw new XenodeError('usage', 'Error: Invalid argument.', { exitCode: 1 });
    const want = n as number;
    const max = d.rec.config.maxvcpus;
    if (want > max)
      throw new XenodeError('usage', `Requested ${want} VCPUs, however maxcpus is ${max}!`, { exitCode: 1 });
    if (want < 1) throw new XenodeError('usage', 'a domain keeps at least one vCPU online', { exitCode: 1 });
    const hostCpus = readHostCpus().online.length;
    if (!ignoreHost && want > d.vcpuTids.length && want > hostCpus) {
      throw new XenodeError(
        'usage',
        `You are overcommmitting! You have ${hostCpus} physical CPUs and want ${want} vCPUs! Aborting, use --ignore-host to continue`,
        { exitCode: 1 },
      );
    }
    return d.serial(async () => {
      const m = d.machine;
      if (!m || (d.rec.state !== 'running' && d.rec.state !== 'paused'))
        throw new XenodeError('state', `domain ${d.name} is not running`);
      const online = d.vcpuTids.length;
      if (want < online && d.rec.state === 'paused') {
        throw new XenodeError('state', `domain ${d.name} is paused`, {
          hint: 'a guest gives a vCPU back only while it runs: unpause it first',
        });
      }
      const slots = await cpuSlots(m);
      try {
        for (let i = online; i < want; i++) {
          const slot = slots[i];
          if (slot) await plugCpu(m, slot);
        }
        for (let i = online - 1; i >= want; i--) {
          const slot = slots[i];
          if (slot) await unplugCpu(m, slot);
        }
      } finally {
        // Whatever happened, the record and the cgroups follow the machine.
        const threads = (await m.vcpuThreads()).sort((a, b) => a.vcpu - b.vcpu);
        d.vcpuTids = threads.map((t) => t.tid);
        ts.placeInCgroups(d);
        this.applyAffinity(d);
        d.rec.config = { ...d.rec.config, vcpus: Math.max(1, threads.length) };
        ts.touch(d);
      }
      return { vcpus: d.vcpuTids.length };
    });
  }

  // ---- vcpu-list -----------------------------------------------------------------

  vcpus(d: Domain): VcpuView[] {
    const host = readHostCpus();
    const pid = d.rec.pid;
    const paused = d.rec.state !== 'running';
    const rows: VcpuView[] = [];
    for (let vcpu = 0; vcpu < d.rec.config.maxvcpus; vcpu++) {
      const tid = d.vcpuTids[vcpu];
      const soft = showCpus(cpusOrAll(softSpec(d.rec.config, vcpu), host), host);
      if (tid === undefined || !pid) {
        const hard = showCpus(cpusOrAll(hardSpec(d.rec.config, vcpu), host), host);
        rows.push({ vcpu, online: false, running: false, blocked: false, paused: true, seconds: 0, hard, soft });
        continue;
      }
      const st = threadStat(pid, tid);
      // The kernel's own answer (sched_getaffinity), not what was asked for.
      const allowed = threadAffinity(pid, tid);
      const hard = allowed === 'all' ? 'all' : showCpus(parseCpuSet(allowed), host);
      rows.push({
        vcpu,
        online: true,
        cpu: st?.lastCpu,
        running: !paused && st?.state === 'R',
        blocked: !paused && st?.state !== 'R',
        paused,
        seconds: st?.cpuSeconds ?? 0,
        hard,
        soft,
      });
    }
    return rows;
  }
}

function cpusOrAll(spec: string, host: HostCpus): number[] {
  try {
    return cpusOf(spec, host);
  } catch {
    return host.online;
  }
}
