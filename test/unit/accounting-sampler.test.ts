// The accountant with fake domains, counters and devices: the last reading at
// teardown (devices asked before QEMU is stopped), readings applied in order,
// a daemon killed and restarted, devices unplugged, and the CPU counter never
// switched in the middle of a QEMU's life.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Accountant, type HostReaders } from '../../src/features/accounting/sampler.ts';
import { AccountStore } from '../../src/features/accounting/store.ts';
import { Domain } from '../../src/toolstack/domain.ts';
import type { DomainRecord } from '../../src/toolstack/domain-record.ts';
import type { IoCounters } from '../../src/toolstack/lifecycle-hooks.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xn-acs-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

let nextDomid = 1;
function domain(sponsor = 'alice'): Domain {
  const domid = nextDomid++;
  return new Domain({
    domid,
    uuid: `uuid-${domid}`,
    name: `d${domid}`,
    sponsor,
    state: 'running',
    pid: 1000 + domid,
    targetMiB: 256,
    maxMiB: 256,
    runDir: '/nonexistent',
    startTime: 0,
  } as unknown as DomainRecord);
}

/** A host whose counters the test moves. */
class FakeHost implements HostReaders {
  procCpu = new Map<number, number>();
  cgroup = new Map<number, { epoch: string; seconds: number }>();
  start = new Map<number, number>();
  instance(pid: number) {
    return this.procCpu.has(pid) ? { id: `qemu:${pid}:${this.start.get(pid) ?? 1}`, start: 0, alive: true } : undefined;
  }
  procCpuSeconds(pid: number) {
    return this.procCpu.get(pid);
  }
  cgroupCpu(rec: DomainRecord) {
    return this.cgroup.get(rec.domid);
  }
  rssMiB() {
    return 100;
  }
}

/** A device-counting plugin: counters per domain, answered after `delayMs`. */
class FakeDisks {
  readonly name = 'disks';
  counters = new Map<number, IoCounters | undefined>();
  delays: number[] = [];
  async ioCounters(d: Domain): Promise<IoCounters | undefined> {
    const c = this.counters.get(d.domid);
    const snapshot = c && JSON.parse(JSON.stringify(c));
    const delay = this.delays.shift() ?? 0;
    if (delay) await new Promise((r) => setTimeout(r, delay));
    return snapshot;
  }
}

function usage(store: AccountStore, d: Domain) {
  const row = store.report({ until: Date.now() + 120_000, domain: String(d.domid) }).domains[0];
  assert.ok(row, `no account for ${d.name}`);
  return row;
}

