// What bench/io.ts hands each of its sections (bench/io-disk.ts, bench/io-net.ts):
// the shared options, the cleanup registry and a log. Each section measures its
// own kind of I/O and writes its own `## ` section of docs/benchmarks.md.

import type { Cleanup } from './cleanup.ts';

export interface IoSectionOptions {
  rounds: number;
  /** Write docs/benchmarks.md (false with --no-doc). */
  doc: boolean;
  /** Contender ids to run (--only), or undefined for all. */
  only?: ReadonlySet<string>;
  root: string;
  cleanup: Cleanup;
  log: (s: string) => void;
}

/** A section module exports `runSection`. */
export type IoSection = (o: IoSectionOptions) => Promise<void>;
