// What a QEMU process costs the host in memory. Guest RAM is a shared memfd, so
// plain VmRSS misses nothing but the shared part must be counted: smaps_rollup's
// Rss includes shared file and shmem pages, Pss splits them between sharers.

import { readFileSync } from 'node:fs';

export interface ProcessMemory {
  rssKiB: number;
  pssKiB: number;
  /** Shared-memory (memfd, /dev/shm) pages, proportional share. */
  pssShmemKiB: number;
}

export function processMemory(pid: number): ProcessMemory | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rssKiB: field('Rss'), pssKiB: field('Pss'), pssShmemKiB: field('Pss_Shmem') };
}
