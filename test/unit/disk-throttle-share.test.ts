// The sponsor aggregate's split (issue 16): shares by observed demand that never
// sum above the aggregate, each capped by the disk's own limit, never 0 (which
// QEMU reads as "no limit").

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocateShares, type ShareDemand } from '../../src/features/disks/share.ts';

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe('allocateShares', () => {
  it('splits the aggregate evenly among disks it knows nothing about', () => {
    const m = allocateShares(20_000_000, [{ key: 'a' }, { key: 'b' }]);
    assert.deepEqual([m.get('a'), m.get('b')], [10_000_000, 10_000_000]);
  });

  it('gives an idle disk a little above what it uses and the busy one the rest', () => {
    const m = allocateShares(20_000_000, [
      { key: 'busy', used: 9_900_000, current: 10_000_000 },
      { key: 'idle', used: 100_000, current: 10_000_000 },
    ]);
    assert.equal(sum(m), 20_000_000);
    const idle = m.get('idle') ?? 0;
    assert.ok(idle >= 150_000 && idle < 3_000_000, `idle ${idle}`);
    assert.equal(m.get('busy'), 20_000_000 - idle);
  });

  it('does not give a disk more than its own limit lets it use', () => {
    const m = allocateShares(20_000_000, [{ key: 'capped', cap: 2_000_000 }, { key: 'free' }]);
    assert.equal(m.get('capped'), 2_000_000);
    assert.equal(m.get('free'), 18_000_000);
  });

  it('leaves pinned disks (QEMU not reachable yet) at their share and fits the rest around them', () => {
    const m = allocateShares(1000, [{ key: 'p', pinned: true, current: 700 }, { key: 'a' }, { key: 'b' }]);
    assert.deepEqual([m.get('p'), m.get('a'), m.get('b')], [700, 150, 150]);
  });

  it('never gives 0; with fewer units than disks each gets 1', () => {
    const m = allocateShares(2, [{ key: 'a' }, { key: 'b' }, { key: 'c' }]);
    assert.deepEqual([...m.values()], [1, 1, 1]);
  });

  it('never sums above the aggregate and never exceeds a cap (random demands)', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      const total = 1 + rnd(50_000_000);
      const n = 1 + rnd(12);
      const ds: ShareDemand[] = [];
      for (let k = 0; k < n; k++) {
        const d: ShareDemand = { key: String(k) };
        if (rnd(3)) d.current = 1 + rnd(total);
        if (d.current !== undefined && rnd(2)) d.used = rnd(d.current * 2);
        if (!rnd(4)) d.cap = 1 + rnd(total);
        ds.push(d);
      }
      const m = allocateShares(total, ds);
      assert.equal(m.size, n);
      for (const d of ds) {
        const v = m.get(d.key) ?? 0;
        assert.ok(Number.isSafeInteger(v) && v >= 1, `share ${v}`);
        if (d.cap !== undefined) assert.ok(v <= Math.max(1, d.cap), `share ${v} over cap ${d.cap}`);
      }
      if (total >= n) assert.ok(sum(m) <= total, `sum ${sum(m)} > ${total}`);
    }
  });
});
