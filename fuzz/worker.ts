// The fuzz loop, in a worker thread so the main thread can stop a hung input
// (a synchronous endless loop cannot be interrupted from inside). Coverage is
// switched on before the target's modules load.

import { parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { BlockCoverage } from './coverage.ts';
import { Mutator, Rng } from './mutate.ts';
import { SAB_INPUT, SAB_MAX_INPUT, SLOT_BUSY, SLOT_EXECS, SLOT_LEN, type ToMain, type WorkerData } from './protocol.ts';
import type { FuzzTarget } from './target.ts';
import { TARGETS } from './targets/index.ts';

const wd = workerData as WorkerData;
const post = (m: ToMain) => parentPort?.postMessage(m);
const slots = new Int32Array(wd.sab, 0, 4);
const shared = new Uint8Array(wd.sab, SAB_INPUT, SAB_MAX_INPUT);

class Timeout extends Error {
  override name = 'Timeout';
}

/** What identifies one bug: the error's type, its message without numbers, and where it was thrown. */
export function signature(e: unknown): string {
  if (!(e instanceof Error)) return `non-error ${typeof e}`;
  const at =
    (e.stack ?? '')
      .split('\n')
      .find((l) => /\/(src|fuzz)\//.test(l) && !l.includes('/fuzz/worker.ts') && !l.includes('/fuzz/target.ts')) ?? '';
  const where = at.replace(/^.*\/((src|fuzz)\/[^:)]+:\d+).*$/, '$1');
  // The place identifies a crash; the message only for broken invariants (several per line are rare,
  // but a TypeError's message carries the input's values).
  const what = e.name === 'InvariantViolation' ? `: ${e.message.replace(/\d+/g, 'N').slice(0, 60)}` : '';
  return `${e.name}${what} @ ${where}`;
}

let current: Buffer = Buffer.alloc(0);
let execs = 0;
/** An exception no one caught (a socket handler's, a stray promise's) while an input ran: that input's crash. */
let stray: unknown;
let running = false;

function mark(input: Buffer): void {
  current = input;
  const n = Math.min(input.length, SAB_MAX_INPUT);
  shared.set(input.subarray(0, n));
  Atomics.store(slots, SLOT_LEN, n);
  Atomics.store(slots, SLOT_BUSY, 1);
}

async function exec(t: FuzzTarget, input: Buffer): Promise<unknown> {
  mark(input);
  stray = undefined;
  running = true;
  try {
    const r = t.run(Buffer.from(input));
    if (r instanceof Promise) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        r,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Timeout(`input ran over ${t.timeoutMs ?? 2000} ms`)),
            t.timeoutMs ?? 2000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
      // Let handlers the input set off (socket data, timers due now) run before judging it.
      await new Promise((r) => setImmediate(r));
    }
    return stray;
  } catch (e) {
    return e ?? new Error('thrown undefined');
  } finally {
    running = false;
    Atomics.store(slots, SLOT_BUSY, 0);
    Atomics.store(slots, SLOT_EXECS, ++execs);
  }
}

/** Removes ranges while the input still fails the same way (bounded in runs and time). */
async function minimise(t: FuzzTarget, input: Buffer, sig: string): Promise<Buffer> {
  let best = input;
  let runs = 0;
  const until = Date.now() + (wd.minimiseMs ?? 10_000);
  for (let chunk = Math.max(1, best.length >> 1); chunk >= 1; chunk >>= 1) {
    for (let i = 0; i < best.length && runs < 5000 && Date.now() < until; ) {
      const cand = Buffer.concat([best.subarray(0, i), best.subarray(i + chunk)]);
      runs++;
      const e = await exec(t, cand);
      if (e !== undefined && signature(e) === sig) best = cand;
      else i += chunk;
    }
    if (chunk === 1) break;
  }
  return best;
}

