// The compiled check of configs that arrive as JSON (API create, save files,
// migrations): it must accept what the parser produces and refuse, with the
// path of the first problem, what the interpreted TypeBox check refuses.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Value } from 'typebox/value';
import { configProblem } from '../../src/config/config-check.ts';
import { DomainConfigSchema } from '../../src/config/domain-schema.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { configToJson } from '../../src/config/validate.ts';
import { XenodeError } from '../../src/errors.ts';
import { parseConfigJson } from '../../src/features/saverestore/domain-transfer.ts';

function parsed(text: string): Record<string, unknown> {
  const { config } = loadConfigText(text, { file: 'vm.cfg', baseDir: '/', checkFiles: false });
  return JSON.parse(configToJson(config)) as Record<string, unknown>;
}

describe('compiled config check', () => {
  const good = [
    'name = "a"\nmemory = 256\n',
    'name = "b"\nmemory = 512\nmaxmem = 1024\nvcpus = 2\nmaxvcpus = 4\non_crash = "restart"\n',
    'name = "c"\nvif = ["mac=00:16:3e:01:02:03,bridge=br0"]\ncpu_weight = 512\ncap = 50\n',
  ];

  it('accepts every config the parser produces, as the interpreted check does', () => {
    for (const text of good) {
      const c = parsed(text);
      assert.equal(Value.Check(DomainConfigSchema, c), true, text);
      assert.equal(configProblem(c), undefined, text);
    }
  });

  it('refuses what the interpreted check refuses, naming the first bad path', () => {
    const base = parsed(good[0] as string);
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...base, memory: 'lots' }, /^\/memory: /],
      [{ ...base, on_crash: 'explode' }, /^\/on_crash: /],
      [{ ...base, vif: [{ mac: 'not-a-mac' }] }, /^\/vif\/0/],
      [{ ...base, surprise: 1 }, /^\/: |surprise/],
    ];
    for (const [c, where] of bad) {
      assert.equal(Value.Check(DomainConfigSchema, c), false);
      const problem = configProblem(c);
      assert.ok(problem, JSON.stringify(c));
      assert.match(problem, where);
    }
    assert.ok(configProblem(null));
    assert.ok(configProblem('name = "a"'));
  });

  it('a save file or migration with a bad config is one config error naming where it came from', () => {
    const c = { ...parsed(good[0] as string), vcpus: -1 };
    assert.throws(
      () => parseConfigJson(c, "save file '/tmp/x.save'"),
      (e: unknown) =>
        e instanceof XenodeError &&
        e.kind === 'config' &&
        /^save file '\/tmp\/x\.save': invalid domain config \(\/vcpus: /.test(e.message),
    );
  });
});
