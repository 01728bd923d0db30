// Coverage feedback from V8's precise block coverage, read through the
// inspector of this very thread. With callCount on, every take returns the
// counts since the previous take and resets them, so one take after an input
// (or a batch) says which blocks it ran. A block is (file, start, end) of a
// range V8 reports; a function V8 never compiled is one block until it runs.

import { Session } from 'node:inspector';
import { fileURLToPath } from 'node:url';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  url: string;
  functions: Array<{ ranges: Range[] }>;
}

export class BlockCoverage {
  private readonly session = new Session();
  /** Every block seen so far in the target's files (the denominator). */
  private readonly known = new Set<string>();
  /** Blocks some input ran. */
  private readonly hit = new Set<string>();
  private readonly fileOf = new Map<string, string | null>();
  /** Known blocks by file, for finding the count of one V8 did not report this time. */
  private readonly blocks = new Map<string, Array<{ start: number; end: number; key: string }>>();

  private prefixes: readonly string[] = [];

  constructor(private readonly root: string) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /** Which files count (set once the target is loaded, after coverage was switched on). */
  setFiles(prefixes: readonly string[]): void {
    this.prefixes = prefixes;
    this.fileOf.clear();
  }

  /** The session is in-process: the reply comes back before post() returns. */
  private post(method: string, params?: object): unknown {
    let out: unknown;
    let err: Error | null = null;
    let done = false;
    this.session.post(method, params, (e, r) => {
      err = e;
      out = r;
      done = true;
    });
    if (!done) throw new Error(`inspector ${method} did not answer synchronously`);
    if (err) throw err;
    return out;
  }

  /** The repository-relative path of a script URL if it is one of the target's files. */
  private targetFile(url: string): string | null {
    let f = this.fileOf.get(url);
    if (f !== undefined) return f;
    f = null;
    if (url.startsWith('file://')) {
      const p = fileURLToPath(url);
      if (p.startsWith(this.root)) {
        const rel = p.slice(this.root.length);
        if (this.prefixes.some((x) => rel.startsWith(x))) f = rel;
      }
    }
    this.fileOf.set(url, f);
    return f;
  }

  /**
   * Takes the counts since the last take; returns how many blocks ran for the first time (0: nothing new).
   * V8 leaves out a nested range whose count equals its parent's, so a block seen once (e.g. an `if`
   * body with count 0) may be missing from a later take: it then has the count of the innermost
   * range that contains it.
   */
  take(record = true): number {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    let fresh = 0;
    const newly: string[] = [];
    for (const s of result) {
      const file = this.targetFile(s.url);
      if (!file) continue;
      let blocks = this.blocks.get(file);
      if (!blocks) {
        blocks = [];
        this.blocks.set(file, blocks);
      }
      const ranges: Range[] = [];
      const reported = new Set<string>();
      for (const fn of s.functions) {
        for (const r of fn.ranges) {
          const k = `${file}:${r.startOffset}:${r.endOffset}`;
          ranges.push(r);
          reported.add(k);
          if (!this.known.has(k)) {
            this.known.add(k);
            blocks.push({ start: r.startOffset, end: r.endOffset, key: k });
          }
          if (r.count > 0 && !this.hit.has(k)) newly.push(k);
        }
      }
      for (const b of blocks) {
        if (this.hit.has(b.key) || reported.has(b.key)) continue;
        let inner: Range | undefined;
        for (const r of ranges) {
          if (
            r.startOffset <= b.start &&
            b.end <= r.endOffset &&
            (!inner || r.endOffset - r.startOffset < inner.endOffset - inner.startOffset)
          )
            inner = r;
        }
        if (inner && inner.count > 0) newly.push(b.key);
      }
    }
    for (const k of newly) {
      if (this.hit.has(k)) continue;
      fresh++;
      if (record) this.hit.add(k);
    }
    return fresh;
  }

  get covered(): number {
    return this.hit.size;
  }

  get total(): number {
    return this.known.size;
  }

  /** Covered and known blocks per file. */
  perFile(): Record<string, { covered: number; total: number }> {
    const out: Record<string, { covered: number; total: number }> = {};
    for (const k of this.known) {
      const f = k.slice(0, k.indexOf(':'));
      out[f] ??= { covered: 0, total: 0 };
      out[f].total++;
      if (this.hit.has(k)) out[f].covered++;
    }
    return out;
  }

  close(): void {
    this.session.disconnect();
  }
}
