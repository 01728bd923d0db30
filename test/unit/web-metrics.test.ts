// The resource sampler: CPU% from thread time, memory from /proc, and byte
// rates from any plugin that offers I/O counters. Sampled "domains" here are
// this test process itself (a real pid and thread), no QEMU needed.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { isIoCounterSource, type MetricsSample, MetricsSampler } from '../../src/features/metrics/sampler.ts';
import { Domain } from '../../src/toolstack/domain.ts';
import type { IoCounters } from '../../src/toolstack/lifecycle-hooks.ts';

function selfDomain(domid: number, targetMiB = 256): Domain {
  const config = loadConfigText(`name = "t${domid}"\nmemory = ${targetMiB}\n`, { file: 't.cfg', baseDir: '/' }).config;
  const d = new Domain({
    domid,
    uuid: `00000000-0000-4000-8000-00000000000${domid}`,
    name: config.name,
    sponsor: 'admin',
    config,
    state: 'running',
    runDir: '/nonexistent',
    startTime: Date.now(),
    targetMiB,
    maxMiB: targetMiB,
    pid: process.pid,
  });
  d.vcpuTids = [process.pid]; // the main thread stands in for a vCPU thread
  return d;
}

class Host {
  domains: Domain[] = [];
  plugins: object[] = [];
  events = new EventEmitter<{ gone: [Domain] }>();
  list(): Domain[] {
    return this.domains;
  }
}

function burnCpu(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) Math.sqrt(Math.random());
}

/** A tick at least a few ms after the previous one, so every rate has a time base. */
async function tick(s: MetricsSampler): Promise<void> {
  burnCpu(5);
  await s.tick();
}

describe('metrics sampler', () => {
  it('CPU% comes from thread time between samples; memory from the target and /proc RSS', async () => {
    const h = new Host();
    const d = selfDomain(1);
    h.domains.push(d);
    const s = new MetricsSampler();
    s.bind(h, false);
    await s.tick();
    burnCpu(300);
    await s.tick();
    const [first, second] = s.history(1).samples;
    assert.equal(first.cpuPct, null, 'no rate without an earlier sample');
    assert.ok(second.cpuPct !== null && second.cpuPct > 20, `cpu ${second.cpuPct}`);
    assert.equal(second.memTargetMiB, 256);
    const rss = process.memoryUsage().rss / 1048576;
    assert.ok(second.rssMiB !== null && Math.abs(second.rssMiB - rss) < rss / 2, `rss ${second.rssMiB} vs ${rss}`);
    assert.equal(second.diskReadBps, null, 'no source: no disk rate');
    assert.equal(second.netRxBps, null);
  });

  it('sums I/O counters from every source plugin into per-second rates', async () => {
    const h = new Host();
    h.domains.push(selfDomain(2));
    const disk = { name: 'disk', c: { diskReadBytes: 1000, diskWriteBytes: 0 } as IoCounters };
    const disk2 = { name: 'disk2', c: { diskReadBytes: 5000 } as IoCounters };
    const net = { name: 'net', c: { netRxBytes: 0, netTxBytes: 0 } as IoCounters };
    for (const p of [disk, disk2, net]) {
      h.plugins.push({ name: p.name, ioCounters: () => ({ ...p.c }) });
    }
    h.plugins.push({ name: 'nothing-to-count' });
    assert.equal(h.plugins.filter(isIoCounterSource).length, 3);
    const s = new MetricsSampler();
    s.bind(h, false);
    await s.tick();
    disk.c.diskReadBytes = 1000 + 4096 * 10;
    disk.c.diskWriteBytes = 8192;
    disk2.c.diskReadBytes = 5000 + 4096;
    net.c.netRxBytes = 1500;
    net.c.netTxBytes = 60;
    burnCpu(20);
    await s.tick();
    const [a, b] = s.history(2).samples;
    const dt = (b.t - a.t) / 1000;
    const near = (v: number | null, want: number) =>
      assert.ok(v !== null && Math.abs(v - want) < 1e-6, `${v} ≠ ${want}`);
    near(b.diskReadBps, (4096 * 11) / dt);
    near(b.diskWriteBps, 8192 / dt);
    near(b.netRxBps, 1500 / dt);
    near(b.netTxBps, 60 / dt);
  });

  it('a counter that went backwards or a source that failed leaves a gap, not an error', async () => {
    const h = new Host();
    h.domains.push(selfDomain(3));
    let n = 10_000;
    let fail = false;
    h.plugins.push({
      name: 'flaky',
      ioCounters: async () => {
        if (fail) throw new Error('QMP went away');
        return { netRxBytes: n };
      },
    });
    const s = new MetricsSampler();
    s.bind(h, false);
    await tick(s);
    n = 100; // device replugged: counters restart
    await tick(s);
    fail = true;
    await tick(s);
    fail = false;
    n = 600;
    await tick(s);
    n = 1600;
    await tick(s);
    const rx = s.history(3).samples.map((x) => x.netRxBps);
    assert.equal(rx[1], null, 'reset');
    assert.equal(rx[2], null, 'failed source');
    assert.equal(rx[3], null, 'no baseline after the failure');
    assert.ok(rx[4] !== null && rx[4] > 0);
  });

  it('keeps a bounded history, emits each sample, and forgets destroyed domains', async () => {
    const h = new Host();
    const d = selfDomain(4);
    h.domains.push(d);
    const s = new MetricsSampler(2000, 3);
    s.bind(h, false);
    const seen: MetricsSample[] = [];
    s.on('sample', (dom, x) => {
      assert.equal(dom, d);
      seen.push(x);
    });
    for (let i = 0; i < 5; i++) await tick(s);
    assert.equal(seen.length, 5);
    assert.equal(s.history(4).samples.length, 3);
    assert.deepEqual(s.history(4).samples, seen.slice(2));
    assert.equal(s.latest(4), seen[4]);
    h.events.emit('gone', d);
    assert.equal(s.history(4).samples.length, 0);
  });

  it('skips domains without a running QEMU and restarts rates for a new QEMU', async () => {
    const h = new Host();
    const d = selfDomain(5);
    d.rec.state = 'creating';
    h.domains.push(d);
    const s = new MetricsSampler();
    s.bind(h, false);
    await tick(s);
    assert.equal(s.history(5).samples.length, 0, 'creating: not sampled');
    d.rec.state = 'running';
    await tick(s);
    await tick(s);
    assert.notEqual(s.history(5).samples[1].cpuPct, null);
    d.rec.pid = process.ppid; // as after on_crash=restart with a new QEMU
    await tick(s);
    assert.equal(s.history(5).samples[2].cpuPct, null, 'no delta across two processes');
  });
});
