// vif rate= in the switch core, fed frames with a fake clock and fake timers:
// netback's credit scheduler (credit per interval, a frame bigger than the
// credit left waits for the next interval, back-pressure instead of drops), the
// per-sponsor aggregate over several ports, an unlimited port beside limited
// ones, changes at runtime; and a real stream port that stops reading.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { formatRate, vifRateSpec } from '../../src/features/network/rate.ts';
import { CreditBucket, MAX_BURST } from '../../src/net/credit.ts';
import { type PortInfo, SponsorIsolation } from '../../src/net/policy.ts';
import { StreamPort } from '../../src/net/stream-port.ts';
import { SwitchCore, type SwitchPort, sourceMacOf, zeroCounters } from '../../src/net/switch-core.ts';
import { ethernet } from '../helpers/frames.ts';

const MAC = (n: number) => `00:16:3e:00:01:${n.toString(16).padStart(2, '0')}`;
const BCAST = 'ff:ff:ff:ff:ff:ff';

/** A clock and timers the test moves by hand. */
class FakeTime {
  t = 0;
  private timers: Array<{ at: number; fn: () => void; dead: boolean }> = [];
  now = (): number => this.t;
  timer = (fn: () => void, ms: number): (() => void) => {
    const e = { at: this.t + Math.max(0, ms), fn, dead: false };
    this.timers.push(e);
    return () => {
      e.dead = true;
    };
  };
  get pending(): number {
    return this.timers.filter((e) => !e.dead).length;
  }
  /** Move the clock forward, firing due timers in order (as the event loop would). */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((e) => !e.dead && e.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.dead = true;
      this.t = due.at;
      due.fn();
    }
    this.timers = this.timers.filter((e) => !e.dead);
    this.t = end;
  }
}

/** A port that behaves like a StreamPort: it reads frames from its queue until the switch says wait. */
class QueuePort implements SwitchPort {
  readonly counters = zeroCounters();
  readonly info: PortInfo;
  readonly sourceMac: number | undefined;
  readonly got: Buffer[] = [];
  queue: Buffer[] = [];
  held = false;
  resumes = 0;
  constructor(
    private readonly core: SwitchCore,
    id: string,
    sponsor: string,
    readonly mac: string,
  ) {
    this.info = { id, kind: 'vif', sponsor, mac };
    this.sourceMac = sourceMacOf(this.info);
  }
  send(frame: Uint8Array): boolean {
    this.got.push(Buffer.from(frame));
    return true;
  }
  /** Queue `n` frames of `size` bytes to the broadcast address (payload byte i = sequence number). */
  offer(n: number, size: number): void {
    for (let i = 0; i < n; i++) {
      const f = ethernet(BCAST, this.mac, 0x0800, new Array(size - 14).fill(0));
      f[14] = this.queue.length & 0xff;
      this.queue.push(f);
    }
    this.pump();
  }
  pump(): void {
    while (!this.held && this.queue.length) {
      const f = this.queue[0] as Buffer;
      if (!this.core.input(this, f)) {
        this.held = true;
        return;
      }
      this.queue.shift();
    }
  }
  resume(): void {
    this.resumes++;
    this.held = false;
    this.pump();
  }
}

function setup(ports: Array<[string, string]>) {
  const time = new FakeTime();
  const core = new SwitchCore(new SponsorIsolation(), { now: time.now, timer: time.timer });
  const list = ports.map(([id, sponsor], i) => new QueuePort(core, id, sponsor, MAC(i + 1)));
  for (const p of list) core.addPort(p);
  // A listener of every sponsor's broadcasts: one per sponsor, so the policy lets them through.
  const sinks = new Map<string, QueuePort>();
  for (const [, s] of ports) {
    if (sinks.has(s)) continue;
    const sink = new QueuePort(core, `sink-${s}`, s, MAC(200 + sinks.size));
    core.addPort(sink);
    sinks.set(s, sink);
  }
  return { time, core, ports: list, sink: (s: string) => sinks.get(s) as QueuePort };
}

const bytes = (fs: Buffer[]) => fs.reduce((n, f) => n + f.length, 0);

