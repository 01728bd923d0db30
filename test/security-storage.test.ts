// Issue 13, finding 1: a sponsor's disks, kernels and ramdisks are volumes in its
// storage pools, never host files. Everything a sponsor does here goes through
// the CLI (or the API) with its token over the real TCP API: alice creates a
// volume, boots a domain on it, writes and reads it back, and deletes it; then
// /etc/shadow, bob's volume, a symlink out of her pool, a qcow2 backed by a host
// file, a host kernel, a pool not granted to her, and her quotas are each
// refused in one line with nothing started.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type CliResult, type ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;

const http = (method: string, path: string, token?: string, body?: unknown) => host.api(method, path, token, body);

const cli = (token: string | undefined, args: string[]) => host.xlAs(token, args);

async function ok(token: string | undefined, args: string[]): Promise<string> {
  const r = await host.xlAs(token, args);
  assert.equal(r.code, 0, `xenode ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
let alice: string;
let bob: string;
/** Pool "tenants" (alice and bob) and pool "private" (bob only). */
let tenantsDir: string;
let privateDir: string;

/** The CLI as a sponsor over TCP (XENODE_URL + XENODE_TOKEN), or as the admin without a token. */
/** A refusal as a user sees it: exit 1 and one line on stderr, no stack trace. */
function refused(r: CliResult, re: RegExp): string {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}: ${r.stdout}${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `not one line: ${r.stderr}`);
  assert.match(lines[0] as string, re);
  return lines[0] as string;
}

/** QEMUs running for this host's directory (pid file written or not). */
function qemus(): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const cmd = readFileSync(`/proc/${ent}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(`${host.dir}/`)) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

async function domainNames(): Promise<string[]> {
  const out = await ok(undefined, ['list']);
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0] as string);
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  alice = (await ok(undefined, ['token', 'create', 'alice'])).trim();
  bob = (await ok(undefined, ['token', 'create', 'bob'])).trim();
  tenantsDir = join(host.dir, 'tenants');
  privateDir = join(host.dir, 'private');
  mkdirSync(tenantsDir);
  mkdirSync(privateDir);
  await ok(undefined, ['storage-add', 'tenants', tenantsDir, '--sponsor', 'alice', '--sponsor', 'bob']);
  await ok(undefined, ['storage-add', 'private', privateDir, '--sponsor', 'bob']);
});
after(async () => {
  await host.cleanup();
});

