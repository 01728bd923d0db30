// CPU list syntax of `cpus=`, `cpus_soft=` and `vcpu-pin` (xl_parse.c parse_cpurange):
// comma-separated items, each `all`, `N`, `N-M`, `node:N[-M]` / `nodes:N[-M]`,
// optionally prefixed by `^` to remove them ("^all" is refused, as upstream does).

import { configError } from './location.ts';

/** Xen's largest NR_CPUS; anything above is surely a typo. */
export const MAX_CPU = 4095;

export interface CpuListItem {
  exclude: boolean;
  /** The item names NUMA nodes rather than CPUs. */
  nodes: boolean;
  /** `all` (from/to unused). */
  all: boolean;
  from: number;
  to: number;
}

const HINT = 'a CPU list looks like "all", "0-3,5,^1" or "nodes:0,^2"';

export function parseCpuList(spec: string): CpuListItem[] {
  // Upstream tokenises with strtok, which skips empty items; an entirely empty list is not a list.
  const parts = spec.split(',').filter((p) => p !== '');
  if (parts.length === 0) throw configError('empty CPU list', undefined, HINT);
  return parts.map((part) => {
    let rest = part;
    const exclude = rest.startsWith('^');
    if (exclude) rest = rest.slice(1);
    let nodes = false;
    for (const prefix of ['nodes:', 'node:']) {
      if (rest.startsWith(prefix)) {
        nodes = true;
        rest = rest.slice(prefix.length);
        break;
      }
    }
    if (rest === 'all') {
      if (exclude) throw configError(`can't combine '^' and 'all' in '${part}'`, undefined, HINT);
      return { exclude, nodes, all: true, from: 0, to: 0 };
    }
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(rest);
    if (!m) throw configError(`invalid CPU range '${part}'`, undefined, HINT);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw configError(`invalid CPU range '${part}': ${to} is below ${from}`, undefined, HINT);
    if (to > MAX_CPU) throw configError(`CPU ${to} in '${part}' is out of range (0-${MAX_CPU})`, undefined, HINT);
    return { exclude, nodes, all: false, from, to };
  });
}

/**
 * The CPUs a list selects on a host with `nCpus` CPUs, applying items left to
 * right as upstream does; `nodeCpus` maps a NUMA node to its CPUs (none if absent).
 */
export function expandCpuList(
  items: readonly CpuListItem[],
  nCpus: number,
  nodeCpus: (node: number) => readonly number[] = () => [],
): number[] {
  const set = new Set<number>();
  for (const it of items) {
    let cpus: number[] = [];
    if (it.all) cpus = Array.from({ length: nCpus }, (_, i) => i);
    else {
      for (let i = it.from; i <= it.to; i++) {
        if (it.nodes) cpus.push(...nodeCpus(i));
        else cpus.push(i);
      }
    }
    for (const c of cpus) {
      if (c >= nCpus) continue;
      if (it.exclude) set.delete(c);
      else set.add(c);
    }
  }
  return [...set].sort((a, b) => a - b);
}
