// static_shm bookkeeping without QEMU: owners create the host file, borrowers
// need a live owner and a window that fits, and the file goes with the last user.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { loadConfigText } from '../../src/config/load.ts';
import { XenodeError } from '../../src/errors.ts';
import { StaticShmPlugin } from '../../src/features/memory/static-shm.ts';
import { xenodeDirs } from '../../src/toolstack/dirs.ts';
import { Domain } from '../../src/toolstack/domain.ts';
import { DaemonLog } from '../../src/toolstack/log.ts';
import { SponsorPolicy } from '../../src/toolstack/sponsors.ts';
import { NULL_STORE_SINK } from '../../src/toolstack/store-sink.ts';

let dir: string;
let plugin: StaticShmPlugin;
let nextId = 1;

function domain(name: string, shm: string[], sponsor = 'admin'): Domain {
  const list = shm.map((s) => `"${s}"`).join(', ');
  const { config } = loadConfigText(`name = "${name}"\nstatic_shm = [${list}]\n`, {
    file: 'u.cfg',
    baseDir: '/',
    overrides: [],
  });
  const domid = nextId++;
  return new Domain({
    domid,
    uuid: `00000000-0000-0000-0000-${String(domid).padStart(12, '0')}`,
    name,
    sponsor,
    config: { ...config, sponsor },
    state: 'creating',
    runDir: join(dir, String(domid)),
    startTime: 0,
    targetMiB: config.memory,
    maxMiB: config.maxmem,
  });
}

async function refused(d: Domain, re: RegExp): Promise<void> {
  await assert.rejects(plugin.beforeLaunch(d), (e: unknown) => e instanceof XenodeError && re.test(e.message));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xn-shm-'));
  plugin = new StaticShmPlugin(dir);
  const dirs = xenodeDirs(join(dir, 'base'));
  mkdirSync(dirs.base, { recursive: true });
  await plugin.start({
    dirs,
    log: new DaemonLog(undefined),
    store: NULL_STORE_SINK,
    sponsors: new SponsorPolicy(dirs.stateDb),
  });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const files = () => readdirSync(dir).filter((f) => f.startsWith('xenode-'));

describe('StaticShmPlugin', () => {
  const owner = domain('own', ['id=r1, begin=0x100000, size=0x100000, role=owner']);
  const bor = domain('bor', ['id=r1, begin=0x200000, size=0x10000, offset=0x10000, role=borrower']);

  it('refuses a borrower before its owner exists, creating nothing', async () => {
    await refused(domain('early', ['id=r1, begin=0, size=0x1000, role=borrower']), /static_shm 'r1' has no owner/);
    assert.deepEqual(files(), []);
  });

  it('the owner creates a sparse file of its size and gets an ivshmem device', async () => {
    const c = await plugin.beforeLaunch(owner);
    assert.ok(c?.qemuArgs && c.cmdline);
    const path = plugin.pathOf('admin/r1');
    assert.equal(statSync(path).size, 0x100000);
    assert.ok(c.qemuArgs.includes(`memory-backend-file,id=shm-r1,mem-path=${path},size=1048576,share=on`));
    assert.deepEqual(c.cmdline, ['xenode.shm=r1:10:0x0:0x100000']);
  });

  it('a second owner, a window past the end, or an odd size are refused', async () => {
    await refused(
      domain('own2', ['id=r1, begin=0, size=0x100000, role=owner']),
      new RegExp(`already has an owner \\(domain ${owner.domid}\\)`),
    );
    await refused(
      domain('big', ['id=r1, begin=0, size=0x100000, offset=0x1000, role=borrower']),
      /offset 0x1000 \+ size 0x100000 exceeds the owner's size 0x100000/,
    );
    await refused(domain('odd', ['id=r2, begin=0, size=0x3000, role=owner']), /size 0x3000 is not a power of two/);
    assert.equal(files().length, 1);
  });

  it('a borrower maps the whole region and is told its window', async () => {
    const c = await plugin.beforeLaunch(bor);
    assert.deepEqual(c?.cmdline, ['xenode.shm=r1:10:0x10000:0x10000']);
    assert.deepEqual(plugin.list(), [
      {
        id: 'r1',
        sponsor: 'admin',
        path: plugin.pathOf('admin/r1'),
        size: 0x100000,
        owner: owner.domid,
        users: [owner.domid, bor.domid],
      },
    ]);
  });

  it('the region outlives its owner and goes with its last user', async () => {
    await plugin.onTeardown(owner);
    assert.ok(existsSync(plugin.pathOf('admin/r1')));
    assert.equal(plugin.list()[0]?.owner, undefined);
    await refused(domain('late', ['id=r1, begin=0, size=0x1000, role=borrower']), /has no owner/);
    await plugin.onTeardown(bor);
    assert.ok(!existsSync(plugin.pathOf('admin/r1')));
    assert.deepEqual(plugin.list(), []);
  });

  it('once reattached, region files no live domain uses are swept', async () => {
    const keep = domain('keep', ['id=k1, begin=0, size=0x1000, role=owner']);
    await plugin.beforeLaunch(keep);
    writeFileSync(plugin.pathOf('admin/stale'), '');
    writeFileSync(join(dir, 'someone-else'), '');
    const app = Fastify();
    plugin.routes(app);
    await app.close();
    assert.ok(!existsSync(plugin.pathOf('admin/stale')));
    assert.ok(existsSync(plugin.pathOf('admin/k1')));
    assert.ok(existsSync(join(dir, 'someone-else')));
    await plugin.onTeardown(keep);
  });
});

describe('StaticShmPlugin: regions are per sponsor', () => {
  it("a sponsor's id never reaches another sponsor's region unless the admin grants it", async () => {
    const owner = domain('a-own', ['id=s1, begin=0, size=0x1000, role=owner'], 'alice');
    const thief = domain('b-bor', ['id=s1, begin=0, size=0x1000, role=borrower'], 'bob');
    await plugin.beforeLaunch(owner);
    await refused(thief, /has no owner/);
    // bob's own s1 is a region of its own, not alice's.
    const bobOwner = domain('b-own', ['id=s1, begin=0, size=0x1000, role=owner'], 'bob');
    await plugin.beforeLaunch(bobOwner);
    assert.notEqual(plugin.pathOf('alice/s1'), plugin.pathOf('bob/s1'));
    assert.deepEqual(
      plugin.list().map((r) => `${r.sponsor}/${r.id}`),
      ['alice/s1', 'bob/s1'],
    );
    await plugin.onTeardown(bobOwner);
    plugin.grant('alice/s1', 'bob');
    const granted = domain('b-bor2', ['id=s1, begin=0, size=0x1000, role=borrower'], 'bob');
    const c = await plugin.beforeLaunch(granted);
    assert.ok(c?.qemuArgs?.some((a) => a.includes(plugin.pathOf('alice/s1'))));
    plugin.ungrant('alice/s1', 'bob');
    await refused(domain('b-bor3', ['id=s1, begin=0, size=0x1000, role=borrower'], 'bob'), /has no owner/);
    await plugin.onTeardown(granted);
    await plugin.onTeardown(owner);
  });
});
