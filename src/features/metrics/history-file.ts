// A domain's chart history on disk, so a restarted daemon (even one killed -9)
// shows the last 10 minutes again. One JSON line per sample, appended, in the
// domain's run directory (removed with the domain); the file is rewritten with
// the kept samples only once it holds twice as many, so it stays small.

import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const FILE = 'metrics.jsonl';

/** T is one sample; `valid` says whether a parsed line is one (a damaged file is not trusted). */
export class HistoryFile<T> {
  private lines = 0;
  private readonly path: string;

  constructor(
    runDir: string,
    private readonly keep: number,
    private readonly valid: (v: unknown) => v is T,
  ) {
    this.path = join(runDir, FILE);
  }

  /** The newest `keep` samples an earlier daemon wrote (none when there is no file or it is damaged). */
  load(): T[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    const out: T[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const v: unknown = JSON.parse(line);
        if (this.valid(v)) out.push(v);
      } catch {
        /* a line cut short by a crash: skip it */
      }
    }
    this.lines = out.length;
    return out.slice(-this.keep);
  }

  /** Append one sample; `all` is what is kept in memory, written whole when the file has grown too long. */
  append(s: T, all: readonly T[]): void {
    try {
      if (this.lines >= this.keep * 2) {
        writeFileSync(this.path, all.map((x) => `${JSON.stringify(x)}\n`).join(''));
        this.lines = all.length;
      } else {
        appendFileSync(this.path, `${JSON.stringify(s)}\n`);
        this.lines++;
      }
    } catch {
      /* the run directory is gone (domain torn down) or the disk is full: charts only */
    }
  }
}
