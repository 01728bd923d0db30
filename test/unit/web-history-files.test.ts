// Issue 24: what the daemon keeps on disk for the web UI: a domain's chart
// samples (metrics history file) and its event history log, both read back
// by the next daemon, damaged lines skipped, and bounded.

import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HistoryLog } from '../../src/features/history/log.ts';
import { HistoryFile } from '../../src/features/metrics/history-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'xn-hist-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface S {
  t: number;
}
const isS = (v: unknown): v is S => typeof (v as S | null)?.t === 'number';

describe('web history files', () => {
  it('a metrics history file is read back, damaged lines skipped, and stays bounded', () => {
    const f = new HistoryFile<S>(dir, 3, isS);
    assert.deepEqual(f.load(), []);
    const kept: S[] = [];
    for (let t = 1; t <= 10; t++) {
      kept.push({ t });
      if (kept.length > 3) kept.shift();
      f.append({ t }, kept);
    }
    appendFileSync(join(dir, 'metrics.jsonl'), '{"t": 11, "cut sho');
    assert.deepEqual(new HistoryFile<S>(dir, 3, isS).load(), [{ t: 8 }, { t: 9 }, { t: 10 }]);
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).length;
    assert.ok(lines <= 7, `${lines} lines on disk for 3 kept`);
  });

  it('a gone run directory costs nothing', () => {
    const f = new HistoryFile<S>(join(dir, 'no-such-dir'), 3, isS);
    assert.deepEqual(f.load(), []);
    f.append({ t: 1 }, [{ t: 1 }]); // must not throw
  });

  it('the event history is per UUID, survives a reopen, and ignores damage', () => {
    const file = join(dir, 'history.jsonl');
    const a = new HistoryLog();
    a.open(file);
    a.add({ t: 1, uuid: 'u1', domid: 1, name: 'x', kind: 'action', what: 'pause', by: 'alice', result: 'ok' });
    a.add({ t: 2, uuid: 'u2', domid: 1, name: 'y', kind: 'state', what: 'running' });
    appendFileSync(file, 'not json\n{"uuid": 5}\n');
    const b = new HistoryLog();
    b.open(file);
    assert.deepEqual(
      b.of('u1').map((e) => e.what),
      ['pause'],
    );
    assert.deepEqual(
      b.of('u2').map((e) => e.what),
      ['running'],
    );
    assert.deepEqual(b.of('nope'), []);
  });
});
