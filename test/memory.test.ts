// Issue: memory control. Real guests under QEMU (TCG): virtio-mem grows a
// domain past its boot size, the balloon shrinks it and the host gets the
// memory back, a guest that cannot shrink in time gets its configured
// consequence, and two domains share a static_shm region.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
});
after(async () => {
  await host.cleanup();
});

async function ready(name: string): Promise<ConsoleSession> {
  const con = await host.console(name);
  await con.expect(/XENODE-READY/, 120_000);
  await con.expect(new RegExp(`${name}:/# `), 60_000);
  return con;
}

async function domid(name: string): Promise<string> {
  return (await host.ok(['domid', name])).trim();
}

/** QEMU's resident memory including the shared guest RAM (smaps_rollup Rss), MiB. */
function qemuRssMiB(id: string): number {
  const pid = Number(readFileSync(join(host.dir, 'domains', id, 'qemu.pid'), 'utf8'));
  const m = /^Rss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  assert.ok(m, 'smaps_rollup has Rss');
  return Number(m[1]) / 1024;
}

async function meminfoKiB(con: ConsoleSession): Promise<{ total: number; available: number }> {
  const out = await con.run("grep -E '^(MemTotal|MemAvailable):' /proc/meminfo");
  const total = /MemTotal:\s+(\d+)/.exec(out);
  const avail = /MemAvailable:\s+(\d+)/.exec(out);
  assert.ok(total && avail, out);
  return { total: Number(total[1]), available: Number(avail[1]) };
}

/** Re-read the guest's meminfo until `pred` holds (the guest onlines memory on its own time). */
async function meminfoUntil(
  con: ConsoleSession,
  pred: (m: { total: number; available: number }) => boolean,
  timeoutMs = 60_000,
): Promise<{ total: number; available: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await meminfoKiB(con);
    if (pred(m) || Date.now() > deadline) return m;
  }
}

function listRow(out: string, name: string): string[] {
  const line = out.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `list shows ${name}:\n${out}`);
  return line.trim().split(/\s+/);
}

