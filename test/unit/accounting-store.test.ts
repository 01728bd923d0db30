// Accounting's database: readings become usage exactly once, across a daemon
// killed at any point (a second store opened on the same file without the
// first being closed), new QEMU processes and reset counters; destroyed
// domains stay in the account; time ranges, filters and the price table.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AccountStore, type DomainKey } from '../../src/features/accounting/store.ts';

let dir: string;
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);
const A1: DomainKey = { uuid: 'u-a1', domid: 3, name: 'a1', sponsor: 'alice' };
const B1: DomainKey = { uuid: 'u-b1', domid: 4, name: 'b1', sponsor: 'bob' };

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'xn-acct-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function cpu(t: number, epoch: string, s: number) {
  return { t, series: [{ key: 'cpu', epoch, values: { cpuSeconds: s } }] };
}

describe('AccountStore', () => {
  it('a killed daemon loses nothing: the next one counts from the persisted reference', () => {
    const path = join(dir, 'kill.db');
    const s1 = new AccountStore(path);
    const row = s1.domainRow(A1, T0);
    s1.apply(row, cpu(T0, 'qemu:10:1', 10));
    s1.apply(row, cpu(T0 + 2000, 'qemu:10:1', 25));
    // kill -9: never closed. The new daemon finds the same row and the last counter.
    const s2 = new AccountStore(path);
    assert.equal(s2.domainRow(A1, T0 + 60_000), row);
    s2.apply(row, cpu(T0 + 60_000, 'qemu:10:1', 40));
    const rep = s2.report({ until: T0 + 120_000 });
    assert.equal(rep.domains[0]?.usage.cpuSeconds, 40, 'sum before and after the restart = the counter');
    // A new QEMU process (restart of the domain): its counter starts from zero.
    s2.apply(row, cpu(T0 + 62_000, 'qemu:11:9', 3));
    // Its counter reset (it cannot, for CPU; but a device's can): only the new value.
    s2.apply(row, {
      t: T0 + 64_000,
      series: [{ key: 'disk/vbd-51712@11', epoch: 'vbd-51712@11', values: { diskReadBytes: 1000 } }],
    });
    s2.apply(row, {
      t: T0 + 66_000,
      series: [{ key: 'disk/vbd-51712@11', epoch: 'vbd-51712@11', values: { diskReadBytes: 200 } }],
    });
    const u = s2.report({ until: T0 + 120_000 }).domains[0]?.usage;
    assert.equal(u?.cpuSeconds, 43);
    assert.equal(u?.diskReadBytes, 1200);
    s1.close();
    s2.close();
  });

  it('a reading is counted once even if applied again after a restart', () => {
    const path = join(dir, 'twice.db');
    const s = new AccountStore(path);
    const row = s.domainRow(A1, T0);
    s.apply(row, cpu(T0, 'e', 5));
    s.apply(row, cpu(T0, 'e', 5));
    assert.equal(s.report({ until: T0 + MINUTE }).domains[0]?.usage.cpuSeconds, 5);
    s.close();
  });

  it('integrates memory per QEMU process, the outage included', () => {
    const s = new AccountStore(join(dir, 'mem.db'));
    const row = s.domainRow(A1, T0);
    const mem = (t: number, rss: number) => ({
      t,
      series: [],
      memory: { instance: 'q', start: T0 - 2000, t, targetMiB: 256, rssMiB: rss },
    });
    s.apply(row, mem(T0, 100));
    s.apply(row, mem(T0 + 10_000, 100));
    const u = s.report({ until: T0 + MINUTE }).domains[0]?.usage;
    assert.equal(u?.memTargetMiBSeconds, 256 * 12);
    assert.equal(u?.memRssMiBSeconds, 50 * 2 + 100 * 10);
    s.close();
  });

  it('keeps a destroyed domain, filters by sponsor and domain, and sums per sponsor', () => {
    const s = new AccountStore(join(dir, 'rep.db'));
    const a = s.domainRow(A1, T0);
    const b = s.domainRow(B1, T0);
    s.apply(a, cpu(T0, 'e', 7));
    s.apply(b, cpu(T0, 'e', 11));
    s.destroyed(a, T0 + 1000);
    // A new domain with the same name later on is another row.
    const a2 = s.domainRow({ ...A1, uuid: 'u-a1b', domid: 9 }, T0 + 2000);
    assert.notEqual(a2, a);
    s.apply(a2, cpu(T0 + 2000, 'e', 1));
    const all = s.report({ until: T0 + MINUTE });
    assert.deepEqual(
      all.domains.map((d) => [d.sponsor, d.name, d.domid, d.usage.cpuSeconds, d.destroyed]),
      [
        ['alice', 'a1', 3, 7, T0 + 1000],
        ['alice', 'a1', 9, 1, null],
        ['bob', 'b1', 4, 11, null],
      ],
    );
    assert.deepEqual(
      all.sponsors.map((x) => [x.sponsor, x.domains, x.usage.cpuSeconds]),
      [
        ['alice', 2, 8],
        ['bob', 1, 11],
      ],
    );
    assert.deepEqual(
      s.report({ until: T0 + MINUTE, sponsor: 'bob' }).domains.map((d) => d.name),
      ['b1'],
    );
    assert.equal(s.report({ until: T0 + MINUTE, domain: '9' }).domains[0]?.uuid, 'u-a1b');
    assert.equal(s.report({ until: T0 + MINUTE, domain: 'u-b1' }).domains[0]?.name, 'b1');
    assert.equal(s.report({ until: T0 + MINUTE, domain: 'a1' }).domains.length, 2);
    assert.equal(s.report({ until: T0 + MINUTE, domain: "a1' OR 1=1 --" }).domains.length, 0);
    // After a restart, rows of domains that are no longer there are closed.
    assert.equal(s.closeMissing([{ uuid: 'u-b1', domid: 4 }]), 1);
    assert.notEqual(s.report({ until: T0 + MINUTE, domain: '9' }).domains[0]?.destroyed, null);
    s.close();
  });

  it('selects whole minutes: a minute counts when it starts in [since, until)', () => {
    const s = new AccountStore(join(dir, 'range.db'));
    const row = s.domainRow(A1, T0);
    s.apply(row, cpu(T0 + 5_000, 'e', 1)); // minute 0
    s.apply(row, cpu(T0 + 65_000, 'e', 3)); // minute 1: +2
    s.apply(row, cpu(T0 + 125_000, 'e', 7)); // minute 2: +4
    const sum = (since: number | undefined, until: number) =>
      s.report({ since, until }).domains[0]?.usage.cpuSeconds ?? 0;
    assert.equal(sum(undefined, T0 + 180_000), 7);
    assert.equal(sum(T0 + 60_000, T0 + 180_000), 6);
    assert.equal(sum(T0 + 90_000, T0 + 180_000), 6, 'since rounds down to its minute');
    assert.equal(sum(T0, T0 + 60_000), 1);
    assert.equal(sum(T0, T0 + 60_001), 3);
    assert.equal(s.report({ since: T0 + 10 * MINUTE, until: T0 + 11 * MINUTE }).domains[0]?.usage.cpuSeconds, 0);
    assert.equal(s.report({ until: T0 - 1 }).domains.length, 0, 'not yet there');
    s.close();
  });

  it('keeps the price table, expanded, across restarts', () => {
    const path = join(dir, 'prices.db');
    const s = new AccountStore(path);
    s.setPrices({ cpu: '0.02/h', disk: '0.01/GiB', currency: 'EUR' }, false);
    s.setPrices({ 'disk-write': '0.03/GiB' }, false);
    s.close();
    const s2 = new AccountStore(path);
    const t = s2.prices();
    assert.equal(t.currency, 'EUR');
    assert.deepEqual(
      Object.values(t.prices).map((p) => `${p.key}=${p.text}`),
      ['cpu=0.02/h', 'disk-read=0.01/GiB', 'disk-write=0.03/GiB'],
    );
    assert.deepEqual(Object.keys(s2.setPrices({ net: '1/GiB' }, true).prices), ['net-rx', 'net-tx']);
    assert.deepEqual(Object.keys(s2.setPrices({ 'net-rx': null }, false).prices), ['net-tx']);
    s2.close();
  });
});

