// Disks for domains with real guests: disk=[...] at boot (raw, read-only, qcow2),
// data checked on the host after poweroff, hotplug with block-attach/-detach,
// a restart that keeps a hot-plugged disk, and the errors a user can cause.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;
const img = (name: string) => join(host.dir, name);

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Wait until the console shows `re` after `from`, then give the shell a moment to print its prompt. */
async function ready(con: ConsoleSession, name: string, from = 0): Promise<void> {
  await con.expect(/XENODE-READY/, 120_000, from);
  await con.expect(new RegExp(`${name}:/# `), 60_000, from);
}

/** The guest device whose serial is `vdev` (the stable name), waiting for it to appear. */
async function guestDisk(con: ConsoleSession, vdev: string): Promise<string> {
  const out = await con.run(
    `for i in $(seq 300); do for s in /sys/block/vd*/serial; do [ "$(cat $s 2>/dev/null)" = ${vdev} ] && d=\${s%/serial} && break 2; done; sleep 0.1; done; echo \${d##*/}`,
    60_000,
  );
  assert.match(out, /^vd[a-z]+$/, `no guest disk with serial ${vdev}: ${out}`);
  return out;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
});
after(async () => {
  await host.cleanup();
});

describe('disks at boot', () => {
  const payload = `xenode-disk-${process.pid}-${Date.now()}`;
  let con: ConsoleSession;

  before(() => {
    sh('mke2fs', ['-q', '-t', 'ext4', '-F', img('data.img'), '64M']);
    const seed = img('seed');
    mkdirSync(seed);
    writeFileSync(join(seed, 'seed.txt'), 'from the host\n');
    sh('mke2fs', ['-q', '-t', 'ext4', '-d', seed, '-F', img('ro.img'), '16M']);
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', img('q.qcow2'), '32M']);
    writeFileSync(img('hot.img'), Buffer.alloc(0));
    sh('truncate', ['-s', '20M', img('hot.img')]);
  });

  it('boots with raw, read-only and qcow2 disks; the guest finds them by order and by serial', async () => {
    const cfg = host.writeConfig(
      'dsk.cfg',
      [
        'name = "dsk1"',
        'memory = 256',
        'on_crash = "restart"',
        `disk = [ "${img('q.qcow2')},qcow2,xvdd,rw", "${img('data.img')},raw,xvdb,rw", "format=raw, vdev=xvdc, access=ro, target=${img('ro.img')}" ]`,
        '',
      ].join('\n'),
    );
    const r = await host.xl(['create', cfg]);
    assert.equal(r.code, 0, r.stderr);
    con = await host.console('dsk1');
    await ready(con, 'dsk1');
    // Sorted by Xen device number: xvdb, xvdc, xvdd are the guest's vda, vdb, vdc.
    assert.equal(await con.run('for d in vda vdb vdc; do cat /sys/block/$d/serial; echo; done'), 'xvdb\nxvdc\nxvdd');
    assert.equal(
      await con.run('cat /sys/block/vda/size /sys/block/vdb/size /sys/block/vdc/size'),
      '131072\n32768\n65536',
    );
    const id = (await host.ok(['domid', 'dsk1'])).trim();
    const rows = (await host.ok(['block-list', 'dsk1'])).trim().split('\n');
    assert.match(rows[0] ?? '', /^Vdev {2}BE {2}handle state evt-ch ring-ref BE-path/);
    assert.deepEqual(
      rows.slice(1).map((l) => l.split(/\s+/).join(' ')),
      [51728, 51744, 51760].map((n) => `${n} 0 ${id} 4 -1 -1 /local/domain/0/backend/vbd/${id}/${n}`),
    );
  });

  it('writes to the raw disk reach the image (read back on the host after poweroff)', async () => {
    // The default guest mounts xvdb at /mnt/data.
    assert.match(await con.run('mount | grep /mnt/data'), /^\/dev\/vda on \/mnt\/data type ext4 \(rw/);
    assert.equal(await con.run(`echo ${payload} > /mnt/data/hello.txt && sync && cat /mnt/data/hello.txt`), payload);
  });

  it('a read-only disk is read-only in the guest', async () => {
    assert.equal(await con.run('cat /sys/block/vdb/ro'), '1');
    const mount = await con.run('mkdir -p /mnt/ro && mount /dev/vdb /mnt/ro 2>&1; mount | grep /mnt/ro');
    assert.match(mount, /\/dev\/vdb on \/mnt\/ro type ext4 \(ro/);
    assert.equal(await con.run('cat /mnt/ro/seed.txt'), 'from the host');
    assert.match(await con.run('echo x > /mnt/ro/new 2>&1; echo rc=$?'), /Read-only file system[\s\S]*rc=1/);
    assert.match(await con.run('dd if=/dev/zero of=/dev/vdb bs=4k count=1 2>&1; echo rc=$?'), /rc=1/);
  });

  it('the qcow2 disk takes raw writes', async () => {
    const out = await con.run(
      `printf '${payload}' | dd of=/dev/vdc bs=1M seek=3 conv=fsync 2>/dev/null; dd if=/dev/vdc bs=1M skip=3 count=1 2>/dev/null | head -c ${payload.length}`,
    );
    assert.equal(out, payload);
  });

  it('block-stats counts the I/O per disk', async () => {
    const stats = await host.ok(['block-stats', 'dsk1']);
    const row = stats.split('\n').find((l) => /^dsk1\s+xvdb\s/.test(l));
    assert.ok(row, stats);
    const [, , , rd, wr] = row.split(/\s+/);
    assert.ok(Number(rd) > 0 && Number(wr) > 0, row);
  });

  it('block-attach hot-plugs a disk the guest sees; block-detach takes it away', async () => {
    const r = await host.xl(['block-attach', 'dsk1', `${img('hot.img')},raw,xvde,rw`]);
    assert.equal(r.code, 0, r.stderr);
    const dev = await guestDisk(con, 'xvde');
    assert.equal(await con.run(`cat /sys/block/${dev}/size`), String((20 * 1024 * 1024) / 512));
    assert.match(
      await host.ok(['block-list', 'dsk1']),
      /^51776 +0 +\d+ +4 +-1 +-1 +\/local\/domain\/0\/backend\/vbd\/\d+\/51776/m,
    );
    const id = (await host.ok(['domid', 'dsk1'])).trim();
    assert.equal(
      (await host.ok(['store', 'read', `/local/domain/0/backend/vbd/${id}/51776/params`])).trim(),
      img('hot.img'),
    );
    assert.equal((await host.ok(['store', 'read', `/local/domain/${id}/device/vbd/51776/state`])).trim(), '4');

    const d = await host.xl(['block-detach', 'dsk1', 'xvde']);
    assert.equal(d.code, 0, d.stderr);
    assert.doesNotMatch(await host.ok(['block-list', 'dsk1']), /^51776/m);
    assert.equal(await con.run('for s in /sys/block/vd*/serial; do cat $s; echo; done | grep -c xvde'), '0');
    const gone = await host.xl(['store', 'read', `/local/domain/${id}/device/vbd/51776/state`]);
    assert.notEqual(gone.code, 0);
  });

  it('a hot-plugged disk stays with the domain when it restarts with a new QEMU', async () => {
    await host.ok(['block-attach', 'dsk1', `${img('hot.img')},raw,xvde,rw`]);
    await guestDisk(con, 'xvde');
    const [pid] = host.qemuPids();
    assert.ok(pid);
    const mark = con.output.length;
    process.kill(pid, 'SIGKILL'); // on_crash="restart": a new QEMU from the domain's config
    await ready(con, 'dsk1', mark);
    assert.notEqual(host.qemuPids()[0], pid);
    await guestDisk(con, 'xvde');
    const long = JSON.parse(await host.ok(['list', '-l', 'dsk1'])) as Array<{
      config: { disk: Array<{ vdev: string }> };
    }>;
    assert.deepEqual(long[0]?.config.disk.map((x) => x.vdev).sort(), ['xvdb', 'xvdc', 'xvdd', 'xvde']);
  });

  it('refuses an image another running domain has open for writing, and leaves nothing behind', async () => {
    const cfg = host.writeConfig(
      'dup.cfg',
      `name = "dsk2"\nmemory = 256\ndisk = [ "${img('data.img')},raw,xvdb,ro" ]\n`,
    );
    const before = host.qemuPids().length;
    const r = await host.xl(['create', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /disk image '.*data\.img' is already in use by domain dsk1 \(xvdb, rw\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(host.qemuPids().length, before);
    assert.doesNotMatch(await host.ok(['list']), /dsk2/);
  });

  it('after poweroff the host reads back what the guest wrote (debugfs, qemu-img)', async () => {
    con.send('poweroff\n');
    for (let i = 0; i < 300 && !con.closed; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(con.closed, 'console closes when the domain is gone');
    assert.equal(sh('debugfs', ['-R', 'cat /hello.txt', img('data.img')]).trim(), payload);
    sh('qemu-img', ['convert', '-O', 'raw', img('q.qcow2'), img('q.raw')]);
    const raw = readFileSync(img('q.raw'));
    assert.equal(raw.subarray(3 << 20, (3 << 20) + payload.length).toString(), payload);
  });
});

describe('disk errors: one clear line, nonzero exit, nothing left running', () => {
  const createFails = async (cfgText: string, re: RegExp) => {
    const cfg = host.writeConfig('bad.cfg', cfgText);
    const r = await host.xl(['create', cfg]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('Parsing config') && !l.startsWith('xenoded was not running'));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? '', re);
    assert.equal(host.qemuPids().length, 0);
  };

  it('a missing image file, at its config line', async () => {
    await createFails(
      'name = "e1"\n\ndisk = [ "/nonexistent/d.img,raw,xvda,rw" ]\n',
      /bad\.cfg:3:\d+: .*'\/nonexistent\/d\.img' not found/,
    );
  });

  it('an unknown format', async () => {
    await createFails(
      `name = "e2"\ndisk = [ "${img('data.img')},vmdk,xvda,rw" ]\n`,
      /bad\.cfg:2:\d+: unknown disk format 'vmdk'/,
    );
  });

  it('a duplicate vdev (also under another name)', async () => {
    await createFails(
      `name = "e3"\ndisk = [ "${img('data.img')},raw,xvda,ro",\n "${img('ro.img')},raw,51712,ro" ]\n`,
      /bad\.cfg:3:\d+: vdev '51712' is the same device as 'xvda'/,
    );
  });

  it('a qcow2 disk that is not qcow2', async () => {
    await createFails(`name = "e4"\ndisk = [ "${img('ro.img')},qcow2,xvda,ro" ]\n`, /is not a qcow2 image/);
  });

  it('detaching an unknown vdev, and attaching to an unknown domain', async () => {
    await host.ok(['create', host.writeConfig('e5.cfg', 'name = "e5"\nmemory = 160\n')]);
    const r = await host.xl(['block-detach', 'e5', 'xvdz']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error: Device xvdz not connected.\n');
    const a = await host.xl(['block-attach', 'nosuchdom', `${img('hot.img')},raw,xvdc,rw`]);
    assert.equal(a.code, 1);
    assert.equal(a.stderr, 'nosuchdom is an invalid domain identifier (rc=-6)\n');
    const f = await host.xl(['block-attach', 'e5', '/nonexistent/x.img,raw,xvdc,rw']);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /^disk image '\/nonexistent\/x\.img' for xvdc not found/);
    assert.match(await host.ok(['block-list', 'e5']), /^Vdev.*\n$/);
    await host.ok(['destroy', 'e5']);
  });
});
