// The contract between the lifecycle core and the memory controller: what
// mem-set asks of it and answers. Its own module, so the core names the
// controller without importing it (and, through it, the API).

import type { Domain } from './domain.ts';

export type NoncomplianceAction = 'report' | 'pause' | 'destroy';

/** The outcome of a mem-set with a deadline. */
export interface MemoryVerdict {
  complied: boolean;
  targetKiB: number;
  actualKiB: number;
  toleranceKiB: number;
  deadlineMs: number;
  /** When the verdict was reached, ms after the mem-set. */
  elapsedMs: number;
  /** The consequence applied ('none' when the domain complied or the deadline was cut short). */
  action: 'none' | NoncomplianceAction;
  /** Why there was no real verdict (a later mem-set, the domain went away). */
  note?: string;
}

/** What the memory controller may do to a domain that misses its deadline. */
export interface MemoryActions {
  pause(d: Domain): Promise<void>;
  destroy(d: Domain): Promise<void>;
  touch(d: Domain): void;
}

export interface MemSetOptions {
  deadlineMs?: number;
}

export interface MemSetResult {
  domid: number;
  targetKiB: number;
  actualKiB: number;
  verdict?: MemoryVerdict;
}

/** The memory controller as the core sees it (LifecycleHooks.memoryController). */
export interface MemoryController {
  apply(d: Domain, actions: MemoryActions, o?: MemSetOptions): Promise<MemSetResult>;
  checkMax(d: Domain, mib: number): void;
}