const MINUTE = 60_000;

describe('AccountStore history', () => {
  const DAY = 86_400_000;
  const HOUR = 3_600_000;

  it('rolls minutes older than the minute horizon into hours, with the same sums', () => {
    const s = new AccountStore(join(dir, 'compact.db'));
    // 90 minutes of one CPU-second each, 40 days ago; then one minute today.
    const old = T0 - 40 * DAY;
    const row = s.domainRow(A1, old);
    for (let m = 0; m <= 90; m++) s.apply(row, cpu(old + m * MINUTE, 'q:1:1', m));
    s.apply(row, cpu(T0, 'q:1:1', 91));
    const before = s.report({ until: T0 + MINUTE }).domains[0]?.usage.cpuSeconds;
    const r = s.compact(T0, { minuteDays: 35, keepDays: 400 });
    assert.ok(r.rolledUp > 0, 'old minute rows were folded into hours');
    assert.equal(s.report({ until: T0 + MINUTE }).domains[0]?.usage.cpuSeconds, before, 'the total is unchanged');
    assert.equal(s.usageRows(), 3, 'two hour rows and today’s minute');
    // An hour-aligned range still gives the exact sum of its hour.
    const hour0 = Math.floor(old / HOUR) * HOUR;
    const inHour = s.report({ since: hour0, until: hour0 + HOUR }).domains[0]?.usage.cpuSeconds ?? 0;
    assert.equal(inHour, 59, 'the first hour: minutes 1 to 59');
    // Compacting again changes nothing.
    assert.deepEqual(s.compact(T0, { minuteDays: 35, keepDays: 400 }), { rolledUp: 0, dropped: 0, domainsDropped: 0 });
    assert.equal(s.report({ until: T0 + MINUTE }).domains[0]?.usage.cpuSeconds, before);
    s.close();
  });

  it('drops usage past the retention, and destroyed domains with nothing left', () => {
    const s = new AccountStore(join(dir, 'retain.db'));
    const gone = s.domainRow(B1, T0 - 500 * DAY);
    s.apply(gone, cpu(T0 - 500 * DAY, 'q:2:1', 5));
    s.apply(gone, cpu(T0 - 499 * DAY, 'q:2:1', 9));
    s.destroyed(gone, T0 - 499 * DAY);
    const live = s.domainRow(A1, T0 - 500 * DAY);
    s.apply(live, cpu(T0 - 500 * DAY, 'q:3:1', 1));
    s.apply(live, cpu(T0 - 1000, 'q:3:1', 4));
    const r = s.compact(T0, { minuteDays: 35, keepDays: 400 });
    assert.ok(r.dropped >= 1);
    assert.equal(r.domainsDropped, 1, 'the destroyed domain with no usage left');
    const rep = s.report({ until: T0 + MINUTE });
    assert.deepEqual(
      rep.domains.map((d) => d.name),
      ['a1'],
      'a living domain stays, even with old usage dropped',
    );
    assert.equal(rep.domains[0]?.usage.cpuSeconds, 3, 'only what is within the retention');
    s.close();
  });

  it('refuses a policy that would drop minutes it is told to keep', () => {
    const s = new AccountStore(join(dir, 'policy.db'));
    assert.throws(() => s.compact(T0, { minuteDays: 40, keepDays: 30 }), /keep/);
    assert.throws(() => s.compact(T0, { minuteDays: 0, keepDays: 30 }), /minute/);
    s.close();
  });
});
