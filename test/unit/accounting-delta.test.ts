// Accounting's delta logic: what a cumulative counter grew by between two
// readings, across counter resets (QEMU restarted, device replugged, switch
// restarted) and daemon restarts; and memory integrated over time. Usage must
// never be negative or counted twice.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { counterDelta, memoryDelta, type SeriesState } from '../../src/features/accounting/delta.ts';

describe('counterDelta', () => {
  it('a counter seen for the first time counts from zero (its life began uncounted)', () => {
    assert.deepEqual(counterDelta(undefined, { epoch: 'qemu:1:5', values: { cpuSeconds: 3.5 } }), { cpuSeconds: 3.5 });
  });

  it('the same life: the difference', () => {
    const prev: SeriesState = { epoch: 'e', values: { diskReadBytes: 1000, diskReadOps: 10 } };
    assert.deepEqual(counterDelta(prev, { epoch: 'e', values: { diskReadBytes: 4096, diskReadOps: 12 } }), {
      diskReadBytes: 3096,
      diskReadOps: 2,
    });
  });

  it('a counter that went backwards was reset: only what it counted since (never negative)', () => {
    const prev: SeriesState = { epoch: 'vif-d3.0', values: { netRxBytes: 5_000_000 } };
    assert.deepEqual(counterDelta(prev, { epoch: 'vif-d3.0', values: { netRxBytes: 1200 } }), { netRxBytes: 1200 });
  });

  it('a new life of the counter (new QEMU, new device) counts from zero, whatever the old value', () => {
    const prev: SeriesState = { epoch: 'vbd-51712@100', values: { diskWriteBytes: 10 } };
    assert.deepEqual(counterDelta(prev, { epoch: 'vbd-51712@200', values: { diskWriteBytes: 50 } }), {
      diskWriteBytes: 50,
    });
  });

  it('ignores values that are not counters (negative, NaN, infinite) and keys it does not know', () => {
    const prev: SeriesState = { epoch: 'e', values: { netTxBytes: 10 } };
    const d = counterDelta(prev, {
      epoch: 'e',
      values: { netTxBytes: Number.NaN, netRxBytes: -5, diskReadBytes: Number.POSITIVE_INFINITY, bogus: 7 },
    });
    assert.deepEqual(d, {});
  });

  it('a restart in the middle of a series: before + after = the cumulative counter (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 1_000_000 }), { minLength: 1, maxLength: 40 }), fc.nat(), (steps, cut) => {
        // A monotonic counter read at each step; a "daemon restart" after `cut` steps
        // only means the state is reloaded from what was persisted: the same thing.
        let cum = 0;
        let state: SeriesState | undefined;
        let counted = 0;
        steps.forEach((s, i) => {
          cum += s;
          const r = { epoch: 'e', values: { cpuSeconds: cum } };
          counted += counterDelta(state, r).cpuSeconds ?? 0;
          state = { epoch: 'e', values: { ...r.values } };
          if (i === cut % steps.length) state = JSON.parse(JSON.stringify(state)) as SeriesState;
        });
        assert.equal(counted, cum);
      }),
    );
  });

  it('resets never make usage exceed what the counters really counted (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ add: fc.nat({ max: 1000 }), reset: fc.boolean() }), { minLength: 1, maxLength: 50 }),
        (steps) => {
          let cur = 0;
          let truth = 0;
          let counted = 0;
          let state: SeriesState | undefined;
          for (const s of steps) {
            if (s.reset) cur = 0;
            cur += s.add;
            truth += s.add;
            const d = counterDelta(state, { epoch: 'e', values: { netTxPackets: cur } }).netTxPackets ?? 0;
            assert.ok(d >= 0);
            counted += d;
            state = { epoch: 'e', values: { netTxPackets: cur } };
          }
          assert.ok(counted <= truth, `counted ${counted} of ${truth}`);
        },
      ),
    );
  });
});

describe('memoryDelta', () => {
  it('integrates target and resident memory between two samples of one QEMU (trapezoid)', () => {
    const r = memoryDelta(
      { instance: 'q', t: 1000, targetMiB: 256, rssMiB: 100 },
      { instance: 'q', start: 0, t: 3000, targetMiB: 256, rssMiB: 300 },
    );
    assert.equal(r.usage.memTargetMiBSeconds, 512);
    assert.equal(r.usage.memRssMiBSeconds, 400);
    assert.deepEqual(r.next, { instance: 'q', t: 3000, targetMiB: 256, rssMiB: 300 });
  });

  it('a new QEMU is counted from its own start, not from the old one', () => {
    const r = memoryDelta(
      { instance: 'old', t: 0, targetMiB: 1024, rssMiB: 1024 },
      { instance: 'new', start: 10_000, t: 12_000, targetMiB: 512, rssMiB: 200 },
    );
    assert.equal(r.usage.memTargetMiBSeconds, 1024);
    assert.equal(r.usage.memRssMiBSeconds, 200);
  });

  it('a daemon outage is counted when it is back (the gap from the persisted sample)', () => {
    const r = memoryDelta(
      { instance: 'q', t: 0, targetMiB: 128, rssMiB: 64 },
      { instance: 'q', start: 0, t: 60_000, targetMiB: 128, rssMiB: 64 },
    );
    assert.equal(r.usage.memTargetMiBSeconds, 128 * 60);
    assert.equal(r.usage.memRssMiBSeconds, 64 * 60);
  });

  it('a clock that went backwards counts nothing, and an unreadable RSS keeps the last one', () => {
    const back = memoryDelta(
      { instance: 'q', t: 5000, targetMiB: 128, rssMiB: 64 },
      { instance: 'q', start: 0, t: 4000, targetMiB: 128, rssMiB: 64 },
    );
    assert.equal(back.usage.memTargetMiBSeconds, 0);
    assert.equal(back.next.t, 5000);
    const noRss = memoryDelta(
      { instance: 'q', t: 0, targetMiB: 128, rssMiB: 64 },
      { instance: 'q', start: 0, t: 1000, targetMiB: 128, rssMiB: undefined },
    );
    assert.equal(noRss.usage.memRssMiBSeconds, 64);
  });
});
