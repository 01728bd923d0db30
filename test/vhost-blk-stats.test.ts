// The I/O counters of disks served by Xenode's backend (backendtype=xenode,
// issue 18), with a real guest: QEMU does not see these disks' I/O, so the
// backend counts it (a stats file in the domain's run directory) and
// block-stats and accounting read that. dd in the guest, past its page cache,
// moves the counters by exactly what it moved; a SIGKILL of the backend does
// not set them back; a sponsor cannot read another's.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const XVDB = 51728;
const MiB = 1024 * 1024;

let host: TestHost;

interface Row {
  rdBytes: number;
  wrBytes: number;
  rdOps: number;
  wrOps: number;
  flushOps: number;
}

/** xvdb's row of `xenode block-stats` (Domain Vdev Devid RD-bytes WR-bytes RD-ops WR-ops Flush-ops ...). */
async function blockStats(name: string): Promise<Row> {
  const out = await host.ok(['block-stats', name]);
  const row = out.split('\n').find((l) => new RegExp(`^${name}\\s+xvdb\\s`).test(l));
  assert.ok(row, `no xvdb row in block-stats:\n${out}`);
  const [, , devid, rd, wr, rdOps, wrOps, flush] = row.split(/\s+/).map((x) => x.trim());
  assert.equal(devid, String(XVDB));
  return {
    rdBytes: Number(rd),
    wrBytes: Number(wr),
    rdOps: Number(rdOps),
    wrOps: Number(wrOps),
    flushOps: Number(flush),
  };
}

interface Usage {
  diskReadBytes: number;
  diskWriteBytes: number;
  diskReadOps: number;
  diskWriteOps: number;
}