describe('credit bucket (netback)', () => {
  it('gives bytesPerSec x interval of credit per interval', () => {
    const b = new CreditBucket({ bytesPerSec: 8000, intervalUs: 50_000 }, 0);
    assert.equal(b.creditPerInterval, 400);
    assert.ok(b.check(400, 0));
    b.take(400);
    assert.equal(b.check(1, 0), false, 'the credit is spent');
    assert.equal(b.waitUntil, 50);
    assert.equal(b.check(1, 49), false, 'no credit before the interval ends');
    assert.ok(b.check(400, 50));
  });

  it('lets a frame bigger than one interval of credit through once enough has built up', () => {
    const b = new CreditBucket({ bytesPerSec: 8000, intervalUs: 50_000 }, 0);
    assert.equal(b.check(1000, 0), false);
    assert.equal(b.check(1000, 50), false, '800 bytes of credit after one interval');
    assert.ok(b.check(1000, 100), '1200 after two');
    // Nothing larger than the 128 KiB burst can ever wait forever: it is charged as the burst.
    const slow = new CreditBucket({ bytesPerSec: 1, intervalUs: 1_000_000 }, 0);
    assert.equal(slow.check(MAX_BURST * 4, 0), false);
  });

  it('counts every whole interval a late timer missed, but never credit for idle time', () => {
    const b = new CreditBucket({ bytesPerSec: 8000, intervalUs: 50_000 }, 0);
    b.take(400);
    assert.equal(b.check(400, 0), false);
    // The timer was due at 50 and fires at 170: intervals 50, 100 and 150 have passed.
    assert.ok(b.check(1200, 170));
    // Idle for 10 s: one interval's credit on top of what was left (400 + 400), as netback.
    const idle = new CreditBucket({ bytesPerSec: 8000, intervalUs: 50_000 }, 0);
    assert.ok(idle.check(800, 10_000));
    idle.take(800);
    assert.equal(idle.check(1, 10_000), false);
    const idle2 = new CreditBucket({ bytesPerSec: 8000, intervalUs: 50_000 }, 0);
    assert.equal(idle2.check(801, 10_000), false);
  });
});

