// The fuzz engine's main thread: starts the worker, saves what it finds (new
// corpus entries, minimised crashes), watches for hangs and out-of-memory, and
// restarts the worker after either until the time is up.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SAB_INPUT, SAB_MAX_INPUT, SLOT_BUSY, SLOT_EXECS, SLOT_LEN, type ToMain, type WorkerData } from './protocol.ts';

export const ROOT = new URL('..', import.meta.url).pathname;

export interface FuzzOptions {
  target: string;
  seconds: number;
  seed?: number;
  /** Where grown corpus, crashes and stats go (default fuzz/out/<target>). */
  outDir?: string;
  /** Seed directories (default fuzz/corpus/<target> and the out dir's corpus). */
  corpusDirs?: string[];
  /** An input running this long (synchronously) is a hang; default 5 s. */
  hangMs?: number;
  /** Status lines go here (default: none). */
  log?: (line: string) => void;
  /** Old-generation heap bound of the worker, in MiB: beyond it the input is an out-of-memory crash. */
  heapMb?: number;
  minimise?: boolean;
  /** End at the first crash (the harness's own tests). */
  stopOnCrash?: boolean;
}

export interface CrashReport {
  kind: string;
  signature: string;
  file: string;
  message: string;
}

export interface FuzzReport {
  target: string;
  seconds: number;
  cpuSeconds: number;
  execs: number;
  execPerSec: number;
  covered: number;
  total: number;
  corpus: number;
  newEntries: number;
  restarts: number;
  crashes: CrashReport[];
  perFile: Record<string, { covered: number; total: number }>;
}

export function readCorpus(dirs: readonly string[]): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      if (f.startsWith('.') || f.endsWith('.txt') || !statSync(p).isFile()) continue;
      const b = readFileSync(p);
      const h = sha1(b);
      if (!seen.has(h)) {
        seen.add(h);
        out.push(b);
      }
    }
  }
  return out;
}

