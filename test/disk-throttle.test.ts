// Disk limits with real guests (issue 16): limits from the disk spec, from
// block-set-throttle and from a hot-plug, each read back from QEMU (its throttle
// groups, through the daemon's block-throttle view, which asks QEMU every time);
// the same after a daemon kill -9 and after save/restore; a sponsor's aggregate
// split across two domains never summing above it and following quota-set; and
// another sponsor's token getting 404. No timing is asserted: a guest's 16 MiB
// direct write onto a 4M/s disk only has to complete (npm run bench:qos
// measures the rates).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const M = 1024 * 1024;
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
const img = (name: string) => join(host.dir, name);

interface Limits {
  [k: string]: number;
}
interface DiskView {
  vdev: string;
  devid: number;
  config: Limits;
  inForce: Limits | null;
  share: { bps?: number; iops?: number } | null;
}
interface DomView {
  name: string;
  aggregate: { bps?: number; iops?: number };
  disks: DiskView[];
}

/** The limits in force, read back from the domain's QEMU by the daemon. */
async function view(dom: string, token = alice): Promise<DomView> {
  const r = await http('GET', `/v1/domains/${dom}/block/throttle`, token);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json as unknown as DomView;
}

async function disk(dom: string, vdev: string): Promise<DiskView> {
  const d = (await view(dom)).disks.find((x) => x.vdev === vdev);
  assert.ok(d, `${dom} has no ${vdev}`);
  return d;
}

async function ready(con: ConsoleSession, name: string, from = 0): Promise<void> {
  await con.expect(/XENODE-READY/, 180_000, from);
  await con.expect(new RegExp(`${name}:/# `), 60_000, from);
}

function image(name: string, size = '64M'): string {
  execFileSync('truncate', ['-s', size, img(name)]);
  return img(name);
}

/** Every share of alice's disks over both domains. */
async function aliceShares(): Promise<Array<{ bps?: number; iops?: number }>> {
  const out: Array<{ bps?: number; iops?: number }> = [];
  for (const dom of ['thr1', 'thr2']) for (const d of (await view(dom)).disks) out.push(d.share ?? {});
  return out;
}

const total = (xs: Array<{ bps?: number; iops?: number }>, k: 'bps' | 'iops') =>
  xs.reduce((n, x) => n + (x[k] ?? 0), 0);

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  await host.ok(['list']);
  alice = (await host.ok(['token', 'create', 'alice'])).trim().split(/\s+/).pop() as string;
  bob = (await host.ok(['token', 'create', 'bob'])).trim().split(/\s+/).pop() as string;
  assert.match(alice, /^xn_/);
  assert.match(bob, /^xn_/);
});
after(async () => {
  await host.cleanup();
});