/** The domain's accounted usage, once sampled after `t` (ms). */
async function accountedAfter(name: string, t: number): Promise<Usage> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = JSON.parse(await host.ok(['account', '--json'])) as {
      domains: Array<{ name: string; destroyed: number | null; lastSample?: number; usage: Usage }>;
    };
    const d = r.domains.find((x) => x.name === name && x.destroyed === null);
    if (d && (d.lastSample ?? 0) > t) return d.usage;
    if (Date.now() > deadline) throw new Error(`${name} not accounted after ${t}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function backendPids(): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      if (cmd.includes('--socket') && cmd.includes(`${host.dir}/`) && cmd.includes('vblk-')) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
});

after(async () => {
  const pids = backendPids();
  await host.cleanup();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

describe('backendtype=xenode: block-stats and accounting count the backend’s I/O', () => {
  let con: ConsoleSession;
  let dev: string;
  let id: number;

  before(async () => {
    const img = join(host.dir, 'st.img');
    execFileSync('truncate', ['-s', '64M', img]);
    const cfg = host.writeConfig(
      'vs.cfg',
      ['name = "vs1"', 'memory = 256', `disk = [ "${img},raw,xvdb,rw,backendtype=xenode" ]`, ''].join('\n'),
    );
    const r = await host.xl(['create', cfg]);
    assert.equal(r.code, 0, r.stderr);
    con = await host.console('vs1');
    await con.expect(/XENODE-READY/, 180_000);
    await con.expect(/vs1:\/# /, 60_000);
    id = Number((await host.ok(['domid', 'vs1'])).trim());
    dev = await con.run(
      `for s in /sys/block/vd*/serial; do [ "$(cat $s)" = xvdb ] && d=\${s%/serial}; done; echo \${d##*/}`,
    );
    assert.match(dev, /^vd[a-z]+$/);
    // A file to write, made before any counting starts.
    await con.run('dd if=/dev/urandom of=/tmp/r bs=1M count=4 2>/dev/null; sync');
  });

  it('dd in the guest moves block-stats by exactly the bytes it moved', async () => {
    const s0 = await blockStats('vs1');
    await con.run(`dd if=/dev/${dev} of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null`);
    const s1 = await blockStats('vs1');
    assert.equal(s1.rdBytes - s0.rdBytes, 8 * MiB, 'read bytes');
    assert.ok(s1.rdOps - s0.rdOps >= 8, `read operations: ${s1.rdOps - s0.rdOps}`);
    assert.equal(s1.wrBytes, s0.wrBytes, 'no write');
    await con.run(`dd if=/tmp/r of=/dev/${dev} bs=1M seek=2 oflag=direct conv=fsync 2>/dev/null`);
    const s2 = await blockStats('vs1');
    assert.equal(s2.wrBytes - s1.wrBytes, 4 * MiB, 'written bytes');
    assert.ok(s2.wrOps - s1.wrOps >= 4, `write operations: ${s2.wrOps - s1.wrOps}`);
    assert.ok(s2.flushOps > s1.flushOps, 'the fsync is a flush');
    assert.equal(s2.rdBytes, s1.rdBytes, 'no read');
  });

  it('a SIGKILL of the backend does not set the counters back; the new backend counts on', async () => {
    const be = `/local/domain/0/backend/vbd/${id}/${XVDB}`;
    const pid = Number((await host.ok(['store', 'read', `${be}/xenode-backend/pid`])).trim());
    const s0 = await blockStats('vs1');
    process.kill(pid, 'SIGKILL');
    await until('the restarted backend', async () => {
      const p = (await host.ok(['store', 'read', `${be}/xenode-backend/pid`])).trim();
      const st = (await host.ok(['store', 'read', `${be}/xenode-backend/state`])).trim();
      return p !== String(pid) && st === 'running' ? true : undefined;
    });
    const s1 = await blockStats('vs1');
    assert.ok(s1.rdBytes >= s0.rdBytes && s1.wrBytes >= s0.wrBytes, 'not set back');
    await con.run(`dd if=/dev/${dev} of=/dev/null bs=1M count=2 skip=16 iflag=direct 2>/dev/null`);
    const s2 = await blockStats('vs1');
    assert.equal(s2.rdBytes - s1.rdBytes, 2 * MiB);
  });

  it("accounting's disk counters count the backend disk's I/O", async () => {
    const a0 = await accountedAfter('vs1', Date.now());
    await con.run(`dd if=/dev/${dev} of=/dev/null bs=1M count=16 iflag=direct 2>/dev/null`);
    await con.run(`dd if=/tmp/r of=/dev/${dev} bs=1M seek=20 oflag=direct 2>/dev/null`);
    const a1 = await accountedAfter('vs1', Date.now());
    assert.equal(a1.diskReadBytes - a0.diskReadBytes, 16 * MiB, 'read bytes accounted');
    assert.equal(a1.diskWriteBytes - a0.diskWriteBytes, 4 * MiB, 'written bytes accounted');
    assert.ok(a1.diskReadOps - a0.diskReadOps >= 16);
  });

  it('block-attach hot-plugs a backendtype=xenode disk the guest reads and writes; block-detach stops its backend, twice over', async () => {
    const img = join(host.dir, 'hot.img');
    execFileSync('truncate', ['-s', '32M', img]);
    writeFileSync(img, 'xenode-hotplug-mark', { flag: 'r+' });
    const ctl = join(host.dir, 'domains', String(id), 'vblk-51744.ctl');
    for (let round = 1; round <= 2; round++) {
      const r = await host.xl(['block-attach', 'vs1', `${img},raw,xvdc,rw,backendtype=xenode`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(await host.ok(['block-list', 'vs1']), /^51744 +0 +\d+ +4 /m);
      assert.equal(
        (await host.ok(['store', 'read', `/local/domain/0/backend/vbd/${id}/51744/xenode-backend/state`])).trim(),
        'running',
      );
      const hot = await until('the guest to see xvdc', async () => {
        const d = await con.run(
          `for s in /sys/block/vd*/serial; do [ "$(cat $s)" = xvdc ] && d=\${s%/serial}; done; echo \${d##*/}`,
        );
        return /^vd[a-z]+$/.test(d) ? d : undefined;
      });
      assert.equal(
        await con.run(`dd if=/dev/${hot} bs=4k count=1 iflag=direct 2>/dev/null | head -c 19`),
        'xenode-hotplug-mark',
      );
      await con.run(`echo round-${round} | dd of=/dev/${hot} bs=4k seek=2 conv=sync oflag=direct 2>/dev/null`);
      const back = Buffer.alloc(7);
      const fd = openSync(img, 'r');
      readSync(fd, back, 0, 7, 8192);
      closeSync(fd);
      assert.equal(back.toString(), `round-${round}`, 'the write reached the image');
      const pid = Number(
        (await host.ok(['store', 'read', `/local/domain/0/backend/vbd/${id}/51744/xenode-backend/pid`])).trim(),
      );
      const det = await host.xl(['block-detach', 'vs1', 'xvdc']);
      assert.equal(det.code, 0, det.stderr);
      assert.doesNotMatch(await host.ok(['block-list', 'vs1']), /^51744 /m);
      await until('its backend to exit', async () => {
        try {
          process.kill(pid, 0);
          return undefined;
        } catch {
          return true;
        }
      });
      assert.equal(existsSync(ctl), false, 'its control socket is gone');
      assert.equal(await con.run(`[ -e /sys/block/${hot} ] && echo present || echo gone`), 'gone');
    }
    // The first disk was never disturbed.
    assert.equal(await con.run(`dd if=/dev/${dev} bs=4k count=1 iflag=direct 2>/dev/null | wc -c`), '4096');
  });

  it('save is refused in one line (no dirty logging yet); the domain and its disk carry on', async () => {
    const file = join(host.dir, 'vs1.save');
    const r = await host.xl(['save', 'vs1', file]);
    assert.notEqual(r.code, 0, 'a save without the backend logging its writes would lose them');
    assert.match(r.stderr, /LOG_SHMFD/, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(existsSync(file) ? statSync(file).size : 0, 0, 'no save file to restore from');
    assert.match(await host.ok(['list', 'vs1']), /vs1 +\d+ +256 +1 +[r-][b-]----/, 'running, not paused');
    assert.equal(await con.run(`dd if=/dev/${dev} bs=4k count=1 iflag=direct 2>/dev/null | wc -c`), '4096');
  });

  it("another sponsor cannot read the domain's block-stats", async () => {
    const token = (await host.ok(['token', 'create', 'mallory'])).trim();
    const cli = new TestHost({ XENODE_URL: `http://127.0.0.1:${host.tcpPort()}`, XENODE_TOKEN: token });
    try {
      const r = await cli.xl(['block-stats', 'vs1']);
      const none = await cli.xl(['block-stats', 'nosuch']);
      assert.notEqual(r.code, 0);
      assert.doesNotMatch(r.stdout, /xvdb/);
      // The same answer as for a domain that does not exist: nothing tells mallory it does.
      assert.equal(r.stderr.replace('vs1', 'X'), none.stderr.replace('nosuch', 'X'));
    } finally {
      await cli.cleanup();
    }
  });
});