function sha1(b: Uint8Array): string {
  return createHash('sha1').update(b).digest('hex');
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const out = o.outDir ?? join(ROOT, 'fuzz/out', o.target);
  const corpusOut = join(out, 'corpus');
  const crashDir = join(out, 'crashes');
  mkdirSync(corpusOut, { recursive: true });
  mkdirSync(crashDir, { recursive: true });
  const dirs = o.corpusDirs ?? [join(ROOT, 'fuzz/corpus', o.target), corpusOut];
  const log = o.log ?? (() => undefined);
  const hangMs = o.hangMs ?? 5000;
  const started = Date.now();
  const cpu0 = process.cpuUsage();
  const crashes: CrashReport[] = [];
  const known = new Set<string>();
  let execsBefore = 0;
  let last = { execs: 0, covered: 0, total: 0, corpus: 0 };
  let perFile: FuzzReport['perFile'] = {};
  let newEntries = 0;
  let restarts = 0;
  let fatal = false;
  let seed = o.seed ?? Date.now() & 0x7fffffff;

  const saveCrash = (kind: string, signature: string, message: string, input: Uint8Array) => {
    known.add(signature);
    const file = join(crashDir, `${kind}-${sha1(input).slice(0, 16)}`);
    writeFileSync(file, input);
    writeFileSync(`${file}.txt`, `${signature}\n\n${message}\n`);
    crashes.push({ kind, signature, file, message });
    log(`CRASH (${kind}) ${signature}\n  saved ${file} (${input.length} bytes)`);
  };

  const status = (tag: string) => {
    const secs = (Date.now() - started) / 1000;
    const execs = execsBefore + last.execs;
    const pct = last.total ? ((100 * last.covered) / last.total).toFixed(1) : '0';
    log(
      `${tag} #${execs} cov: ${last.covered}/${last.total} blocks (${pct}%) corp: ${last.corpus} ` +
        `exec/s: ${Math.round(execs / Math.max(secs, 0.001))} crashes: ${crashes.length} t: ${secs.toFixed(0)}s`,
    );
  };

  // One worker at a time; a hang or OOM ends it and the next one picks up the grown corpus.
  for (;;) {
    const left = o.seconds - (Date.now() - started) / 1000;
    if (left <= 0.2 && restarts > 0) break;
    const sab = new SharedArrayBuffer(SAB_INPUT + SAB_MAX_INPUT);
    const slots = new Int32Array(sab, 0, 4);
    const wd: WorkerData = {
      target: o.target,
      root: ROOT,
      seed: seed++,
      deadline: started + o.seconds * 1000,
      corpus: readCorpus(dirs),
      sab,
      knownCrashes: [...known],
      minimise: o.minimise,
    };
    const w = new Worker(new URL('./worker-boot.mjs', import.meta.url), {
      workerData: wd,
      execArgv: process.execArgv,
      resourceLimits: { maxOldGenerationSizeMb: o.heapMb ?? 1024 },
    });
    const ended = await new Promise<'done' | 'restart'>((resolve) => {
      let lastExecs = -1;
      let since = Date.now();
      let finished = false;
      const finish = (how: 'done' | 'restart') => {
        if (finished) return;
        finished = true;
        clearInterval(watch);
        clearInterval(tick);
        resolve(how);
      };
      const currentInput = () => Buffer.from(new Uint8Array(sab, SAB_INPUT, Atomics.load(slots, SLOT_LEN)));
      const watch = setInterval(() => {
        const e = Atomics.load(slots, SLOT_EXECS);
        // The clock runs from the last progress or the last moment seen idle (not from a slow start-up).
        if (e !== lastExecs || Atomics.load(slots, SLOT_BUSY) === 0) {
          lastExecs = e;
          since = Date.now();
        } else if (Atomics.load(slots, SLOT_BUSY) === 1 && Date.now() - since > hangMs) {
          saveCrash('hang', `hang over ${hangMs} ms`, `no progress for ${hangMs} ms`, currentInput());
          void w.terminate();
          finish('restart');
        }
      }, 100);
      const tick = setInterval(() => status('pulse'), 10_000);
      w.on('message', (m: ToMain) => {
        switch (m.kind) {
          case 'new': {
            newEntries++;
            writeFileSync(join(corpusOut, sha1(m.input)), m.input);
            break;
          }
          case 'crash':
            saveCrash(m.crash, m.signature, m.message, m.input);
            if (o.stopOnCrash) {
              fatal = true;
              finish('done');
            }
            break;
          case 'stats':
            last = m;
            break;
          case 'done':
            last = m;
            perFile = m.perFile;
            finish('done');
            break;
          case 'fatal':
            log(`worker failed: ${m.message}`);
            crashes.push({ kind: 'fatal', signature: 'harness', file: '', message: m.message });
            finish('done');
            break;
        }
      });
      w.on('error', (e) => {
        if (Atomics.load(slots, SLOT_EXECS) === 0 && restarts === 0) {
          // It never ran an input: the harness is broken, not the target.
          log(`worker failed: ${e.stack ?? e.message}`);
          crashes.push({ kind: 'fatal', signature: 'harness', file: '', message: e.message });
          fatal = true;
          finish('done');
          return;
        }
        const code = (e as NodeJS.ErrnoException).code;
        const kind = code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'oom' : 'worker-error';
        saveCrash(kind, `${kind}: ${e.message.slice(0, 80)}`, e.stack ?? e.message, currentInput());
        finish('restart');
      });
      w.on('exit', () => finish('restart'));
    });
    execsBefore += ended === 'done' ? 0 : Atomics.load(slots, SLOT_EXECS);
    if (ended === 'done' || fatal) {
      execsBefore += last.execs;
      last = { ...last, execs: 0 };
      await w.terminate();
      break;
    }
    await w.terminate();
    restarts++;
    if (o.stopOnCrash && crashes.length > 0) break;
    last = { ...last, execs: 0 };
    if (o.seconds - (Date.now() - started) / 1000 <= 0.2) break;
  }
  const seconds = (Date.now() - started) / 1000;
  const c = process.cpuUsage(cpu0);
  const report: FuzzReport = {
    target: o.target,
    seconds,
    cpuSeconds: (c.user + c.system) / 1e6,
    execs: execsBefore,
    execPerSec: execsBefore / Math.max(seconds, 0.001),
    covered: last.covered,
    total: last.total,
    corpus: last.corpus,
    newEntries,
    restarts,
    crashes,
    perFile,
  };
  status('DONE');
  writeFileSync(join(out, 'stats.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}