describe('mem-set: virtio-mem up, balloon down, deadlines', () => {
  let con: ConsoleSession;
  let id: string;
  let bootTotal: number;

  before(async () => {
    const cfg = host.writeConfig(
      'mem.cfg',
      'name = "mem"\nmemory = 256\nmaxmem = 1024\non_memory_noncompliance = "pause"\n',
    );
    const r = await host.xl(['create', cfg]);
    assert.equal(r.code, 0, r.stderr);
    con = await ready('mem');
    id = await domid('mem');
    bootTotal = (await meminfoKiB(con)).total;
  });
  after(() => con?.close());

  it('mem-set 768 plugs virtio-mem: the guest sees MemTotal grow, list and store follow', async () => {
    const r = await host.xl(['mem-set', 'mem', '768', '--deadline', '30s']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^Domain \d+: memory at \d+ MiB \(target 768 MiB\) after [\d.]+ s, within its 30 s deadline$/m,
    );
    const m = await meminfoUntil(con, (x) => x.total >= bootTotal + 500 * 1024);
    assert.ok(m.total >= bootTotal + 500 * 1024, `MemTotal ${m.total} kB, was ${bootTotal} kB`);
    assert.equal(listRow(await host.ok(['list']), 'mem')[2], '768');
    assert.equal((await host.ok(['store', 'read', `/local/domain/${id}/memory/target`])).trim(), String(768 * 1024));
    const actual = Number((await host.ok(['store', 'read', `/local/domain/${id}/memory/actual`])).trim());
    assert.ok(Math.abs(actual - 768 * 1024) <= 16 * 1024, `memory/actual ${actual}`);
  });

  it('mem-set 128 after the guest touched memory (and a daemon restart): MemTotal and QEMU RSS fall', async () => {
    // Give the guest something to give back: 300 MiB in a tmpfs file, deleted after RSS is read.
    const dd = await con.run(
      'mkdir -p /mnt/t && mount -t tmpfs -o size=700m tmpfs /mnt/t && dd if=/dev/zero of=/mnt/t/fill bs=1M count=300 2>&1 | tail -1',
      120_000,
    );
    assert.match(dd, /300\+0 records out/);
    const rssFull = qemuRssMiB(id);
    // A restarted daemon picks the memory devices up again where they were.
    con.close();
    host.killDaemon('SIGKILL');
    const relisted = await host.xl(['list']);
    assert.match(relisted.stderr, /xenoded was not running; started it/);
    assert.equal(listRow(relisted.stdout, 'mem')[2], '768');
    // No scroll-back: the old session's command markers must not match the new one's.
    con = await ConsoleSession.open(`ws+unix://${host.socket}:/v1/domains/mem/console?scrollback=0`);
    await con.run('rm /mnt/t/fill');
    const before128 = await meminfoKiB(con);
    const r = await host.xl(['mem-set', 'mem', '128', '--deadline', '120s']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /target 128 MiB/);
    const m = await meminfoUntil(con, (x) => x.total < bootTotal - 100 * 1024);
    assert.ok(m.total < bootTotal - 100 * 1024, `MemTotal ${m.total} kB should be < boot ${bootTotal} - 100 MiB`);
    assert.ok(m.available < before128.available - 300 * 1024, `MemAvailable ${m.available} kB fell`);
    const rssAfter = qemuRssMiB(id);
    assert.ok(rssAfter < rssFull - 200, `QEMU RSS ${rssAfter.toFixed(0)} MiB, was ${rssFull.toFixed(0)} MiB`);
    assert.equal(listRow(await host.ok(['list']), 'mem')[2], '128');
    const ml = await host.ok(['mem-list', 'mem']);
    assert.match(ml, /^mem\s+\d+\s+256\s+1024\s+128\s+128\s+128\s+0\s/m);
  });

  it('a guest that cannot shrink in time is reported and paused (on_memory_noncompliance="pause")', async () => {
    assert.equal((await host.xl(['mem-set', 'mem', '768', '--deadline', '30s'])).code, 0);
    await meminfoUntil(con, (x) => x.available > 400 * 1024);
    // 200 MiB in tmpfs cannot be dropped or swapped: 64 MiB is out of reach.
    const dd = await con.run('dd if=/dev/zero of=/mnt/t/pinned bs=1M count=200 2>&1 | tail -1', 120_000);
    assert.match(dd, /200\+0 records out/);
    const r = await host.xl(['mem-set', 'mem', '64', '--deadline', '2s']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /^Domain \d+ missed its 2 s memory deadline: \d+ MiB, target 64 MiB \(tolerance 8 MiB\); on_memory_noncompliance=pause$/m,
    );
    const row = listRow(await host.ok(['list']), 'mem');
    assert.equal(row[4][2], 'p', `state ${row[4]} is paused`);
    assert.ok(Number(row[2]) > 64 + 8, `Mem column ${row[2]} shows the actual, above the target`);
    const nc = JSON.parse(await host.ok(['store', 'read', `/local/domain/${id}/memory/noncompliance`])) as Record<
      string,
      unknown
    >;
    assert.equal(nc.target, 64 * 1024);
    assert.equal(nc.deadline, 2000);
    assert.equal(nc.action, 'pause');
    assert.ok(Number(nc.actual) > 72 * 1024);
    assert.match(
      await host.ok(['dmesg']),
      /memory target 64 MiB not met within 2 s: actual \d+ MiB; on_memory_noncompliance=pause/,
    );
    await host.ok(['destroy', 'mem']);
  });

  it('refuses targets it cannot meet and bad deadlines, with one line each', async () => {
    const cfg = host.writeConfig('small.cfg', 'name = "small"\nmemory = 256\n');
    await host.ok(['create', cfg]);
    const big = await host.xl(['mem-set', 'small', '512']);
    assert.equal(big.code, 1);
    assert.match(big.stderr, /cannot set domid \d+ dynamic max memory to : 512M/);
    const bad = await host.xl(['mem-set', 'small', '128', '--deadline', 'soon']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid deadline: soon/);
    const max = await host.xl(['mem-max', 'small', '2048']);
    assert.equal(max.code, 1);
    assert.match(max.stderr, /cannot set domid \d+ static max memory to : 2048M.*room for 256 MiB/);
    for (const e of [big, bad, max]) assert.doesNotMatch(e.stderr, /\n\s+at /);
    await host.ok(['destroy', 'small']);
  });

  it('refuses maxmem > memory on microvm, leaving nothing running', async () => {
    const r = await host.xl(['create', '/dev/null', 'name="mv"', 'memory=256', 'maxmem=512', 'machine="microvm"']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /maxmem \(512 MiB\) above memory \(256 MiB\) needs virtio-mem, which microvm lacks/);
    assert.equal(host.qemuPids().length, 0);
  });
});

