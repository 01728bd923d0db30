// Each domain's event history: every change made through the API (who asked,
// what, and whether it worked) and every state it went through. Kept per
// domain UUID (domids are reused), in memory and appended to one JSON-lines
// file in the daemon's directory so a restart keeps it; the file is cut back
// to its newest half when it grows past a bound.

import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

export interface HistoryEntry {
  /** ms since epoch */
  t: number;
  uuid: string;
  domid: number;
  name: string;
  kind: 'action' | 'state';
  /** The action (pause, block-attach, …) or the state entered (running, paused, gone, …). */
  what: string;
  /** Who asked: the sponsor, "(admin)" added for an admin token; none for state changes. */
  by?: string;
  result?: 'ok' | 'error';
  /** The error's message, kept only when the one who asked is the domain's own sponsor. */
  detail?: string;
}

const PER_DOMAIN = 500;
const FILE_MAX_LINES = 20_000;

export class HistoryLog {
  private byUuid = new Map<string, HistoryEntry[]>();
  private file?: string;
  private lines = 0;

  /** Read what an earlier daemon wrote, then append to the same file. */
  open(file: string): void {
    this.file = file;
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const e = JSON.parse(line) as HistoryEntry;
        if (typeof e.uuid === 'string' && typeof e.t === 'number' && typeof e.what === 'string') {
          this.remember(e);
          this.lines++;
        }
      } catch {
        /* a line cut short by a crash */
      }
    }
  }

  add(e: HistoryEntry): void {
    this.remember(e);
    if (!this.file) return;
    try {
      if (this.lines >= FILE_MAX_LINES) {
        const all = [...this.byUuid.values()].flat().sort((a, b) => a.t - b.t);
        const keep = all.slice(-FILE_MAX_LINES / 2);
        writeFileSync(this.file, keep.map((x) => `${JSON.stringify(x)}\n`).join(''));
        this.lines = keep.length;
      } else {
        appendFileSync(this.file, `${JSON.stringify(e)}\n`);
        this.lines++;
      }
    } catch {
      /* a full disk must not fail the action that is being recorded */
    }
  }

  of(uuid: string): HistoryEntry[] {
    return [...(this.byUuid.get(uuid) ?? [])];
  }

  private remember(e: HistoryEntry): void {
    let l = this.byUuid.get(e.uuid);
    if (!l) {
      l = [];
      this.byUuid.set(e.uuid, l);
    }
    l.push(e);
    if (l.length > PER_DOMAIN) l.splice(0, l.length - PER_DOMAIN);
  }
}
