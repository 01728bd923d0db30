// Where a new (or failed-over) domain goes: the live hosts with the memory for
// it, off the hosts of the domains it must avoid, fewest domains first, then most
// free memory, then lowest load, then name (so every host computes the same).

import { XenodeError } from '../../errors.ts';
import type { HostRecord, IndexEntry } from './model.ts';

export interface Placement {
  host: HostRecord;
  reason: string;
}

export function place(
  hosts: HostRecord[],
  index: IndexEntry[],
  memoryMiB: number,
  antiAffinity: string[] = [],
): Placement {
  if (hosts.length === 0) throw new XenodeError('state', 'no live host in the pool');
  const avoid = new Set(index.filter((e) => antiAffinity.includes(e.name)).map((e) => e.host));
  const notes: string[] = [];
  const fits: Array<{ h: HostRecord; free: number; count: number }> = [];
  for (const h of hosts) {
    const mine = index.filter((e) => e.host === h.name && e.state !== 'failed');
    const used = mine.reduce((s, e) => s + e.memory, 0);
    const free = h.memTotalMiB - used;
    if (avoid.has(h.name)) notes.push(`${h.name}: anti-affinity`);
    else if (free < memoryMiB) notes.push(`${h.name}: ${free} MiB free < ${memoryMiB}`);
    else fits.push({ h, free, count: mine.length });
  }
  fits.sort((x, y) => x.count - y.count || y.free - x.free || x.h.load - y.h.load || (x.h.name < y.h.name ? -1 : 1));
  const best = fits[0];
  if (!best) {
    throw new XenodeError('state', `no pool host can take a ${memoryMiB} MiB domain (${notes.join('; ')})`, {
      hint: notes.some((n) => n.includes('anti-affinity'))
        ? 'name fewer domains with --anti-affinity, or add a host'
        : 'free memory on a host or add one',
    });
  }
  for (const f of fits.slice(1))
    notes.push(`${f.h.name}: ${f.count} domain${f.count === 1 ? '' : 's'}, ${f.free} MiB free`);
  const reason = `${best.count} domain${best.count === 1 ? '' : 's'}, ${best.free} MiB free of ${best.h.memTotalMiB}, load ${best.h.load.toFixed(2)}${notes.length ? ` (${notes.join('; ')})` : ''}`;
  return { host: best.h, reason };
}
