// Every minimised input the fuzzer saved (fuzz/regressions/<target>/<bug>),
// replayed through its target in the fuzz worker: none may crash again. The
// docs (docs/fuzzing.md) say what each one found and how it was fixed.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT, readCorpus, runFuzz } from '../../fuzz/engine.ts';

const dir = join(ROOT, 'fuzz/regressions');
const out = mkdtempSync(join(tmpdir(), 'xn-fuzz-regr-'));
after(() => rmSync(out, { recursive: true, force: true }));

describe('fuzz regressions', () => {
  for (const target of readdirSync(dir).sort()) {
    it(`${target}: ${readCorpus([join(dir, target)]).length} saved reproducer(s) replay without a crash`, async () => {
      const r = await runFuzz({
        target,
        seconds: 0,
        corpusDirs: [join(dir, target)],
        outDir: join(out, target),
        minimise: false,
      });
      assert.ok(r.execs >= readCorpus([join(dir, target)]).length, `ran ${r.execs} inputs`);
      assert.deepEqual(
        r.crashes.map((c) => `${c.signature}\n${c.message.split('\n').slice(0, 4).join('\n')}`),
        [],
      );
    });
  }
});