describe('static_shm: one region shared by an owner and a borrower', () => {
  // Region files are /dev/shm/xenode-<first 8 hex of sha256(XENODE_DIR)>-<sponsor>.<id>.
  const shmFiles = () => {
    const prefix = `xenode-${createHash('sha256').update(host.dir).digest('hex').slice(0, 8)}-`;
    return readdirSync('/dev/shm').filter((f) => f.startsWith(prefix));
  };
  const borrower = (extra = '') =>
    host.writeConfig(
      'bor.cfg',
      `name = "bor"\nmemory = 256\nstatic_shm = ["id=chat, begin=0x100000, size=0x10000${extra}, role=borrower"]\n`,
    );

  it('a borrower without an owner is refused at create time, nothing left running', async () => {
    const r = await host.xl(['create', borrower()]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /static_shm 'chat' has no owner \(create the domain with role=owner for 'chat' first\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(host.qemuPids().length, 0);
    assert.deepEqual(shmFiles(), []);
    assert.doesNotMatch(await host.ok(['list']), /^bor /m);
  });

  it('an owner size that is not a power of two is refused', async () => {
    const cfg = host.writeConfig(
      'odd.cfg',
      'name = "odd"\nstatic_shm = ["id=odd, begin=0x100000, size=0x110000, role=owner"]\n',
    );
    const r = await host.xl(['create', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /static_shm 'odd': size 0x110000 is not a power of two/);
    assert.equal(host.qemuPids().length, 0);
  });

  it('owner and borrower exchange messages through the region; a window past its end is refused', async () => {
    const own = host.writeConfig(
      'own.cfg',
      'name = "own"\nmemory = 256\nstatic_shm = ["id=chat, begin=0x100000, size=0x100000, role=owner, cache_policy=x86_normal"]\n',
    );
    await host.ok(['create', own]);
    assert.equal(shmFiles().length, 1);
    const mismatch = await host.xl(['create', borrower(', offset=0xf8000')]);
    assert.equal(mismatch.code, 1);
    assert.match(
      mismatch.stderr,
      /static_shm 'chat': offset 0xf8000 \+ size 0x10000 exceeds the owner's size 0x100000/,
    );
    assert.equal(host.qemuPids().length, 1, 'only the owner runs');
    await host.ok(['create', borrower()]);
    const [a, b] = await Promise.all([ready('own'), ready('bor')]);
    assert.match(await a.run('xenode-shm list'), /^chat pci=0000:00:10\.0 offset=0x0 size=0x100000$/m);
    assert.equal(await a.run("xenode-shm write chat 64 'hello borrower, from owner'; echo rc=$?"), 'rc=0');
    assert.equal(await b.run('xenode-shm read chat 64 64'), 'hello borrower, from owner');
    assert.equal(await b.run("xenode-shm write chat 512 'and back again'; echo rc=$?"), 'rc=0');
    assert.equal(await a.run('xenode-shm read chat 512 64'), 'and back again');
    const beyond = await b.run('xenode-shm read chat 0x10000 1; echo rc=$?');
    assert.match(beyond, /beyond the region's 65536 bytes\s+rc=1/);
    const ownId = await domid('own');
    assert.equal((await host.ok(['store', 'read', `/local/domain/${ownId}/static_shm/chat/role`])).trim(), 'owner');
    assert.match(
      await host.ok(['shm-list']),
      /^admin\s+chat\s+0x100000\s+\d+\s+\d+,\d+\s+\/dev\/shm\/xenode-[0-9a-f]{8}-admin\.chat$/m,
    );
    a.close();
    b.close();
    // The region outlives its owner while the borrower uses it, and goes with the last user.
    await host.ok(['destroy', 'own']);
    assert.equal(shmFiles().length, 1);
    await host.ok(['destroy', 'bor']);
    assert.deepEqual(shmFiles(), []);
  });
});