describe('rate limits in the switch core', () => {
  it('lets one interval of credit through per interval, holding the rest back without dropping', () => {
    const { time, core, ports, sink } = setup([['d1.0', 'a']]);
    const [p] = ports as [QueuePort];
    core.setPortRate('d1.0', { bytesPerSec: 8000, intervalUs: 50_000 }); // 400 B per 50 ms
    p.offer(20, 100);
    assert.equal(sink('a').got.length, 4, 'the first interval: 400 bytes');
    assert.ok(p.held, 'the port stopped reading');
    assert.equal(p.queue.length, 16, 'the rest waits in the port, not dropped');
    assert.equal(p.counters.rateHolds, 1);
    for (let i = 1; i <= 4; i++) {
      time.advance(50);
      assert.equal(sink('a').got.length, 4 + 4 * i, `interval ${i}`);
      assert.equal(bytes(sink('a').got), 400 * (1 + i), 'one interval of credit each');
    }
    assert.equal(p.queue.length, 0);
    assert.equal(p.counters.rxPackets, 20);
    assert.equal(p.counters.rxBytes, 2000);
    assert.equal(sink('a').counters.txDrops, 0);
    assert.deepEqual(
      sink('a').got.map((f) => f[14]),
      Array.from({ length: 20 }, (_, i) => i),
      'in order, none lost',
    );
  });

  it('holds a frame bigger than the credit left until the next interval, and a jumbo one until enough has built up', () => {
    const { time, core, ports, sink } = setup([['d1.0', 'a']]);
    const [p] = ports as [QueuePort];
    core.setPortRate('d1.0', { bytesPerSec: 8000, intervalUs: 50_000 });
    p.offer(1, 300);
    p.offer(1, 300);
    assert.equal(sink('a').got.length, 1, '300 of 400 spent; the next 300 does not fit');
    time.advance(49);
    assert.equal(sink('a').got.length, 1);
    time.advance(1);
    assert.equal(sink('a').got.length, 2, 'sent at the next interval');
    // QEMU's largest stream frame (69632 bytes) at 400 B per interval.
    p.offer(1, 69632);
    const needed = Math.ceil((69632 - 100) / 400);
    time.advance(50 * (needed - 1));
    assert.equal(sink('a').got.length, 2, 'not yet');
    time.advance(50);
    assert.equal(sink('a').got.length, 3, 'through once the credit covers it');
  });

  it('shares one sponsor aggregate between its ports, and leaves an unlimited sponsor alone', () => {
    const { time, core, ports, sink } = setup([
      ['d1.0', 'alice'],
      ['d2.0', 'alice'],
      ['d3.0', 'bob'],
    ]);
    const [a1, a2, b] = ports as [QueuePort, QueuePort, QueuePort];
    core.setSponsorRate('alice', { bytesPerSec: 8000, intervalUs: 50_000 });
    a1.offer(40, 100);
    a2.offer(40, 100);
    assert.equal(sink('alice').got.length, 4, 'both ports together get one interval of credit');
    assert.ok(a1.held && a2.held);
    // Bob has no limit: everything goes through at once while alice's ports wait.
    b.offer(500, 1000);
    assert.equal(sink('bob').got.length, 500);
    assert.equal(b.held, false);
    assert.equal(b.counters.rateHolds, 0);
    for (let i = 0; i < 10; i++) time.advance(50);
    const from = (p: QueuePort) =>
      sink('alice').got.filter((f) =>
        f.subarray(6, 12).equals(Buffer.from(p.mac.split(':').map((x) => Number.parseInt(x, 16)))),
      ).length;
    assert.equal(sink('alice').got.length, 44, '4 frames per interval over 11 intervals');
    assert.ok(from(a1) >= 16 && from(a2) >= 16, `both ports get turns: ${from(a1)} / ${from(a2)}`);
    // Nothing was dropped: what did not go yet is still queued in the ports.
    assert.equal(a1.queue.length + a2.queue.length, 80 - 44);
  });

  it('applies a per-port limit and the sponsor aggregate together (the smaller wins)', () => {
    const { time, core, ports, sink } = setup([['d1.0', 'alice']]);
    core.setPortRate('d1.0', { bytesPerSec: 4000, intervalUs: 50_000 }); // 200 per interval
    core.setSponsorRate('alice', { bytesPerSec: 80_000, intervalUs: 50_000 }); // 4000 per interval
    (ports[0] as QueuePort).offer(20, 100);
    assert.equal(sink('alice').got.length, 2);
    time.advance(50);
    assert.equal(sink('alice').got.length, 4);
  });

  it('changes a limit at runtime: faster, then none, with the waiting port woken at once', () => {
    const { time, core, ports, sink } = setup([['d1.0', 'a']]);
    const [p] = ports as [QueuePort];
    core.setPortRate('d1.0', { bytesPerSec: 8000, intervalUs: 50_000 });
    p.offer(100, 100);
    assert.equal(sink('a').got.length, 4);
    assert.deepEqual(core.portRate('d1.0'), { bytesPerSec: 8000, intervalUs: 50_000 });
    core.setPortRate('d1.0', { bytesPerSec: 80_000, intervalUs: 50_000 }); // 4000 per interval
    assert.equal(sink('a').got.length, 4 + 40, 'woken now with the new credit');
    time.advance(50);
    assert.equal(sink('a').got.length, 84);
    core.setPortRate('d1.0', undefined);
    assert.equal(core.portRate('d1.0'), undefined);
    assert.equal(sink('a').got.length, 100, 'no limit: the rest goes at once');
    assert.equal(time.pending, 0, 'no timer left behind');
    // Same for the sponsor aggregate.
    core.setSponsorRate('a', { bytesPerSec: 8000, intervalUs: 50_000 });
    p.offer(10, 100);
    assert.equal(sink('a').got.length, 104);
    core.setSponsorRate('a', undefined);
    assert.equal(sink('a').got.length, 110);
    assert.deepEqual(core.sponsorRates(), []);
  });

  it('charges dropped frames too (spoofed, runts), so a flood of garbage is limited as well', () => {
    const { core, ports } = setup([['d1.0', 'a']]);
    const [p] = ports as [QueuePort];
    core.setPortRate('d1.0', { bytesPerSec: 8000, intervalUs: 50_000 });
    const spoofed = ethernet(BCAST, MAC(99), 0x0800, new Array(86).fill(0));
    let taken = 0;
    while (core.input(p, spoofed)) taken++;
    assert.equal(taken, 4);
    assert.equal(p.counters.spoofDrops, 4);
  });

  it('forgets a removed port: its timer does not wake it, its limit goes with it', () => {
    const { time, core, ports } = setup([['d1.0', 'a']]);
    const [p] = ports as [QueuePort];
    core.setPortRate('d1.0', { bytesPerSec: 8000, intervalUs: 50_000 });
    p.offer(10, 100);
    assert.ok(p.held);
    core.removePort('d1.0');
    time.advance(500);
    assert.equal(p.resumes, 0);
    assert.equal(time.pending, 0);
    assert.equal(core.portRate('d1.0'), undefined);
  });

  it('rejects a limit that is not a positive rate', () => {
    const { core } = setup([['d1.0', 'a']]);
    for (const bad of [
      { bytesPerSec: 0, intervalUs: 50_000 },
      { bytesPerSec: -1, intervalUs: 50_000 },
      { bytesPerSec: 1.5, intervalUs: 50_000 },
      { bytesPerSec: 1000, intervalUs: 0 },
      { bytesPerSec: 1000, intervalUs: 2 ** 32 },
      { bytesPerSec: 2 ** 60, intervalUs: 50_000 },
      { bytesPerSec: Number.NaN, intervalUs: 50_000 },
    ]) {
      assert.throws(() => core.setPortRate('d1.0', bad), /rate/, JSON.stringify(bad));
    }
    assert.equal(core.portRate('d1.0'), undefined);
  });
});

