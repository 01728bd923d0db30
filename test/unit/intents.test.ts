// The intent journal (issue 14): an entry per operation in the domain's run
// directory, written before each step, read back whole or not at all, removed
// when the operation is over; XENODE_CRASH_AT kills the process at a step.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  clearIntent,
  type MemSetIntent,
  type MigrateOutIntent,
  readIntent,
  readIntents,
  recordStep,
  type SaveIntent,
} from '../../src/toolstack/intents.ts';

const dirs: string[] = [];
function runDir(): string {
  const d = mkdtempSync('/tmp/xn-intents-');
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const save: Omit<SaveIntent, 'step' | 'at'> = {
  op: 'save',
  file: '/tmp/x.save',
  partial: '/tmp/x.save.partial',
  status: '/tmp/x.save.partial.status',
  ino: 0,
  aside: '/tmp/x.save.replaced-1',
  destroying: true,
  leavePaused: false,
  wasRunning: true,
};

describe('intent journal', () => {
  it('records each step over the last one, and reads it back', () => {
    const dir = runDir();
    let it = recordStep<SaveIntent>(dir, save, 'begin');
    assert.equal(it.step, 'begin');
    it = recordStep(dir, { ...it, ino: 42 }, 'paused');
    const back = readIntent<SaveIntent>(dir, 'save');
    assert.equal(back?.step, 'paused');
    assert.equal(back?.ino, 42);
    assert.ok(typeof back?.at === 'number' && back.at <= Date.now());
    // One file per operation, nothing left over from the atomic write.
    assert.deepEqual(readdirSync(dir), ['intent-save.json']);
  });

  it('keeps one entry per operation side by side and removes each on its own', () => {
    const dir = runDir();
    recordStep<SaveIntent>(dir, save, 'streaming');
    recordStep<MemSetIntent>(
      dir,
      { op: 'mem-set', targetKiB: 131072, direction: 'down', deadlineMs: 1000, started: Date.now() },
      'recorded',
    );
    assert.deepEqual(
      readIntents(dir)
        .intents.map((i) => i.op)
        .sort(),
      ['mem-set', 'save'],
    );
    clearIntent(dir, 'save');
    assert.deepEqual(
      readIntents(dir).intents.map((i) => i.op),
      ['mem-set'],
    );
    assert.equal(readIntent(dir, 'save'), undefined);
    clearIntent(dir, 'save'); // twice is fine
  });

  it('drops (and names) an entry that is torn, foreign or misnamed; ignores a half-written one', () => {
    const dir = runDir();
    writeFileSync(join(dir, 'intent-save.json'), '{"op":"save","st');
    writeFileSync(join(dir, 'intent-migrate-out.json'), JSON.stringify({ op: 'format-disk', step: 'x', at: 1 }));
    writeFileSync(join(dir, 'intent-mem-set.json'), JSON.stringify({ op: 'save', step: 'begin', at: 1 }));
    writeFileSync(join(dir, 'intent-save.json.tmp'), '{');
    writeFileSync(join(dir, 'domain.json'), '{}');
    const r = readIntents(dir);
    assert.deepEqual(r.intents, []);
    assert.deepEqual(r.unreadable.sort(), ['intent-mem-set.json', 'intent-migrate-out.json', 'intent-save.json']);
    assert.deepEqual(readdirSync(dir), ['domain.json'], 'only what is not the journal stays');
  });

  it('reads nothing from a run directory that is gone', () => {
    assert.deepEqual(readIntents('/nonexistent/xenode/run/dir'), { intents: [], unreadable: [] });
    assert.equal(readIntent('/nonexistent/xenode/run/dir', 'save'), undefined);
  });

  it('XENODE_CRASH_AT kills the process right after the named step is on disk, not before', () => {
    const dir = runDir();
    const script = `
      import { recordStep } from ${JSON.stringify(new URL('../../src/toolstack/intents.ts', import.meta.url).pathname)};
      const base = { op: 'migrate-out', name: 'g', target: 'h:1', wasRunning: true };
      let it = recordStep(${JSON.stringify(dir)}, base, 'begin');
      it = recordStep(${JSON.stringify(dir)}, it, 'streaming');
      it = recordStep(${JSON.stringify(dir)}, it, 'completed');
      process.stdout.write('survived');
    `;
    const run = (crashAt: string) =>
      spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: { ...process.env, XENODE_CRASH_AT: crashAt },
        encoding: 'utf8',
      });
    const killed = run('migrate-out.streaming');
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    assert.equal(killed.stdout, '');
    const left = JSON.parse(readFileSync(join(dir, 'intent-migrate-out.json'), 'utf8')) as MigrateOutIntent;
    assert.equal(left.step, 'streaming', 'the step it died at is recorded');

    const other = run('save.begin');
    assert.equal(other.signal, null, other.stderr);
    assert.equal(other.stdout, 'survived');
    assert.equal(readIntent<MigrateOutIntent>(dir, 'migrate-out')?.step, 'completed');
  });
});