async function main(): Promise<void> {
  const coverage = new BlockCoverage(wd.root);
  const t = await TARGETS[wd.target]?.();
  if (!t) throw new Error(`no target ${wd.target}`);
  await t.ready;
  coverage.setFiles(t.files);
  coverage.take(false);
  const reported = new Set<string>(wd.knownCrashes);
  const onCrash = async (input: Buffer, e: unknown, kind: string) => {
    const sig = signature(e);
    if (reported.has(sig)) return;
    reported.add(sig);
    const small = wd.minimise === false ? input : await minimise(t, input, sig);
    post({ kind: 'stats', execs, covered: coverage.covered, total: coverage.total, corpus: corpus.length });
    post({
      kind: 'crash',
      crash: kind,
      signature: sig,
      message: e instanceof Error ? (e.stack ?? e.message) : String(e),
      input: small,
    });
  };
  const onStray = (e: unknown) => {
    if (running) stray ??= e;
    else void onCrash(current, e, 'uncaught');
  };
  process.on('uncaughtException', onStray);
  process.on('unhandledRejection', onStray);

  const rng = new Rng(wd.seed >>> 0);
  const maxLen = Math.min(t.maxLen ?? 4096, SAB_MAX_INPUT);
  const mutator = new Mutator(rng, t.dict ?? [], maxLen);
  const corpus: Buffer[] = [];
  const seeds = wd.corpus.map((b) => Buffer.from(b));
  if (seeds.length === 0) seeds.push(Buffer.alloc(0));
  for (const s of seeds) {
    const e = await exec(t, s);
    if (e !== undefined) await onCrash(s, e, e instanceof Timeout ? 'timeout' : 'crash');
    coverage.take();
    corpus.push(s);
  }
  const deadline = wd.deadline;
  let generated: Uint8Array[] = [];
  let genSeed = wd.seed;
  let lastStats = 0;
  let batch = 1;
  // Time of one take vs one exec decides how many inputs share a take.
  let takeMs = 1;
  let execMs = 1;
  const stats = () =>
    post({ kind: 'stats', execs, covered: coverage.covered, total: coverage.total, corpus: corpus.length });
  while (Date.now() < deadline) {
    const inputs: Buffer[] = [];
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) {
      let input: Buffer;
      if (t.generate && rng.chance(0.15)) {
        if (generated.length === 0) generated = fc.sample(t.generate, { numRuns: 64, seed: genSeed++ });
        input = Buffer.from(generated.pop() as Uint8Array).subarray(0, maxLen);
      } else {
        // Newer entries are more often the parent: they are the frontier.
        const pick = rng.chance(0.5)
          ? corpus.length - 1 - rng.below(Math.min(corpus.length, 16))
          : rng.below(corpus.length);
        input = mutator.mutate(corpus[pick] as Buffer, corpus[rng.below(corpus.length)]);
      }
      inputs.push(input);
      const e = await exec(t, input);
      if (e !== undefined) await onCrash(input, e, e instanceof Timeout ? 'timeout' : 'crash');
    }
    const t1 = performance.now();
    const fresh = coverage.take(batch === 1);
    const t2 = performance.now();
    execMs = execMs * 0.7 + ((t1 - t0) / batch) * 0.3;
    takeMs = takeMs * 0.7 + (t2 - t1) * 0.3;
    if (fresh > 0) {
      if (batch === 1) {
        corpus.push(inputs[0] as Buffer);
        post({ kind: 'new', input: inputs[0] as Buffer });
      } else {
        // Which input of the batch found it: replay each with its own take.
        for (const input of inputs) {
          await exec(t, input);
          if (coverage.take() > 0) {
            corpus.push(input);
            post({ kind: 'new', input });
          }
        }
      }
    }
    batch = Math.max(1, Math.min(64, Math.round(takeMs / Math.max(execMs, 0.001))));
    if (Date.now() - lastStats > 1000) {
      lastStats = Date.now();
      stats();
    }
  }
  await t.close?.();
  post({
    kind: 'done',
    execs,
    covered: coverage.covered,
    total: coverage.total,
    corpus: corpus.length,
    perFile: coverage.perFile(),
  });
}

main().catch((e: unknown) => {
  post({ kind: 'fatal', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
});