describe('a stream port under a limit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xn-rate-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stops reading from QEMU while out of credit and reads again at the next interval', async () => {
    const path = join(dir, 'q.sock');
    const conns: Socket[] = [];
    const server = createServer((s) => conns.push(s));
    await new Promise<void>((r) => server.listen(path, () => r()));
    const time = new FakeTime();
    const core = new SwitchCore(new SponsorIsolation(), { now: time.now, timer: time.timer });
    const port = new StreamPort({ id: 'd1.0', kind: 'vif', sponsor: 'a', mac: MAC(1) }, path, core);
    const sink = new QueuePort(core, 'sink', 'a', MAC(2));
    core.addPort(port);
    core.addPort(sink);
    core.setPortRate('d1.0', { bytesPerSec: 20_000, intervalUs: 50_000 }); // 1000 B per interval
    port.start();
    try {
      assert.ok(await port.whenConnected(5000));
      while (conns.length === 0) await new Promise((r) => setTimeout(r, 5));
      const wire = Buffer.concat(
        Array.from({ length: 30 }, (_, i) => {
          const f = ethernet(BCAST, MAC(1), 0x0800, new Array(986).fill(i));
          const h = Buffer.alloc(4);
          h.writeUInt32BE(f.length);
          return Buffer.concat([h, f]);
        }),
      );
      (conns[0] as Socket).write(wire);
      const until = async (pred: () => boolean) => {
        for (let i = 0; i < 500 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
        assert.ok(pred());
      };
      await until(() => port.held);
      assert.equal(sink.got.length, 1, 'one 1000-byte frame per interval');
      // Real time passes, the fake clock does not: the port stays held, nothing more is read.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(sink.got.length, 1);
      for (let i = 2; i <= 30; i++) {
        time.advance(50);
        await until(() => sink.got.length === i);
      }
      assert.equal(port.counters.rxPackets, 30);
      assert.equal(port.counters.errors, 0);
      assert.deepEqual(
        sink.got.map((f) => f[20]),
        Array.from({ length: 30 }, (_, i) => i),
      );
    } finally {
      port.stop();
      for (const c of conns) c.destroy();
      server.close();
    }
  });
});

describe('rate= as the switch takes it and as network-list prints it', () => {
  it('parses xl syntax into bytes/s and µs, and prints it back so it parses to the same limit', () => {
    assert.deepEqual(vifRateSpec('10Mb/s'), { bytesPerSec: 1_250_000, intervalUs: 50_000 });
    assert.deepEqual(vifRateSpec('1MB/s@20ms'), { bytesPerSec: 1_000_000, intervalUs: 20_000 });
    assert.deepEqual(vifRateSpec('1b/s'), { bytesPerSec: 1, intervalUs: 50_000 }, 'never 0: that would stop the vif');
    for (const r of ['256Kb/s@20ms', '1MB/s@10ms', '2Mb/s', '7B/s@1s', '1500B/s@100us', '10Gb/s', '3KB/s@2s']) {
      const spec = vifRateSpec(r);
      assert.deepEqual(vifRateSpec(formatRate(spec)), spec, r);
    }
    assert.equal(formatRate(vifRateSpec('256Kb/s@20ms')), '256Kb/s@20ms');
    assert.equal(formatRate(vifRateSpec('100Mb/s')), '100Mb/s@50ms');
    assert.throws(() => vifRateSpec('fast'), /invalid rate 'fast'/);
  });
});
