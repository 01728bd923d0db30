// What a fuzz target is: a function taking bytes that either returns (the input
// was handled or cleanly refused) or throws (a crash: an unexpected exception
// type or a broken invariant). Targets build fresh state for every input, so an
// input replays the same way alone as in a batch.

import type fc from 'fast-check';

export interface FuzzTarget {
  readonly name: string;
  /** One line: what it feeds and what must hold. */
  readonly about: string;
  /** Repository-relative path prefixes whose blocks count as this target's coverage. */
  readonly files: readonly string[];
  /** Tokens the mutator inserts or overwrites with (magic numbers, keywords, headers). */
  readonly dict?: readonly (string | Uint8Array)[];
  /** Structure-aware inputs (mixed in with mutations of the corpus). */
  readonly generate?: fc.Arbitrary<Uint8Array>;
  /** Longest input the mutator makes (default 4096). */
  readonly maxLen?: number;
  /** An input running longer than this is a hang (default 2000 ms). */
  readonly timeoutMs?: number;
  /** Resolves when the target's set-up (a server, an app) is done; awaited before the first input. */
  readonly ready?: Promise<void>;
  run(data: Buffer): void | Promise<void>;
  /** Release what the target holds (servers, temp files). */
  close?(): void | Promise<void>;
}

/** A broken invariant: thrown by a target, always a crash. */
export class InvariantViolation extends Error {
  override name = 'InvariantViolation';
}

export function invariant(ok: unknown, what: string): asserts ok {
  if (!ok) throw new InvariantViolation(what);
}

/** Runs `fn`; an exception `clean` accepts is a clean refusal, anything else propagates (a crash). */
export async function refusesCleanly(fn: () => unknown, clean: (e: unknown) => boolean): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!clean(e)) throw e;
  }
}

export function refusesCleanlySync(fn: () => unknown, clean: (e: unknown) => boolean): void {
  try {
    fn();
  } catch (e) {
    if (!clean(e)) throw e;
  }
}
