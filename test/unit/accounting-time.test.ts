// Time ranges of `xenode account` and `xenode bill`: ISO times and relative
// ones like -1h, and the malformed input a user (or a hostile sponsor) may send.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XenodeError } from '../../src/errors.ts';
import { parseRange, parseTime } from '../../src/features/accounting/time-range.ts';

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);

describe('parseTime', () => {
  it('reads relative times back from now', () => {
    assert.equal(parseTime('-1h', NOW), NOW - 3_600_000);
    assert.equal(parseTime('-30m', NOW), NOW - 1_800_000);
    assert.equal(parseTime('-90s', NOW), NOW - 90_000);
    assert.equal(parseTime('-2d', NOW), NOW - 2 * 86_400_000);
    assert.equal(parseTime('-1w', NOW), NOW - 7 * 86_400_000);
    assert.equal(parseTime('-1.5h', NOW), NOW - 5_400_000);
    assert.equal(parseTime('now', NOW), NOW);
  });

  it('reads ISO times; one without a zone is UTC', () => {
    assert.equal(parseTime('2025-05-31', NOW), Date.UTC(2025, 4, 31));
    assert.equal(parseTime('2025-05-31T10:20', NOW), Date.UTC(2025, 4, 31, 10, 20));
    assert.equal(parseTime('2025-05-31T10:20:30Z', NOW), Date.UTC(2025, 4, 31, 10, 20, 30));
    assert.equal(parseTime('2025-05-31T10:20:30.250+02:00', NOW), Date.UTC(2025, 4, 31, 8, 20, 30, 250));
    assert.equal(parseTime('2025-05-31 10:20:30', NOW), Date.UTC(2025, 4, 31, 10, 20, 30));
  });

  it('refuses what it cannot read, with a usage error and a hint', () => {
    for (const bad of [
      '',
      'yesterday',
      '1h',
      '-h',
      '-1y',
      '--1h',
      '-1e3s',
      '2025-13-01',
      '2025-02-30',
      '2025-05-31T25:00',
      '2025-05-31T10:20:30+25:00',
      '-99999999999d',
      'x'.repeat(5000),
      '2025-05-31T10:20:30Z; DROP TABLE usage',
    ]) {
      assert.throws(
        () => parseTime(bad, NOW),
        (e: unknown) =>
          e instanceof XenodeError && e.kind === 'usage' && e.hint !== undefined && e.message.length < 200,
        bad.slice(0, 40),
      );
    }
  });
});

describe('parseRange', () => {
  it('defaults: since the beginning, until now', () => {
    assert.deepEqual(parseRange(undefined, undefined, NOW), { since: undefined, until: NOW });
  });

  it('refuses a range that ends before it starts', () => {
    assert.throws(() => parseRange('-1h', '-2h', NOW), /before/);
    assert.deepEqual(parseRange('-2h', '-1h', NOW), { since: NOW - 7_200_000, until: NOW - 3_600_000 });
  });
});
