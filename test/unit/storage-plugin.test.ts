// The storage plugin without a daemon: pools, volumes and quotas through its
// service, the gate's answers, and the check made again when a QEMU is about to
// open a sponsor's qcow2 volume (a backing file rewritten after admission).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { DiskSpec } from '../../src/config/types.ts';
import { diskPlugin } from '../../src/features/disks/plugin.ts';
import { StoragePlugin } from '../../src/features/storage/plugin.ts';
import { xenodeDirs } from '../../src/toolstack/dirs.ts';
import type { Domain } from '../../src/toolstack/domain.ts';
import { DaemonLog } from '../../src/toolstack/log.ts';
import type { Principal } from '../../src/toolstack/principal.ts';
import { SponsorPolicy } from '../../src/toolstack/sponsors.ts';
import { NULL_STORE_SINK } from '../../src/toolstack/store-sink.ts';

const ADMIN: Principal = { sponsor: 'admin', admin: true };
const ALICE: Principal = { sponsor: 'alice', admin: false };
const BOB: Principal = { sponsor: 'bob', admin: false };

let base: string;
let pool: string;
let plugin: StoragePlugin;
let policy: SponsorPolicy;

/** Just enough of a Domain for beforeLaunch. */
function domain(sponsor: string, disk: DiskSpec[]): Domain {
  return { rec: { sponsor, config: { disk } } } as unknown as Domain;
}

before(async () => {
  base = realpathSync(mkdtempSync(join(tmpdir(), 'xn-stor-')));
  pool = join(base, 'pool');
  mkdirSync(pool);
  const dirs = xenodeDirs(base);
  policy = new SponsorPolicy(dirs.stateDb);
  plugin = new StoragePlugin();
  await plugin.start({ dirs, log: new DaemonLog(undefined), store: NULL_STORE_SINK, sponsors: policy });
  plugin.service.addPool(ADMIN, 'p', pool, ['alice', 'bob']);
});
after(async () => {
  await plugin.stop();
  policy.close();
  rmSync(base, { recursive: true, force: true });
});

