// Issue: live migration between hosts. Two daemons on this machine (two
// XENODE_DIRs, two TCP ports) stand in for two hosts; a real guest (TCG)
// counting in a loop moves from one to the other and keeps counting. The
// target refuses what it cannot host before anything moves, and a target that
// dies mid-migration leaves the source running.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, spawnCli, TestHost } from './helpers/host.ts';

const NAME = 'mg';
let src: TestHost;
let dst: TestHost;
let token: string;
let con: ConsoleSession;

async function names(h: TestHost): Promise<string[]> {
  return (await h.ok(['list']))
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0] as string);
}

async function counter(c: ConsoleSession): Promise<number> {
  return Number(await c.run('cat /tmp/c'));
}

/** Wait (in the guest) until the counter passes `n`, then read it. */
async function counterAbove(c: ConsoleSession, n: number): Promise<number> {
  return Number(await c.run(`while [ "$(cat /tmp/c)" -le ${n} ]; do sleep 0.05; done; cat /tmp/c`, 60_000));
}

function target(): string {
  return `127.0.0.1:${dst.tcpPort()}`;
}

function api<T>(h: TestHost, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: h.socket, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(JSON.parse(body) as T));
    });
    req.on('error', reject);
    req.end();
  });
}

async function macOf(h: TestHost, dom: string): Promise<string | undefined> {
  return (await api<{ vifs: Array<{ mac: string }> }>(h, `/v1/domains/${dom}/net`)).vifs[0]?.mac;
}

before(async () => {
  await ensureDefaultGuest();
  // No host port: the two switches would both want the same TAP.
  src = new TestHost({ XENODE_NET_HOSTPORT: 'none' });
  dst = new TestHost({ XENODE_NET_HOSTPORT: 'none' });
  token = (await dst.ok(['token', 'create', 'admin', '--admin'])).trim();
  const cfg = src.writeConfig(
    'mg.cfg',
    `name = "${NAME}"\nmemory = 256\nsponsor = "alice"\nvif = ['ip=10.234.0.11']\n`,
  );
  const r = await src.xl(['create', cfg]);
  assert.equal(r.code, 0, r.stderr);
  con = await src.console(NAME);
  await con.expect(new RegExp(`${NAME}:/# `), 120_000);
  await con.run('i=0; while true; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; sleep 0.1; done & :');
  await counterAbove(con, 0);
});

after(async () => {
  con?.close();
  await src.cleanup();
  await dst.cleanup();
});

describe('live migration between two daemons', () => {
  it('the target refuses a bad token and a taken name before anything moves', async () => {
    const bad = await src.xl(['migrate', NAME, target(), '--token', 'xn_00000000_nope']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /xenoded at 127\.0\.0\.1:\d+ refused the token/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);

    const taken = await dst.xl(['create', '-p', `name=${NAME}`, 'memory=128']);
    assert.equal(taken.code, 0, taken.stderr);
    const r = await src.xl(['migrate', NAME, target(), '--token', token]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /target 127\.0\.0\.1:\d+: domain with name 'mg' already exists/);
    assert.deepEqual(
      (await names(dst)).filter((n) => n.startsWith(NAME)),
      [NAME],
      'no incoming domain was left on the target',
    );
    await dst.ok(['destroy', NAME]);
    assert.match(await src.ok(['list', NAME]), /^mg\s+\d+\s+256\s+1\s+[rb-]{2}----/m);
  });

  it('killing the target daemon mid-migration leaves the source running', async () => {
    const before = await counter(con);
    // 16 Mbit/s: the guest's memory takes half a minute to copy, time enough to pull the plug.
    const cli = spawnCli(src, ['migrate', NAME, target(), '--token', token, '--bandwidth-mbps', '16']);
    let stderr = '';
    const exited = new Promise<number>((r) => cli.on('exit', (code) => r(code ?? 1)));
    const sending = new Promise<void>((resolve, reject) => {
      cli.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        for (const m of stderr.matchAll(/([\d.]+) MiB sent/g)) if (Number(m[1]) >= 1) resolve();
      });
      void exited.then(() => reject(new Error(`migrate ended before sending: ${stderr}`)));
    });
    await sending;
    dst.killDaemon('SIGKILL');
    const code = await exited;
    assert.equal(code, 1, stderr);
    assert.match(stderr, /lost the connection to the target/);
    assert.doesNotMatch(stderr, /Migration successful/);
    assert.match(await src.ok(['list', NAME]), /^mg\s+\d+\s+256\s+1\s+[rb-]{2}----/m);
    assert.ok((await counterAbove(con, before)) > before, 'the source guest still counts');
    assert.match(await src.ok(['dmesg']), /migration to 127\.0\.0\.1:\d+ failed/);
    // The restarted target daemon keeps nothing of the half-received domain.
    assert.ok(!(await names(dst)).some((n) => n.startsWith(NAME)), 'no leftover on the target');
  });

  it('moves the running guest: it keeps counting on the target with its store, sponsor and console', async () => {
    const id = Number((await src.ok(['domid', NAME])).trim());
    await src.ok(['store', 'write', `/local/domain/${id}/data/where`, 'moved']);
    await con.run('echo MARK-BEFORE-MIGRATE');
    const mac = await macOf(src, NAME);
    const before = await counter(con);

    const r = await src.xl(['migrate', NAME, target(), '--token', token, '--downtime-ms', '100']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^Migration successful\.$/m);
    assert.match(r.stderr, /guest paused \d+ ms \(QEMU stop-and-copy \d+ ms, hand-over \d+ ms\)/);
    con.close();
    assert.ok(!(await names(src)).includes(NAME), 'gone from the source');
    assert.ok((await names(dst)).includes(NAME), 'listed on the target under its name');

    con = await dst.console(NAME);
    await con.expect(/MARK-BEFORE-MIGRATE[\s\S]*\[xenode: migrated from /, 10_000);
    const after = await counter(con);
    assert.ok(after >= before && after < before + 300, `counter continued: ${before} -> ${after}`);
    assert.ok((await counterAbove(con, after)) > after, 'and keeps counting on the target');
    const newId = Number((await dst.ok(['domid', NAME])).trim());
    assert.equal((await dst.ok(['store', 'read', `/local/domain/${newId}/data/where`])).trim(), 'moved');
    const long = JSON.parse(await dst.ok(['list', '-l', NAME])) as Array<{ sponsor: string }>;
    assert.equal(long[0]?.sponsor, 'alice');
    assert.equal(await macOf(dst, NAME), mac, 'the NIC keeps its MAC');
  });
});