describe('finding 1: a sponsor with a pool gets disks, end to end', () => {
  let con: ConsoleSession;
  let dataPath: string;
  const marker = `xenode-volume-${process.pid}-${Date.now()}`;

  it('alice creates a raw volume: root-owned, mode 0600, in her own directory of the pool', async () => {
    dataPath = (await ok(alice, ['volume', 'create', 'tenants/data', '64M'])).trim();
    assert.equal(dataPath, join(realpathSync(tenantsDir), 'alice', 'data'));
    const st = statSync(dataPath);
    assert.equal(st.size, 64 * 2 ** 20);
    assert.equal(st.uid, 0);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(lstatSync(join(tenantsDir, 'alice')).mode & 0o777, 0o700);
    const list = (await ok(alice, ['volume', 'list'])).trim().split('\n');
    assert.match(list[0] as string, /^Pool\s+Name\s+Format\s+Size\s+Used\s+Path$/);
    assert.equal(list.length, 2, list.join('\n'));
    assert.match(list[1] as string, /^tenants\s+data\s+raw\s+64M\s+\S+\s+(\S+)$/);
    assert.equal(list[1]?.split(/\s+/)[5], dataPath);
    // bob sees none of it.
    assert.equal((await ok(bob, ['volume', 'list'])).trim().split('\n').length, 1);
  });

  it('alice boots a domain on it (default guest), writes a marker into /dev/vdb and reads it back', async () => {
    await ok(alice, ['create', '-q', 'name=alice1', 'memory=256', `disk=["${dataPath},raw,xvdb,rw"]`]);
    con = await host.console('alice1');
    await con.expect(/XENODE-READY/, 120_000);
    await con.expect(/alice1:\/# /, 60_000);
    assert.equal(
      await con.run('cat /sys/block/vda/serial; echo; cat /sys/block/vda/size'),
      `xvdb\n${(64 * 2 ** 20) / 512}`,
    );
    const back = await con.run(
      `printf '${marker}' | dd of=/dev/vda bs=512 seek=8 conv=fsync 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=8 count=1 2>/dev/null | head -c ${marker.length}`,
    );
    assert.equal(back, marker);
    // It landed in alice's volume on the host.
    assert.equal(
      readFileSync(dataPath)
        .subarray(4096, 4096 + marker.length)
        .toString(),
      marker,
    );
  });

  it('alice hot-plugs another volume of hers with block-attach; a host file or bob’s volume is refused', async () => {
    const hot = (await ok(alice, ['volume', 'create', 'tenants/hot', '8M'])).trim();
    await ok(alice, ['block-attach', 'alice1', `${hot},raw,xvdc,rw`]);
    const serials = await con.run(
      'for i in $(seq 100); do grep -qx xvdc /sys/block/vd*/serial 2>/dev/null && break; sleep 0.1; done; cat /sys/block/vd*/serial | tr "\\n" " "',
    );
    assert.match(serials, /xvdc/);
    const bobVol = (await ok(bob, ['volume', 'create', 'tenants/bobdisk', '8M'])).trim();
    for (const target of ['/etc/shadow', bobVol]) {
      refused(await cli(alice, ['block-attach', 'alice1', `${target},raw,xvdd,ro`]), /is not a volume of yours/);
    }
    assert.doesNotMatch(await ok(alice, ['block-list', 'alice1']), /51760/);
  });

  it('a volume in use cannot be deleted; after destroy it can, and it is gone', async () => {
    refused(await cli(alice, ['volume', 'delete', 'tenants/data']), /volume tenants\/data is in use by domain alice1/);
    refused(await cli(alice, ['volume', 'delete', 'tenants/hot']), /in use by domain alice1/);
    con.close();
    await ok(alice, ['destroy', 'alice1']);
    await ok(alice, ['volume', 'delete', 'tenants/data']);
    await ok(alice, ['volume', 'delete', 'tenants/hot']);
    assert.ok(!existsSync(dataPath));
    assert.deepEqual(
      (await ok(alice, ['volume', 'list'])).trim().split('\n').slice(1),
      [],
      'volumes left after delete',
    );
    refused(await cli(alice, ['volume', 'delete', 'tenants/data']), /^no volume tenants\/data/);
  });
});

describe('finding 1: a sponsor names nothing but its own volumes', () => {
  let aliceArea: string;
  let before: { domains: string[]; qemus: number[]; domid: number };
  /** Outside every pool, for qemu-img to name (never written through: -u). */
  let outside: string;

  /** `xenode create` as alice with `settings`: refused in one line, exit 1, no QEMU, nothing listed. */
  async function createRefused(name: string, settings: string[], re: RegExp): Promise<string> {
    const line = refused(await cli(alice, ['create', '-q', `name=${name}`, 'memory=128', ...settings]), re);
    assert.deepEqual(qemus(), before.qemus, 'a QEMU was started');
    assert.deepEqual(await domainNames(), before.domains);
    return line;
  }

  /** The daemon's answer to alice's xl.cfg text (no CLI-side file checks in between). */
  async function apiMessage(text: string): Promise<string> {
    const r = await http('POST', '/v1/domains', alice, { configText: text, paused: true });
    assert.ok(r.status >= 400, JSON.stringify(r.json));
    return r.json.error?.message ?? '';
  }

  it('setup: alice has a volume; bob has one in the shared pool and one in his private pool', async () => {
    await ok(alice, ['volume', 'create', 'tenants/mine', '8M']);
    await ok(bob, ['volume', 'create', 'tenants/secret', '8M']);
    await ok(bob, ['volume', 'create', 'private/secret', '8M']);
    aliceArea = join(realpathSync(tenantsDir), 'alice');
    outside = join(host.dir, 'host-secret');
    writeFileSync(outside, 'host secret\n');
    // The last domid handed out: a refused create must not take one.
    await ok(undefined, ['create', '-q', '-p', 'name=probe0', 'memory=128']);
    const domid = Number((await ok(undefined, ['domid', 'probe0'])).trim());
    await ok(undefined, ['destroy', 'probe0']);
    before = { domains: await domainNames(), qemus: qemus(), domid };
  });

  it('/etc/shadow, read-only or read-write, is refused', async () => {
    await createRefused('s1', ['disk=["/etc/shadow,raw,xvdb,r"]'], /^disk '\/etc\/shadow' is not a volume of yours/);
    await createRefused('s2', ['disk=["/etc/shadow,raw,xvdb,rw"]'], /^disk '\/etc\/shadow' is not a volume of yours/);
    // The daemon's own database too.
    await createRefused('s3', [`disk=["${host.dir}/domains.db,raw,xvdb,rw"]`], /is not a volume of yours/);
  });

  it("bob's volume is refused with the very words of a file that does not exist", async () => {
    const bobs = join(realpathSync(tenantsDir), 'bob', 'secret');
    const ghost = join(realpathSync(tenantsDir), 'bob', 'ghost');
    await createRefused('b1', [`disk=["${bobs},raw,xvdb,rw"]`], /is not a volume of yours/);
    const a = await apiMessage(`name="b2"\nmemory=128\ndisk=["${bobs},raw,xvdb,rw"]\n`);
    const b = await apiMessage(`name="b2"\nmemory=128\ndisk=["${ghost},raw,xvdb,rw"]\n`);
    assert.equal(a.replace(bobs, 'X'), b.replace(ghost, 'X'));
    // A path that climbs out of her directory into his.
    await createRefused('b3', [`disk=["${aliceArea}/../bob/secret,raw,xvdb,rw"]`], /is not a volume of yours/);
    // His volume in a pool she was never granted.
    await createRefused(
      'b4',
      [`disk=["${join(realpathSync(privateDir), 'bob', 'secret')},raw,xvdb,rw"]`],
      /is not a volume of yours/,
    );
  });

  it('a symlink out of her pool is refused, as a volume of hers or as a new name', async () => {
    // The admin made volume "link" for alice, and the file was then swapped for a symlink.
    const link = (await ok(undefined, ['volume', 'create', 'tenants/link', '1M', '--sponsor', 'alice'])).trim();
    rmSync(link);
    symlinkSync('/etc/shadow', link);
    await createRefused('l1', [`disk=["${link},raw,xvdb,r"]`], /is not a volume of yours/);
    symlinkSync('/etc/shadow', join(aliceArea, 'evil'));
    await createRefused('l2', [`disk=["${join(aliceArea, 'evil')},raw,xvdb,r"]`], /is not a volume of yours/);
    // Her own volume reached through a symlinked directory.
    symlinkSync(tenantsDir, join(host.dir, 'via'));
    await createRefused('l3', [`disk=["${join(host.dir, 'via', 'alice', 'mine')},raw,xvdb,rw"]`], /is not a volume/);
  });

  it('a qcow2 volume whose backing file (or data file) is outside her area is refused', async () => {
    // Her qcow2 volume "q", rewritten on the host (a guest cannot: it writes only inside the virtual disk).
    const q = (
      await ok(undefined, ['volume', 'create', 'tenants/q', '1M', '--format', 'qcow2', '--sponsor', 'alice'])
    ).trim();
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/shadow', '-F', 'raw', q, '1M']);
    await createRefused(
      'q1',
      [`disk=["${q},qcow2,xvdb,rw"]`],
      /^volume tenants\/q has a backing file outside your storage area/,
    );
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', outside, '-F', 'raw', q, '1M']);
    await createRefused('q2', [`disk=["${q},qcow2,xvdb,ro"]`], /backing file outside your storage area/);
    const bobs = join(realpathSync(tenantsDir), 'bob', 'secret');
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', bobs, '-F', 'raw', q, '1M']);
    await createRefused('q3', [`disk=["${q},qcow2,xvdb,rw"]`], /backing file outside your storage area/);
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${join(host.dir, 'outside-data')}`, q, '1M']);
    await createRefused('q4', [`disk=["${q},qcow2,xvdb,rw"]`], /external data file outside your storage area/);
    // A qcow2 the admin dropped into her directory is no volume at all.
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', outside, '-F', 'raw', join(aliceArea, 'drop'), '1M']);
    await createRefused('q5', [`disk=["${join(aliceArea, 'drop')},qcow2,xvdb,rw"]`], /is not a volume of yours/);
  });

  it('a host kernel or ramdisk is refused', async () => {
    // The default guest's own kernel file: a real kernel, but a host file.
    const cache = process.env.XENODE_CACHE_DIR ?? join(process.env.HOME ?? '/root', '.cache/xenode/guest');
    const dir = readdirSync(cache).find((d) => existsSync(join(cache, d, 'vmlinuz')));
    assert.ok(dir, `no kernel in ${cache}`);
    const vmlinuz = join(cache, dir, 'vmlinuz');
    await createRefused('k1', [`kernel="${vmlinuz}"`], /^kernel '.*vmlinuz' is not a volume of yours/);
    await createRefused('k2', [`kernel="${vmlinuz}"`, 'ramdisk="/etc/shadow"'], /is not a volume of yours/);
  });

  it('nothing was admitted meanwhile: her good volume gets the very next domid, by its canonical path', async () => {
    const mine = join(aliceArea, 'mine');
    await ok(alice, ['create', '-q', '-p', 'name=probe2', 'memory=128', `disk=["${mine},raw,xvdb,rw"]`]);
    const id2 = Number((await ok(alice, ['domid', 'probe2'])).trim());
    assert.equal(id2, before.domid + 1, 'a refused create took a domid');
    const cfg = JSON.parse(await ok(alice, ['list', '-l', 'probe2'])) as Array<{
      config: { disk: Array<{ target: string }> };
    }>;
    assert.equal(cfg[0]?.config.disk[0]?.target, mine);
    await ok(alice, ['destroy', 'probe2']);
  });
});

describe('finding 1: uploads are checked as uses are', () => {
  it('alice uploads a raw image; its bytes become her volume', async () => {
    const file = join(host.dir, 'upload.raw');
    const body = Buffer.alloc(3 * 2 ** 20, 7);
    body.write('uploaded-by-alice', 2 ** 20);
    writeFileSync(file, body);
    const r = await cli(alice, ['volume', 'upload', 'tenants/up', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /upload: 100% \(3M of 3M\)/);
    const path = r.stdout.trim();
    assert.ok(readFileSync(path).equals(body));
    assert.match(await ok(alice, ['volume', 'list', 'tenants']), /^tenants\s+up\s+raw\s+3M\s/m);
  });

  it('a qcow2 upload backed by a host file is refused and leaves nothing behind; one backed by her volume is kept', async () => {
    const bad = join(host.dir, 'bad.qcow2');
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/shadow', '-F', 'raw', bad, '1M']);
    refused(
      await cli(alice, ['volume', 'upload', '-q', 'tenants/bad', bad]),
      /^upload refused: the image has a backing file outside your storage area/,
    );
    const area = join(realpathSync(tenantsDir), 'alice');
    assert.deepEqual(
      readdirSync(area).filter((f) => f === 'bad' || f.startsWith('.new-')),
      [],
      'the refused upload left a file',
    );
    const good = join(host.dir, 'good.qcow2');
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'up', '-F', 'raw', good, '3M']);
    const path = (await ok(alice, ['volume', 'upload', '-q', 'tenants/overlay', good])).trim();
    assert.match(await ok(alice, ['volume', 'list']), /^tenants\s+overlay\s+qcow2\s+3M\s/m);
    // Usable as a disk: the gate follows the chain to her own "up".
    await ok(alice, ['create', '-q', '-p', 'name=ov1', 'memory=128', `disk=["${path},qcow2,xvdb,rw"]`]);
    refused(await cli(alice, ['volume', 'delete', 'tenants/up']), /in use by domain ov1/);
    await ok(alice, ['destroy', 'ov1']);
  });
});

describe('finding 1: quotas on volumes', () => {
  it('volumes= and disk= limits are checked at create and upload, naming the limit', async () => {
    const have = (await ok(alice, ['volume', 'list'])).trim().split('\n').length - 1;
    await ok(undefined, ['quota-set', 'alice', `volumes=${have + 1}`, 'disk=1G']);
    refused(
      await cli(alice, ['volume', 'create', 'tenants/huge', '2G']),
      /^sponsor alice would hold \d+ bytes of volumes, over its limit of 1073741824/,
    );
    // A sparse qcow2 counts its virtual size, not the little it takes on disk.
    refused(
      await cli(alice, ['volume', 'create', 'tenants/huge', '2G', '--format', 'qcow2']),
      /bytes of volumes, over its limit/,
    );
    await ok(alice, ['volume', 'create', 'tenants/last', '1M']);
    refused(
      await cli(alice, ['volume', 'create', 'tenants/one-more', '1M']),
      new RegExp(`^sponsor alice would hold ${have + 2} volumes, over its limit of ${have + 1}`),
    );
    const file = join(host.dir, 'small.raw');
    writeFileSync(file, Buffer.alloc(4096));
    refused(await cli(alice, ['volume', 'upload', '-q', 'tenants/one-more', file]), /volumes, over its limit/);
    // The admin is not limited, even creating for alice.
    await ok(undefined, ['volume', 'create', 'tenants/given', '2G', '--sponsor', 'alice']);
    await ok(undefined, ['quota-set', 'alice', 'volumes=none', 'disk=none']);
    await ok(alice, ['volume', 'create', 'tenants/one-more', '1M']);
  });
});

describe('finding 1: pools not granted are invisible', () => {
  it('alice does not see, list or use bob’s private pool; the answers match a pool that does not exist', async () => {
    assert.doesNotMatch(await ok(alice, ['storage-list']), /private/);
    assert.match(await ok(alice, ['storage-list']), /^tenants\s/m);
    const a = refused(await cli(alice, ['volume', 'create', 'private/x', '1M']), /^no storage pool 'private'/);
    const b = refused(await cli(alice, ['volume', 'create', 'nopool/x', '1M']), /^no storage pool 'nopool'/);
    assert.equal(a.replace('private', 'P'), b.replace('nopool', 'P'));
    refused(await cli(alice, ['volume', 'list', 'private']), /^no storage pool 'private'/);
    refused(await cli(alice, ['volume', 'list', '--sponsor', 'bob']), /only the admin may act for another sponsor/);
    const r = await http('GET', '/v1/volumes?pool=private', alice);
    assert.equal(r.status, 404);
    // A volume the admin made for her there is still not hers to use.
    const path = (await ok(undefined, ['volume', 'create', 'private/forher', '1M', '--sponsor', 'alice'])).trim();
    refused(
      await cli(alice, ['create', '-q', 'name=p1', 'memory=128', `disk=["${path},raw,xvdb,rw"]`]),
      /is not a volume of yours/,
    );
    // Granted, it is; revoked, it is gone again.
    await ok(undefined, ['storage-grant', 'private', 'alice']);
    assert.match(await ok(alice, ['volume', 'list', 'private']), /forher/);
    await ok(undefined, ['storage-revoke', 'private', 'alice']);
    refused(await cli(alice, ['volume', 'list', 'private']), /^no storage pool 'private'/);
  });

  it('only the admin manages pools; a pool with volumes is not removed without --force', async () => {
    refused(await cli(alice, ['storage-add', 'mine', '/etc']), /only the admin may manage storage pools/);
    refused(await cli(alice, ['storage-grant', 'private', 'alice']), /only the admin/);
    refused(await cli(undefined, ['storage-add', 'nested', join(tenantsDir, 'alice')]), /overlaps pool 'tenants'/);
    refused(await cli(undefined, ['storage-remove', 'private']), /still has \d+ volume/);
    await ok(undefined, ['storage-remove', '--force', 'private']);
    assert.doesNotMatch(await ok(undefined, ['storage-list']), /^private/m);
    assert.ok(existsSync(join(privateDir, 'bob', 'secret')), '--force deleted files');
  });
});

/** Wait until `pred` holds (polling the daemon's answers), or fail naming `what`. */
async function waitFor(what: string, pred: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The first `n` bytes of a fresh qcow2 image made by qemu-img, as octal escapes for the guest's printf. */
function qcow2HeaderEscapes(size: string, n: number): string {
  const file = join(host.dir, `hdr-${size}.qcow2`);
  sh('qemu-img', ['create', '-q', '-f', 'qcow2', file, size]);
  const head = readFileSync(file).subarray(0, n);
  rmSync(file);
  return [...head].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
}

describe('review: a volume is used only in the format it was made with', () => {
  let rawx: string;

  it('a guest writes a qcow2 header claiming 1T into its raw volume', async () => {
    rawx = (await ok(alice, ['volume', 'create', 'tenants/rawx', '1M'])).trim();
    await ok(alice, ['create', '-q', 'name=writer', 'memory=256', `disk=["${rawx},raw,xvdb,rw"]`]);
    const con = await host.console('writer');
    await con.expect(/writer:\/# /, 180_000);
    // A header only: what follows it is zeros, which end its extensions.
    const hdr = qcow2HeaderEscapes('1T', 112);
    await con.run(`printf '${hdr}' | dd of=/dev/vda bs=112 count=1 conv=notrunc,fsync 2>/dev/null`);
    con.close();
    await ok(alice, ['destroy', 'writer']);
    assert.ok(readFileSync(rawx).subarray(0, 4).equals(Buffer.from('QFI\xfb', 'latin1')), 'no header on the host');
    // Listed and counted as it was made: raw, 1M (a header in a raw volume means nothing).
    assert.match(await ok(alice, ['volume', 'list', 'tenants']), /^tenants\s+rawx\s+raw\s+1M\s/m);
  });

  it('that raw volume is refused as a qcow2 disk, at create and at block-attach', async () => {
    const before = qemus();
    refused(
      await cli(alice, ['create', '-q', '-p', 'name=fmt1', 'memory=128', `disk=["${rawx},qcow2,xvdb,rw"]`]),
      /^volume tenants\/rawx is a raw volume: it is used only as raw/,
    );
    assert.deepEqual(qemus(), before, 'a QEMU was started');
    await ok(alice, ['create', '-q', '-p', 'name=holder', 'memory=128']);
    refused(
      await cli(alice, ['block-attach', 'holder', `${rawx},qcow2,xvdb,rw`]),
      /^volume tenants\/rawx is a raw volume/,
    );
    assert.doesNotMatch(await ok(alice, ['block-list', 'holder']), /rawx/);
    await ok(alice, ['destroy', 'holder']);
  });

  it('a qcow2 stating that raw volume as a qcow2 backing file is refused at upload', async () => {
    const over = join(host.dir, 'over-rawx.qcow2');
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'rawx', '-F', 'qcow2', over, '1M']);
    refused(
      await cli(alice, ['volume', 'upload', '-q', 'tenants/over', over]),
      /^upload refused: the image has a backing file stated as qcow2, but that volume is raw/,
    );
    // Stated as raw, as it was made, it is fine.
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'rawx', '-F', 'raw', over, '1M']);
    await ok(alice, ['volume', 'upload', '-q', 'tenants/over', over]);
  });

  it('a qcow2 volume whose header now claims more than it was made with is refused', async () => {
    const grow = (await ok(alice, ['volume', 'create', 'tenants/grow', '1M', '--format', 'qcow2'])).trim();
    // As a header rewrite would (qemu-img resize rewrites the size field).
    sh('qemu-img', ['resize', '-q', '-f', 'qcow2', grow, '1T']);
    assert.match(await ok(alice, ['volume', 'list', 'tenants']), /^tenants\s+grow\s+qcow2\s+1M\s/m);
    const before = qemus();
    refused(
      await cli(alice, ['create', '-q', '-p', 'name=fmt2', 'memory=128', `disk=["${grow},qcow2,xvdb,rw"]`]),
      /^volume tenants\/grow claims a virtual size of 1T, more than the 1M it was made with/,
    );
    assert.deepEqual(qemus(), before, 'a QEMU was started');
  });
});

describe('review: a restart does not reopen a volume that is no longer the sponsor’s', () => {
  it('after storage-revoke, on_crash="restart" refuses to start a new QEMU on the volume', async () => {
    const extra = join(host.dir, 'extra');
    mkdirSync(extra);
    await ok(undefined, ['storage-add', 'extra', extra, '--sponsor', 'alice']);
    const vol = (await ok(alice, ['volume', 'create', 'extra/boot', '8M'])).trim();
    await ok(alice, [
      'create',
      '-q',
      '-p',
      'name=phoenix',
      'memory=128',
      'on_crash="restart"',
      `disk=["${vol},raw,xvdb,rw"]`,
    ]);
    const domid = (await ok(alice, ['domid', 'phoenix'])).trim();
    const pidOf = () =>
      qemus().find((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`/domains/${domid}/`);
        } catch {
          return false;
        }
      });
    const first = pidOf();
    assert.ok(first, 'no QEMU for phoenix');
    await ok(undefined, ['storage-revoke', 'extra', 'alice']);
    process.kill(first, 'SIGKILL');
    await waitFor('the restart to end', async () => {
      const p = pidOf();
      return (p !== undefined && p !== first) || /restart failed/.test(await ok(undefined, ['dmesg']));
    });
    const again = pidOf();
    assert.ok(again === undefined || again === first, `a new QEMU (${again}) opened the revoked volume`);
    assert.match(
      await ok(undefined, ['dmesg']),
      /restart failed: disk '.*\/extra\/alice\/boot' is no longer a volume of alice's/,
    );
    await ok(undefined, ['destroy', 'phoenix']);
  });
});