describe('storage plugin', () => {
  it('the gate vouches for a sponsor’s own volume only, by its canonical path', async () => {
    const v = await plugin.service.create(ALICE, { pool: 'p', name: 'd', size: '1M' });
    assert.equal(v.path, join(pool, 'alice', 'd'));
    const use = { kind: 'disk' as const, write: true, format: 'raw' as const };
    assert.equal(plugin.fileGate.sponsorFile('alice', `${pool}/alice/./d`, use), v.path);
    for (const [who, path] of [
      ['bob', v.path],
      ['alice', '/etc/shadow'],
      ['alice', 'd'],
      ['alice', join(pool, 'alice', 'nothing')],
      ['admin', v.path],
    ] as const) {
      assert.throws(() => plugin.fileGate.sponsorFile(who, path, use), /is not a volume of yours/, `${who} ${path}`);
    }
    symlinkSync(pool, join(base, 'link'));
    assert.throws(() => plugin.fileGate.sponsorFile('alice', join(base, 'link', 'alice', 'd'), use), /not a volume/);
  });

  it('a sponsor cannot reach the admin’s or another sponsor’s volumes through the service', async () => {
    assert.throws(() => plugin.service.listVolumes(ALICE, { sponsor: 'bob' }), /only the admin may act/);
    await assert.rejects(
      plugin.service.create(ALICE, { pool: 'p', name: 'x', size: '1M', sponsor: 'bob' }),
      /only the admin/,
    );
    assert.throws(() => plugin.service.delete(BOB, 'p', 'd'), /^XenodeError: no volume p\/d$/);
    assert.throws(() => plugin.service.listVolumes({ sponsor: 'admin', admin: false }), /no storage for this token/);
    assert.deepEqual(
      plugin.service.listVolumes(BOB).map((v) => v.name),
      [],
    );
  });

  it('quotas count volumes and sizes, a qcow2 by its virtual size', async () => {
    policy.set('bob', { volumes: 2, diskBytes: 3 * 2 ** 20 });
    await plugin.service.create(BOB, { pool: 'p', name: 'q', size: '2M', format: 'qcow2' });
    await assert.rejects(
      plugin.service.create(BOB, { pool: 'p', name: 'r', size: '2M' }),
      /sponsor bob would hold 4194304 bytes of volumes, over its limit of 3145728/,
    );
    await plugin.service.create(BOB, { pool: 'p', name: 'r', size: '1M' });
    await assert.rejects(
      plugin.service.create(BOB, { pool: 'p', name: 's', size: '512' }),
      /3 volumes, over its limit of 2/,
    );
    assert.deepEqual(plugin.usage('bob'), { volumes: 2, diskBytes: 3 * 2 ** 20 });
    policy.remove('bob');
  });

  it('a qcow2 volume rewritten after admission is refused when a QEMU is about to open it again', async () => {
    const base2 = await plugin.service.create(ALICE, { pool: 'p', name: 'base', size: '1M', format: 'qcow2' });
    const top = join(pool, 'alice', 'top');
    await plugin.service.create(ALICE, { pool: 'p', name: 'top', size: '1M', format: 'qcow2' });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'base', '-F', 'qcow2', top, '1M']);
    const spec: DiskSpec = { target: top, format: 'qcow2', vdev: 'xvdb', access: 'rw', devtype: 'disk' };
    await plugin.beforeLaunch(domain('alice', [spec]));
    // The base's header now names a host file (as a guest holding it raw could write).
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/shadow', '-F', 'raw', base2.path, '1M']);
    await assert.rejects(plugin.beforeLaunch(domain('alice', [spec])), /volume p\/top has a backing file outside/);
    // A qcow2 volume used as raw would let a guest write its metadata: refused.
    await assert.rejects(
      plugin.beforeLaunch(domain('alice', [{ ...spec, target: base2.path, format: 'raw' }])),
      /volume p\/base is a qcow2 volume: it is used only as qcow2/,
    );
    // The admin's own files (outside every pool) stay free.
    writeFileSync(join(base, 'admin.qcow2'), '');
    await plugin.beforeLaunch(domain('alice', [{ ...spec, target: join(base, 'admin.qcow2') }]));
    await plugin.beforeLaunch(domain('admin', [spec]));
  });

  it('a restart refuses a volume its sponsor lost (grant revoked), raw or qcow2', async () => {
    const raw = await plugin.service.create(ALICE, { pool: 'p', name: 'keep', size: '1M' });
    const q = await plugin.service.create(ALICE, { pool: 'p', name: 'keepq', size: '1M', format: 'qcow2' });
    const disk = (target: string, format: 'raw' | 'qcow2'): DiskSpec => ({
      target,
      format,
      vdev: 'xvdb',
      access: 'rw',
      devtype: 'disk',
    });
    await plugin.beforeLaunch(domain('alice', [disk(raw.path, 'raw')]));
    plugin.service.revoke(ADMIN, 'p', 'alice');
    try {
      for (const [path, format] of [
        [raw.path, 'raw'],
        [q.path, 'qcow2'],
      ] as const) {
        await assert.rejects(
          plugin.beforeLaunch(domain('alice', [disk(path, format)])),
          new RegExp(`^XenodeError: disk '${path}' is no longer a volume of alice's`),
        );
      }
      // A file outside every pool was the admin's doing: still free.
      writeFileSync(join(base, 'admin.raw'), '');
      await plugin.beforeLaunch(domain('alice', [disk(join(base, 'admin.raw'), 'raw')]));
    } finally {
      plugin.service.grant(ADMIN, 'p', 'alice');
    }
  });

  it('an upload counts the qcow2 volumes being created at the same moment', async () => {
    // qemu-img held until the test lets it go: the create stays pending meanwhile.
    const bin = join(base, 'bin');
    mkdirSync(bin);
    const fifo = join(base, 'go');
    execFileSync('mkfifo', [fifo]);
    writeFileSync(join(bin, 'qemu-img'), `#!/bin/sh\nread _ < '${fifo}'\nexec /usr/bin/qemu-img "$@"\n`, {
      mode: 0o755,
    });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    const CAROL: Principal = { sponsor: 'carol', admin: false };
    plugin.service.grant(ADMIN, 'p', 'carol');
    policy.set('carol', { diskBytes: 3 * 2 ** 20 });
    const creating = plugin.service.create(CAROL, { pool: 'p', name: 'big', size: '2M', format: 'qcow2' });
    try {
      const img = join(base, 'small.qcow2');
      execFileSync('/usr/bin/qemu-img', ['create', '-q', '-f', 'qcow2', img, '2M']);
      const bytes = readFileSync(img);
      const upload = plugin.service.upload(
        CAROL,
        { pool: 'p', name: 'up', length: bytes.length },
        Readable.from([bytes]),
      );
      await assert.rejects(upload, /sponsor carol would hold \d+ bytes of volumes, over its limit of 3145728/);
    } finally {
      writeFileSync(fifo, 'go\n');
      await creating;
      process.env.PATH = path;
      policy.remove('carol');
    }
    assert.deepEqual(
      plugin.service.listVolumes(CAROL).map((v) => v.name),
      ['big'],
    );
  });

  it('the disk plugin hands QEMU the chain the gate checked; the admin’s disks are left as they were', async () => {
    const base3 = await plugin.service.create(ALICE, { pool: 'p', name: 'base3', size: '1M' });
    const top3 = join(pool, 'alice', 'top3');
    await plugin.service.create(ALICE, { pool: 'p', name: 'top3', size: '1M', format: 'qcow2' });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'base3', '-F', 'raw', top3, '1M']);
    const spec: DiskSpec = { target: top3, format: 'qcow2', vdev: 'xvdb', access: 'rw', devtype: 'disk' };
    const blockdev = async (sponsor: string) => {
      const c = await diskPlugin(plugin.fileGate).beforeLaunch(domain(sponsor, [spec]));
      const args = c?.qemuArgs ?? [];
      // The image node sits under the disk's throttle filter nodes (disk limits, issue 16).
      let node = JSON.parse(args[args.indexOf('-blockdev') + 1] as string) as {
        driver: string;
        file?: unknown;
        backing?: unknown;
      };
      while (node.driver === 'throttle') node = node.file as typeof node;
      return node;
    };
    const pinned = (await blockdev('alice')).backing as { driver: string; file: { filename: string } };
    assert.deepEqual([pinned.driver, pinned.file.filename], ['raw', base3.path]);
    assert.ok(!('backing' in (await blockdev('admin'))), 'the admin’s disk got a chain');
    // A chain the gate refuses never reaches QEMU.
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/shadow', '-F', 'raw', top3, '1M']);
    await assert.rejects(blockdev('alice'), /volume p\/top3 has a backing file outside/);
  });
});