describe('disk limits', () => {
  let con: ConsoleSession;

  it('limits from the disk spec are in force in QEMU after create', async () => {
    const cfg = host.writeConfig(
      'thr1.cfg',
      [
        'name = "thr1"',
        'sponsor = "alice"',
        'memory = 256',
        `disk = [ "${image('c.img')},raw,xvdc,rw,bps=4M,iops=200,iops_max=400,iops_max_length=5", "${image('d.img')},raw,xvdd,rw" ]`,
        '',
      ].join('\n'),
    );
    await host.ok(['create', cfg]);
    con = await host.console('thr1');
    await ready(con, 'thr1');
    const c = await disk('thr1', 'xvdc');
    const want = { bps: 4 * M, iops: 200, iops_max: 400, iops_max_length: 5 };
    assert.deepEqual(c.config, want);
    assert.deepEqual(c.inForce, want);
    assert.deepEqual(c.share, {});
    assert.deepEqual((await disk('thr1', 'xvdd')).inForce, {});
    const table = await ok(alice, ['block-throttle', 'thr1']);
    assert.match(table, /^thr1\s+xvdc\s+51744\s+bps=4M,iops=200,iops_max=400,iops_max_length=5\s+bps=4M,iops=200,/m);
  });

  it("a guest's 16 MiB direct write onto the 4M/s disk completes", async (t) => {
    assert.equal(await con.run('cat /sys/block/vda/serial'), 'xvdc');
    const out = await con.run('dd if=/dev/zero of=/dev/vda bs=1M count=16 oflag=direct 2>&1; echo rc=$?', 120_000);
    assert.match(out, /16\+0 records out[\s\S]*rc=0/);
    t.diagnostic(out.replace(/\n/g, ' | '));
    const stats = await ok(alice, ['block-stats', 'thr1']);
    const row = stats.split('\n').find((l) => /^thr1\s+xvdc\s/.test(l));
    assert.ok(row && Number(row.split(/\s+/)[4]) >= 16 * M, stats);
  });

  it('block-set-throttle changes them in QEMU and in the config; none clears; bad limits are refused', async () => {
    const out = await ok(alice, ['block-set-throttle', 'thr1', 'xvdd', 'bps_wr=2M', 'iops=100']);
    assert.equal(out.trim(), 'xvdd: bps_wr=2M,iops=100');
    const d = await disk('thr1', 'xvdd');
    assert.deepEqual(d.inForce, { bps_wr: 2 * M, iops: 100 });
    assert.deepEqual(d.config, { bps_wr: 2 * M, iops: 100 });
    // The words replace the whole set.
    await ok(alice, ['block-set-throttle', 'thr1', 'xvdc', 'iops_rd=70']);
    assert.deepEqual((await disk('thr1', 'xvdc')).inForce, { iops_rd: 70 });
    await ok(alice, ['block-set-throttle', 'thr1', 'xvdc', 'none']);
    assert.deepEqual((await disk('thr1', 'xvdc')).inForce, {});
    await ok(alice, ['block-set-throttle', 'thr1', 'xvdc', 'bps=4M']);
    for (const [args, re] of [
      [['bps=1M', 'bps_rd=1M'], /bps and bps_rd cannot be used together/],
      [['bps=lots'], /invalid bps 'lots'/],
      [[`bps=${'9'.repeat(5000)}`], /invalid bps/],
      [['bps=2000000T'], /over QEMU's limit/],
      [[], /missing required argument 'limits'|give limits/],
    ] as const) {
      const r = await cli(alice, ['block-set-throttle', 'thr1', 'xvdd', ...args]);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
    const nd = await cli(alice, ['block-set-throttle', 'thr1', 'xvdz', 'bps=1M']);
    assert.match(nd.stderr, /Device xvdz not connected/);
    // The API checks the same rules (JSON a config file could not produce).
    for (const body of [{ throttle: { bps: -1 } }, { throttle: { bps: 1.5 } }, { throttle: { vdev: 1 } }, {}]) {
      const r = await http('PUT', '/v1/domains/thr1/block/xvdd/throttle', alice, body);
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    assert.deepEqual((await disk('thr1', 'xvdd')).inForce, { bps_wr: 2 * M, iops: 100 }, 'refusals change nothing');
  });

  it("another sponsor's token gets 404 for the view and the change, and changes nothing", async () => {
    const missing = await http('GET', '/v1/domains/nosuch/block/throttle', bob);
    const get = await http('GET', '/v1/domains/thr1/block/throttle', bob);
    assert.equal(get.status, 404);
    assert.equal(missing.status, 404);
    // Answered exactly as for a name nobody uses.
    assert.equal(
      JSON.stringify(get.json).replaceAll('thr1', 'X'),
      JSON.stringify(missing.json).replaceAll('nosuch', 'X'),
    );
    const put = await http('PUT', '/v1/domains/thr1/block/xvdd/throttle', bob, { throttle: {} });
    assert.equal(put.status, 404);
    assert.doesNotMatch(JSON.stringify(put.json), /xvdd|alice/);
    const r = await cli(bob, ['block-set-throttle', 'thr1', 'xvdd', 'none']);
    assert.notEqual(r.code, 0);
    assert.deepEqual((await disk('thr1', 'xvdd')).inForce, { bps_wr: 2 * M, iops: 100 });
  });

  it('a hot-plugged disk gets its limits; after detach the same vdev comes back with others', async () => {
    await host.ok(['block-attach', 'thr1', `${image('e.img')},raw,xvde,rw,iops=50,iops_size=8K`]);
    assert.deepEqual((await disk('thr1', 'xvde')).inForce, { iops: 50, iops_size: 8192 });
    await host.ok(['block-detach', 'thr1', 'xvde']);
    await host.ok(['block-attach', 'thr1', `${img('e.img')},raw,xvde,rw,bps_rd=3M`]);
    assert.deepEqual((await disk('thr1', 'xvde')).inForce, { bps_rd: 3 * M });
    await host.ok(['block-attach', 'thr1', `${image('f.img')},raw,xvdf,rw`]);
    assert.deepEqual((await disk('thr1', 'xvdf')).inForce, {});
    await ok(alice, ['block-set-throttle', 'thr1', 'xvdf', 'bps=1M']);
    assert.deepEqual((await disk('thr1', 'xvdf')).inForce, { bps: M });
  });

  it("the sponsor aggregate is split across two domains' disks, never above it, and follows quota-set", async () => {
    const cfg = host.writeConfig(
      'thr2.cfg',
      ['name = "thr2"', 'sponsor = "alice"', 'memory = 192', `disk = [ "${image('g.img')},raw,xvdb,rw" ]`, ''].join(
        '\n',
      ),
    );
    await host.ok(['create', cfg]);
    // Before any aggregate: no shares.
    assert.ok((await aliceShares()).every((s) => s.bps === undefined && s.iops === undefined));
    await host.ok(['quota-set', 'alice', 'disk-bps=20M', 'disk-iops=500']);
    let shares = await aliceShares();
    assert.equal(shares.length, 5);
    assert.ok(
      shares.every((s) => (s.bps ?? 0) >= 1 && (s.iops ?? 0) >= 1),
      JSON.stringify(shares),
    );
    assert.ok(total(shares, 'bps') <= 20 * M && total(shares, 'bps') > 10 * M, JSON.stringify(shares));
    assert.ok(total(shares, 'iops') <= 500, JSON.stringify(shares));
    assert.deepEqual((await view('thr2')).aggregate, { bps: 20 * M, iops: 500 });

    await host.ok(['quota-set', 'alice', 'disk-bps=8M']);
    shares = await aliceShares();
    assert.ok(total(shares, 'bps') <= 8 * M && total(shares, 'bps') > 4 * M, JSON.stringify(shares));

    // While one disk is busy, the shares move to it, and no reading ever sums above the aggregate.
    // (xvdd without its own limits meanwhile, so only its share holds it back.)
    await ok(alice, ['block-set-throttle', 'thr1', 'xvdd', 'none']);
    assert.equal(await con.run('cat /sys/block/vdb/serial'), 'xvdd');
    con.send('dd if=/dev/zero of=/dev/vdb bs=256K count=400 oflag=direct 2>/dev/null; echo DD-DONE\n');
    const mark = con.output.length;
    let moved = false;
    for (let i = 0; i < 60 && !moved; i++) {
      shares = await aliceShares();
      assert.ok(total(shares, 'bps') <= 8 * M, `sum ${total(shares, 'bps')} > 8M: ${JSON.stringify(shares)}`);
      assert.ok(total(shares, 'iops') <= 500, JSON.stringify(shares));
      const d = (await disk('thr1', 'xvdd')).share?.bps ?? 0;
      moved = d > 4 * M;
      if (!moved) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(moved, `the busy disk never got the larger share: ${JSON.stringify(shares)}`);
    await con.expect(/DD-DONE/, 180_000, mark);
    await ok(alice, ['block-set-throttle', 'thr1', 'xvdd', 'bps_wr=2M', 'iops=100']);

    // A disk's own limit is never raised by its share: xvdf keeps bps=1M in force.
    assert.deepEqual((await disk('thr1', 'xvdf')).inForce, { bps: M });
  });

  it('after a daemon kill -9 and restart the limits and shares are still in force', async () => {
    const before = await aliceShares();
    con.close();
    host.killDaemon('SIGKILL');
    const relisted = await host.xl(['list']);
    assert.match(relisted.stderr, /xenoded was not running; started it/);
    assert.deepEqual((await disk('thr1', 'xvdc')).inForce, { bps: 4 * M });
    assert.deepEqual((await disk('thr1', 'xvdd')).inForce, { bps_wr: 2 * M, iops: 100 });
    assert.deepEqual((await disk('thr1', 'xvde')).inForce, { bps_rd: 3 * M });
    const after = await aliceShares();
    assert.equal(after.length, before.length);
    assert.ok(
      after.every((s) => (s.bps ?? 0) >= 1),
      JSON.stringify(after),
    );
    assert.ok(total(after, 'bps') <= 8 * M, JSON.stringify(after));
    // And it still takes changes, for running domains at once.
    await ok(alice, ['block-set-throttle', 'thr1', 'xvde', 'bps_rd=5M']);
    assert.deepEqual((await disk('thr1', 'xvde')).inForce, { bps_rd: 5 * M });
    await host.ok(['quota-set', 'alice', 'disk-bps=none', 'disk-iops=none']);
    assert.ok((await aliceShares()).every((s) => s.bps === undefined && s.iops === undefined));
  });

  it('a change racing a destroy fails in one line or lands; the daemon carries on', async () => {
    const [set, gone] = await Promise.all([
      cli(alice, ['block-set-throttle', 'thr2', 'xvdb', 'bps=1M']),
      host.xl(['destroy', 'thr2']),
    ]);
    assert.equal(gone.code, 0, gone.stderr);
    if (set.code !== 0) assert.equal(set.stderr.trim().split('\n').length, 1, set.stderr);
    assert.doesNotMatch(set.stderr, /\n\s+at /);
    const after = await http('GET', '/v1/domains/thr2/block/throttle', alice);
    assert.equal(after.status, 404);
    // An oversized body is refused (413, or the connection cut before it is read whole).
    const big = await http('PUT', '/v1/domains/thr1/block/xvdd/throttle', alice, {
      throttle: { pad: 'x'.repeat(2 << 20) },
    }).then(
      (r) => r.status,
      (e: NodeJS.ErrnoException) => e.code,
    );
    assert.ok(big === 413 || big === 'EPIPE' || big === 'ECONNRESET', String(big));
    assert.deepEqual((await disk('thr1', 'xvdd')).inForce, { bps_wr: 2 * M, iops: 100 });
  });

  it('save and restore keep every limit, the runtime ones included', async () => {
    const file = img('thr1.save');
    await host.ok(['save', 'thr1', file]);
    await host.ok(['restore', file]);
    assert.deepEqual((await disk('thr1', 'xvdc')).inForce, { bps: 4 * M });
    assert.deepEqual((await disk('thr1', 'xvdd')).inForce, { bps_wr: 2 * M, iops: 100 });
    assert.deepEqual((await disk('thr1', 'xvde')).inForce, { bps_rd: 5 * M });
    assert.deepEqual((await disk('thr1', 'xvdf')).inForce, { bps: M });
  });
});
