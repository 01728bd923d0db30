// vCPU affinity in xl's terms: which host CPUs a config's cpus= / cpus_soft=
// (string or list per vCPU) give each vCPU, how vcpu-pin rewrites them, and how
// a CPU set prints (xl's "all", else the kernel's 0-3,5).

import { readdirSync, readFileSync } from 'node:fs';
import { expandCpuList, parseCpuList } from '../../config/cpulist.ts';
import type { DomainConfig } from '../../config/types.ts';
import { XenodeError } from '../../errors.ts';
import { formatCpuSet, parseCpuSet } from '../../toolstack/cgroups.ts';

/** The host's online CPUs and the CPUs of each NUMA node. */
export interface HostCpus {
  online: number[];
  nodes: Map<number, number[]>;
}

export function readHostCpus(): HostCpus {
  let online: number[];
  try {
    online = parseCpuSet(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
  } catch {
    online = [0];
  }
  const nodes = new Map<number, number[]>();
  try {
    for (const n of readdirSync('/sys/devices/system/node')) {
      const m = /^node(\d+)$/.exec(n);
      if (!m) continue;
      nodes.set(Number(m[1]), parseCpuSet(readFileSync(`/sys/devices/system/node/${n}/cpulist`, 'utf8')));
    }
  } catch {
    /* no NUMA information: node 0 holds every CPU */
  }
  if (nodes.size === 0) nodes.set(0, online);
  return { online, nodes };
}

/** Longest CPU list accepted from a user (xl's own lists are far shorter). */
const MAX_SPEC = 1024;

/**
 * The host CPUs a CPU list selects, or a one-line error (exit 1, as xl's
 * failures) when it is malformed or selects none of this host's CPUs.
 */
export function cpusOf(spec: string, host: HostCpus): number[] {
  if (spec.length > MAX_SPEC)
    throw new XenodeError('usage', `CPU list is too long (over ${MAX_SPEC} characters)`, { exitCode: 1 });
  let items: ReturnType<typeof parseCpuList>;
  try {
    items = parseCpuList(spec);
  } catch (e) {
    throw new XenodeError('usage', `Error: invalid CPU list '${spec}': ${e instanceof Error ? e.message : String(e)}`, {
      exitCode: 1,
      hint: 'a CPU list looks like "all", "0-3,5,^1" or "nodes:0,^2"',
    });
  }
  const n = Math.max(...host.online) + 1;
  const cpus = expandCpuList(items, n, (node) => host.nodes.get(node) ?? []).filter((c) => host.online.includes(c));
  if (cpus.length === 0) {
    throw new XenodeError(
      'usage',
      `CPU list '${spec}' selects none of this host's CPUs (${formatCpuSet(host.online)})`,
      {
        exitCode: 1,
      },
    );
  }
  return cpus;
}

/** The hard-affinity spec of vCPU `vcpu` (xl: list entries beyond the list mean all). */
export function hardSpec(cfg: DomainConfig, vcpu: number): string {
  if (cfg.cpus_per_vcpu) return cfg.cpus_per_vcpu[vcpu] ?? 'all';
  return cfg.cpus ?? 'all';
}

export function softSpec(cfg: DomainConfig, vcpu: number): string {
  if (cfg.cpus_soft_per_vcpu) return cfg.cpus_soft_per_vcpu[vcpu] ?? 'all';
  return cfg.cpus_soft ?? 'all';
}

/** xl's print_bitmap: "all" when every host CPU is in it, else the list. */
export function showCpus(cpus: readonly number[], host: HostCpus): string {
  if (host.online.every((c) => cpus.includes(c))) return 'all';
  return cpus.length === 0 ? 'none' : formatCpuSet(cpus);
}

type Which = 'hard' | 'soft';

const FIELDS: Record<Which, { one: 'cpus' | 'cpus_soft'; per: 'cpus_per_vcpu' | 'cpus_soft_per_vcpu' }> = {
  hard: { one: 'cpus', per: 'cpus_per_vcpu' },
  soft: { one: 'cpus_soft', per: 'cpus_soft_per_vcpu' },
};

/**
 * The config after `vcpu-pin D <vcpu|all> <spec>`: "all" vCPUs sets the one
 * string; one vCPU turns it into the list form (one entry per possible vCPU),
 * folded back into one string when every entry is the same. "all" CPUs is
 * stored as no pinning.
 */
export function pinConfig(cfg: DomainConfig, which: Which, vcpu: number | 'all', spec: string): DomainConfig {
  const f = FIELDS[which];
  const out: DomainConfig = { ...cfg };
  const current = (i: number) => (which === 'hard' ? hardSpec(cfg, i) : softSpec(cfg, i));
  const per =
    vcpu === 'all'
      ? Array.from({ length: cfg.maxvcpus }, () => spec)
      : Array.from({ length: cfg.maxvcpus }, (_, i) => (i === vcpu ? spec : current(i)));
  delete out[f.one];
  delete out[f.per];
  if (per.every((s) => s === per[0])) {
    if (per[0] !== 'all') out[f.one] = per[0];
  } else out[f.per] = per;
  return out;
}