describe('storage records made before sizes were recorded', () => {
  it('get the size their file states, once, when the daemon starts', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'xn-stor-old-')));
    try {
      const area = join(dir, 'pool', 'alice');
      mkdirSync(area, { recursive: true });
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(area, 'q'), '2M']);
      writeFileSync(join(area, 'r'), Buffer.alloc(4096));
      const dirs = xenodeDirs(dir);
      // The tables as the first version of this feature made them: no size column.
      const old = new Database(dirs.stateDb);
      old.exec(`
        CREATE TABLE storage_pools (name TEXT PRIMARY KEY, dir TEXT NOT NULL UNIQUE, created INTEGER NOT NULL);
        CREATE TABLE storage_grants (pool TEXT NOT NULL, sponsor TEXT NOT NULL, PRIMARY KEY (pool, sponsor));
        CREATE TABLE storage_volumes (pool TEXT NOT NULL, sponsor TEXT NOT NULL, name TEXT NOT NULL,
          format TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (pool, sponsor, name));`);
      old.prepare('INSERT INTO storage_pools VALUES (?, ?, 0)').run('p', join(dir, 'pool'));
      old.prepare("INSERT INTO storage_grants VALUES ('p', 'alice')").run();
      for (const [name, format] of [
        ['q', 'qcow2'],
        ['r', 'raw'],
      ])
        old.prepare("INSERT INTO storage_volumes VALUES ('p', 'alice', ?, ?, 0)").run(name, format);
      old.close();
      const pol = new SponsorPolicy(dirs.stateDb);
      const p = new StoragePlugin();
      await p.start({ dirs, log: new DaemonLog(undefined), store: NULL_STORE_SINK, sponsors: pol });
      try {
        // A later header rewrite does not change the recorded size.
        execFileSync('qemu-img', ['resize', '-q', '-f', 'qcow2', join(area, 'q'), '1G']);
        assert.deepEqual(
          p.service.listVolumes(ALICE).map((v) => [v.name, v.format, v.size]),
          [
            ['q', 'qcow2', 2 * 2 ** 20],
            ['r', 'raw', 4096],
          ],
        );
        const spec: DiskSpec = {
          target: join(area, 'q'),
          format: 'qcow2',
          vdev: 'xvdb',
          access: 'rw',
          devtype: 'disk',
        };
        await assert.rejects(p.beforeLaunch(domain('alice', [spec])), /claims a virtual size of 1G, more than the 2M/);
      } finally {
        await p.stop();
        pol.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