describe('Accountant', () => {
  it('asks the devices at the start of teardown, before QEMU is stopped, and closes the account', async () => {
    const store = new AccountStore(join(dir, 'teardown.db'));
    const host = new FakeHost();
    const disks = new FakeDisks();
    const acc = new Accountant(store, { readers: host });
    acc.setSources([disks]);
    const d = domain();
    host.procCpu.set(d.rec.pid as number, 1);
    disks.counters.set(d.domid, { diskReadBytes: 100, devices: { 'vbd-1@1': { diskReadBytes: 100 } } });
    acc.track(d);
    await acc.tick();
    disks.counters.set(d.domid, { diskReadBytes: 900, devices: { 'vbd-1@1': { diskReadBytes: 900 } } });
    // The toolstack records `dying` before it stops QEMU ...
    d.rec.state = 'dying';
    d.emit('change', d.rec);
    // ... then QEMU is gone: nothing answers any more.
    disks.counters.delete(d.domid);
    host.procCpu.delete(d.rec.pid as number);
    d.rec.pid = undefined;
    await acc.final(d);
    const row = usage(store, d);
    assert.equal(row.usage.diskReadBytes, 900);
    assert.notEqual(row.destroyed, null, 'the account is closed');
    assert.equal(acc.tracked().length, 0);
    store.close();
  });

  it('applies readings in the order they started, whatever order they answer in', async () => {
    const store = new AccountStore(join(dir, 'order.db'));
    const host = new FakeHost();
    const disks = new FakeDisks();
    const acc = new Accountant(store, { readers: host });
    acc.setSources([disks]);
    const d = domain();
    const dev = (n: number): IoCounters => ({ netTxBytes: n, devices: { 'vif-x': { netTxBytes: n } } });
    disks.counters.set(d.domid, dev(1000));
    acc.track(d);
    disks.delays = [80, 0];
    const slow = acc.tick(); // reads 1000, answers late
    disks.counters.set(d.domid, dev(1500));
    d.rec.state = 'dying';
    d.emit('change', d.rec); // reads 1500, answers at once
    await slow;
    await acc.final(d);
    assert.equal(usage(store, d).usage.netTxBytes, 1500, 'not 1000 + 1500');
    store.close();
  });

  it('a killed daemon: the next one counts the outage from the persisted counters', async () => {
    const path = join(dir, 'restart.db');
    const host = new FakeHost();
    const disks = new FakeDisks();
    const d = domain();
    const pid = d.rec.pid as number;
    const s1 = new AccountStore(path);
    const a1 = new Accountant(s1, { readers: host });
    a1.setSources([disks]);
    a1.track(d);
    host.procCpu.set(pid, 2);
    disks.counters.set(d.domid, { diskWriteOps: 10, devices: { 'vbd-5@9': { diskWriteOps: 10 } } });
    await a1.tick();
    host.procCpu.set(pid, 5);
    await a1.tick();
    // kill -9: a1 and s1 are simply abandoned. QEMU runs on meanwhile.
    host.procCpu.set(pid, 30);
    disks.counters.set(d.domid, { diskWriteOps: 70, devices: { 'vbd-5@9': { diskWriteOps: 70 } } });
    const s2 = new AccountStore(path);
    const a2 = new Accountant(s2, { readers: host });
    a2.setSources([disks]);
    const again = new Domain(d.rec); // the new daemon's object for the same domain
    a2.track(again);
    await a2.tick();
    const u = usage(s2, again).usage;
    assert.equal(u.cpuSeconds, 30);
    assert.equal(u.diskWriteOps, 70);
    assert.equal(s2.report({ until: Date.now() + 1000 }).domains.length, 1, 'the same account, not a new one');
    s2.close();
    s1.close();
  });

  it('an unplugged device takes nothing back and counts nothing twice; a replugged one counts from zero', async () => {
    const store = new AccountStore(join(dir, 'unplug.db'));
    const host = new FakeHost();
    const disks = new FakeDisks();
    const acc = new Accountant(store, { readers: host });
    acc.setSources([disks]);
    const d = domain();
    acc.track(d);
    const two = (a: number, b: number): IoCounters => ({
      diskReadBytes: a + b,
      devices: { 'vbd-1@7': { diskReadBytes: a }, 'vbd-2@7': { diskReadBytes: b } },
    });
    disks.counters.set(d.domid, two(500, 300));
    await acc.tick();
    disks.counters.set(d.domid, { diskReadBytes: 350, devices: { 'vbd-2@7': { diskReadBytes: 350 } } });
    await acc.tick();
    assert.equal(usage(store, d).usage.diskReadBytes, 850);
    disks.counters.set(d.domid, two(40, 360)); // vbd-1 plugged again: a new device, from zero
    await acc.tick();
    assert.equal(usage(store, d).usage.diskReadBytes, 900);
    store.close();
  });

  it('CPU: stays with one QEMU’s /proc time while it lives, then the cgroup; never /proc after a cgroup', async () => {
    const store = new AccountStore(join(dir, 'cpu.db'));
    const host = new FakeHost();
    const acc = new Accountant(store, { readers: host });
    const d = domain();
    const pid = d.rec.pid as number;
    acc.track(d);
    host.procCpu.set(pid, 4);
    await acc.tick();
    // A cgroup appears (a newer daemon made it): this QEMU's time is still read from /proc.
    host.cgroup.set(d.domid, { epoch: 'cgroup:g:1', seconds: 1 });
    host.procCpu.set(pid, 6);
    await acc.tick();
    assert.equal(usage(store, d).usage.cpuSeconds, 6);
    // A new QEMU (restart): now the cgroup.
    host.procCpu.delete(pid);
    d.rec.pid = pid + 1;
    host.procCpu.set(pid + 1, 50);
    host.cgroup.set(d.domid, { epoch: 'cgroup:g:1', seconds: 3 });
    await acc.tick();
    assert.equal(usage(store, d).usage.cpuSeconds, 9);
    // The group unreadable for a moment: no /proc fallback (it would count 50 s again).
    host.cgroup.delete(d.domid);
    await acc.tick();
    host.cgroup.set(d.domid, { epoch: 'cgroup:g:1', seconds: 4 });
    await acc.tick();
    assert.equal(usage(store, d).usage.cpuSeconds, 10);
    // The QEMU died, the group stays until teardown: its last CPU time is still counted.
    d.rec.pid = undefined;
    host.cgroup.set(d.domid, { epoch: 'cgroup:g:1', seconds: 4.5 });
    d.rec.state = 'dying';
    await acc.final(d);
    assert.equal(usage(store, d).usage.cpuSeconds, 10.5);
    store.close();
  });

  it('a failed launch of a domain that stays (a restart) keeps its account open', async () => {
    const store = new AccountStore(join(dir, 'keep.db'));
    const host = new FakeHost();
    const acc = new Accountant(store, { readers: host });
    const d = domain();
    host.procCpu.set(d.rec.pid as number, 1);
    acc.track(d);
    await acc.tick();
    d.rec.state = 'crashed';
    await acc.final(d);
    assert.equal(usage(store, d).destroyed, null);
    acc.gone(d);
    await new Promise((r) => setImmediate(r));
    assert.notEqual(usage(store, d).destroyed, null);
    store.close();
  });
});
