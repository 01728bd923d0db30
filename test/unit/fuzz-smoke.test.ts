// The fuzz harness, briefly, on every target: the committed corpus
// (fuzz/corpus/<target>) replays and a few seconds of coverage-guided mutation
// find no crash. And the harness itself: it finds a planted bug that needs
// coverage feedback, minimises it, and stops a hung input.
// XENODE_FUZZ_SECONDS sets the seconds per target (default 2).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, readCorpus, runFuzz } from '../../fuzz/engine.ts';
import { TARGET_NAMES } from '../../fuzz/targets/index.ts';

const SECONDS = Number(process.env.XENODE_FUZZ_SECONDS ?? 2);
const out = mkdtempSync(join(tmpdir(), 'xn-fuzz-smoke-'));
after(() => rmSync(out, { recursive: true, force: true }));

describe('fuzz harness', () => {
  it('finds a bug behind four nested checks, minimised to the four bytes', async () => {
    const r = await runFuzz({
      target: 'planted',
      seconds: 60,
      seed: 1,
      outDir: join(out, 'planted'),
      corpusDirs: [],
      stopOnCrash: true,
    });
    assert.equal(r.crashes.length, 1, 'one crash found');
    const c = r.crashes[0];
    assert.match(c?.signature ?? '', /^RangeError @ fuzz\/targets\/planted\.ts:\d+/);
    const input = readFileSync(c?.file ?? '');
    assert.deepEqual(
      [...input].map((b) => b & 15),
      [6, 5, 10, 1],
      `minimised: ${input.toString('hex')}`,
    );
    assert.ok(r.covered >= 2 && r.covered <= r.total, `${r.covered}/${r.total} blocks`);
  });

  it('stops an input that never returns and saves it as a hang', async () => {
    const r = await runFuzz({
      target: 'planted-hang',
      seconds: 8,
      seed: 1,
      hangMs: 1000,
      outDir: join(out, 'hang'),
      corpusDirs: [],
      stopOnCrash: true,
    });
    assert.ok(
      r.crashes.some((c) => c.kind === 'hang'),
      JSON.stringify(r.crashes),
    );
    const h = r.crashes.find((c) => c.kind === 'hang');
    assert.equal(readFileSync(h?.file ?? '')[0], 0x48);
  });
});

describe('fuzz smoke: every target on its committed corpus', () => {
  for (const target of TARGET_NAMES) {
    it(`${target}: ${SECONDS} s without a crash`, async () => {
      const seeds = readCorpus([join(ROOT, 'fuzz/corpus', target)]);
      assert.ok(seeds.length > 0, 'a committed corpus');
      const r = await runFuzz({
        target,
        seconds: SECONDS,
        seed: 7,
        outDir: join(out, target),
        corpusDirs: [join(ROOT, 'fuzz/corpus', target)],
      });
      assert.deepEqual(
        r.crashes.map((c) => `${c.signature}\n${c.message.split('\n').slice(0, 4).join('\n')}`),
        [],
      );
      assert.ok(r.execs >= seeds.length, `${r.execs} inputs run`);
      assert.ok(r.covered > 0, 'coverage measured');
    });
  }
});
