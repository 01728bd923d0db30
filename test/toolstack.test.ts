// Issue: the toolstack. Real daemon, real guests, driven through the CLI and API.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
});
after(async () => {
  await host.cleanup();
});

interface Row {
  name: string;
  id: number;
  mem: number;
  vcpus: number;
  state: string;
  time: number;
}

function parseList(out: string): Row[] {
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => {
      const [name, id, mem, vcpus, state, time] = l.trim().split(/\s+/);
      return { name, id: Number(id), mem: Number(mem), vcpus: Number(vcpus), state, time: Number(time) };
    });
}

async function list(): Promise<Row[]> {
  return parseList(await host.ok(['list']));
}

async function ready(dom: string): Promise<ConsoleSession> {
  const con = await host.console(dom);
  await con.expect(/XENODE-READY/);
  await con.expect(new RegExp(`${dom}:/# `));
  return con;
}

function http(
  port: number,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload) headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

describe('three domains through their lifecycle', () => {
  it('creates three domains from config files and lists them', async () => {
    for (const [name, mem, vcpus] of [
      ['alpha', 256, 1],
      ['beta', 192, 2],
      ['gamma', 160, 1],
    ] as const) {
      const cfg = host.writeConfig(
        `${name}.cfg`,
        `# ${name}\nname = "${name}"\nmemory = ${mem}\nvcpus = ${vcpus}\non_poweroff = 'destroy'\n`,
      );
      await host.ok(['create', cfg]);
    }
    const rows = await list();
    assert.equal(rows[0].name, 'Domain-0');
    const byName = new Map(rows.map((r) => [r.name, r]));
    assert.deepEqual(
      ['alpha', 'beta', 'gamma'].map((n) => [byName.get(n)?.mem, byName.get(n)?.vcpus]),
      [
        [256, 1],
        [192, 2],
        [160, 1],
      ],
    );
    const ids = ['alpha', 'beta', 'gamma'].map((n) => byName.get(n)?.id ?? 0);
    assert.equal(new Set(ids).size, 3);
    assert.ok(ids.every((i) => i >= 1));
    assert.equal((await host.ok(['domid', 'beta'])).trim(), String(byName.get('beta')?.id));
    assert.equal((await host.ok(['domname', String(byName.get('gamma')?.id)])).trim(), 'gamma');
    const r = await host.xl(['create', host.writeConfig('dup.cfg', 'name = "alpha"\n')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
  });

  it('pause stops the guest making progress; unpause resumes it', async () => {
    const con = await ready('beta');
    con.send('i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done &\n');
    await con.expect(/tick-3\b/);
    await host.ok(['pause', 'beta']);
    let row = (await list()).find((x) => x.name === 'beta');
    assert.equal(row?.state.slice(0, 3), '--p');
    const cpuAtPause = row?.time ?? 0;
    const lenAtPause = con.output.length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(con.output.length, lenAtPause, 'no console output while paused');
    row = (await list()).find((x) => x.name === 'beta');
    assert.ok(Math.abs((row?.time ?? 0) - cpuAtPause) < 0.05, 'no vCPU time while paused');
    await host.ok(['unpause', 'beta']);
    const last = Number(/tick-(\d+)\s*$/.exec(con.output.slice(0, lenAtPause).trimEnd())?.[1] ?? 0);
    await con.expect(new RegExp(`tick-${last + 2}\\b`), 20_000);
    row = (await list()).find((x) => x.name === 'beta');
    assert.notEqual(row?.state[2], 'p');
    con.send('kill %1\n');
    con.close();
  });

  it('several console clients share one console', async () => {
    const a = await ready('alpha');
    const b = await host.console('alpha');
    const fromA = await a.run('echo from-a-$((1+1))');
    assert.equal(fromA, 'from-a-2');
    await b.expect(/from-a-2/);
    const fromB = await b.run('echo from-b-$((2+2))');
    assert.equal(fromB, 'from-b-4');
    await a.expect(/from-b-4/);
    a.close();
    b.close();
  });

  it('shutdown -w, destroy and rename, with list after each', async () => {
    await ready('gamma').then((c) => c.close());
    await host.ok(['shutdown', '-w', 'gamma']);
    assert.deepEqual((await list()).map((r) => r.name).sort(), ['Domain-0', 'alpha', 'beta']);
    await host.ok(['destroy', 'alpha']);
    assert.deepEqual((await list()).map((r) => r.name).sort(), ['Domain-0', 'beta']);
    const betaId = (await list()).find((r) => r.name === 'beta')?.id;
    await host.ok(['rename', 'beta', 'delta']);
    const rows = await list();
    assert.deepEqual(rows.map((r) => r.name).sort(), ['Domain-0', 'delta']);
    assert.equal(rows.find((r) => r.name === 'delta')?.id, betaId);
    assert.equal((await host.ok(['store', 'read', `/local/domain/${betaId}/name`])).trim(), 'delta');
  });

  it('uptime, vcpu-list, list -l, create -n and mem-set reach the store', async () => {
    // xl prints the hour as %2d: " 0:00:09".
    assert.match(await host.ok(['uptime']), /^delta\s+\d+ [ \d]\d:\d\d:\d\d$/m);
    const v = await host.ok(['vcpu-list', 'delta']);
    assert.equal(v.trim().split('\n').length, 3, v);
    const long = JSON.parse(await host.ok(['list', '-l'])) as Array<{ config: { name: string; vcpus: number } }>;
    assert.equal(long[0].config.name, 'delta');
    assert.equal(long[0].config.vcpus, 2);
    const dry = JSON.parse(
      await host.ok(['create', '-n', host.writeConfig('dry.cfg', 'name="dry"\nmemory=300\n'), 'vcpus=3']),
    );
    assert.equal(dry.memory, 300);
    assert.equal(dry.vcpus, 3);
    assert.ok(!(await list()).some((r) => r.name === 'dry'));
    const id = (await host.ok(['domid', 'delta'])).trim();
    await host.ok(['mem-set', 'delta', '128m']);
    assert.equal((await host.ok(['store', 'read', `/local/domain/${id}/memory/target`])).trim(), String(128 * 1024));
    const bad = await host.xl(['mem-set', 'delta', '4096']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot set domid \d+ dynamic max memory/);
    const badSize = await host.xl(['mem-set', 'delta', '12q']);
    assert.match(badSize.stderr, /invalid memory size: 12q/);
  });
});

describe('daemon crash and restart', () => {
  it('kill -9 of xenoded leaves domains running; the restarted daemon reattaches them', async () => {
    await host.ok(['create', host.writeConfig('k1.cfg', 'name="k1"\nmemory=160\n')]);
    await ready('k1').then((c) => c.close());
    const before = await list();
    const ids = before.filter((r) => r.name !== 'Domain-0').map((r) => `${r.name}:${r.id}`);
    assert.equal(ids.length, 2);
    const qemus = host.qemuPids();
    const oldPid = host.daemonPid();
    host.killDaemon('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    for (const p of qemus) assert.doesNotThrow(() => process.kill(p, 0), 'QEMU survives the daemon');
    const r = await host.xl(['list']);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /xenoded was not running; started it/);
    assert.notEqual(host.daemonPid(), oldPid);
    const after = parseList(r.stdout)
      .filter((x) => x.name !== 'Domain-0')
      .map((x) => `${x.name}:${x.id}`);
    assert.deepEqual(after.sort(), ids.sort());
    const con = await host.console('k1');
    assert.equal(await con.run('echo alive-$((40+2))'), 'alive-42');
    assert.match(con.output, /XENODE-READY/, 'scroll-back survives the restart');
    con.close();
    const con2 = await host.console('delta');
    assert.equal(await con2.run('echo still-$((6*7))'), 'still-42');
    con2.close();
    // Lifecycle keeps working after reattach.
    await host.ok(['shutdown', '-w', 'k1']);
    assert.ok(!(await list()).some((x) => x.name === 'k1'));
  });
});

describe('control store', () => {
  it('watches fire on writes under a watched path', async () => {
    const id = (await host.ok(['domid', 'delta'])).trim();
    // Under data/app: the guest's agent writes its own keys under data/ at any moment.
    const ws = new WebSocket(
      `ws+unix://${host.socket}:/v1/store/watch?path=${encodeURIComponent(`/local/domain/${id}/data/app`)}`,
    );
    const events: string[] = [];
    ws.on('message', (d: Buffer) => events.push((JSON.parse(d.toString()) as { path: string }).path));
    await new Promise((r) => ws.once('open', r));
    for (let i = 0; i < 50 && events.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(events[0], `/local/domain/${id}/data/app`, 'fires once at registration');
    await host.ok(['store', 'write', `/local/domain/${id}/data/app/status`, 'ok']);
    await host.ok(['store', 'write', `/local/domain/${id}/name2`, 'outside']);
    for (let i = 0; i < 100 && events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events, [`/local/domain/${id}/data/app`, `/local/domain/${id}/data/app/status`]);
    ws.close();
    const cli = await host.xl(['store', 'watch', '-n', '1', `/local/domain/${id}/data/app`]);
    assert.equal(cli.stdout.trim(), `/local/domain/${id}/data/app`);
  });

  it('a racing transaction fails with a conflict and the retry succeeds', async () => {
    const port = host.tcpPort();
    const token = (await host.ok(['token', 'create', 'root', '--admin'])).trim();
    const key = '/tool/counter';
    await host.ok(['store', 'write', key, '1']);
    const t1 = (await http(port, 'POST', '/v1/store/transaction', token, {})).json as { tx: number };
    const read1 = (await http(port, 'GET', `/v1/store/read?path=${key}&tx=${t1.tx}`, token)).json as { value: string };
    assert.equal(read1.value, '1');
    await host.ok(['store', 'write', key, '5']); // another writer gets there first
    await http(port, 'PUT', '/v1/store/write', token, {
      path: key,
      value: String(Number(read1.value) + 1),
      tx: String(t1.tx),
    });
    const end1 = await http(port, 'POST', `/v1/store/transaction/${t1.tx}`, token, { commit: true });
    assert.equal(end1.status, 409);
    assert.match(JSON.stringify(end1.json), /EAGAIN|conflict/i);
    assert.equal((await host.ok(['store', 'read', key])).trim(), '5');
    const t2 = (await http(port, 'POST', '/v1/store/transaction', token, {})).json as { tx: number };
    const read2 = (await http(port, 'GET', `/v1/store/read?path=${key}&tx=${t2.tx}`, token)).json as { value: string };
    await http(port, 'PUT', '/v1/store/write', token, {
      path: key,
      value: String(Number(read2.value) + 1),
      tx: String(t2.tx),
    });
    assert.equal((await http(port, 'POST', `/v1/store/transaction/${t2.tx}`, token, { commit: true })).status, 200);
    assert.equal((await host.ok(['store', 'read', key])).trim(), '6');
  });

  it("a domain cannot read another domain's keys", async () => {
    await host.ok(['create', host.writeConfig('s2.cfg', 'name="s2"\nmemory=128\n')]);
    const a = (await host.ok(['domid', 'delta'])).trim();
    const b = (await host.ok(['domid', 's2'])).trim();
    assert.equal((await host.ok(['store', 'read', '--as', a, `/local/domain/${a}/name`])).trim(), 'delta');
    const r = await host.xl(['store', 'read', '--as', b, `/local/domain/${a}/name`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /EACCES|permission denied/);
    // A guest writes its own data/ but not its name.
    await host.ok(['store', 'write', '--as', a, `/local/domain/${a}/data/x`, '1']);
    const w = await host.xl(['store', 'write', '--as', a, `/local/domain/${a}/name`, 'evil']);
    assert.equal(w.code, 1);
  });
});

describe('sponsors and tokens', () => {
  it("a sponsor's token sees and touches only its own domains; no token is 401", async () => {
    const port = host.tcpPort();
    const alice = (await host.ok(['token', 'create', 'alice'])).trim();
    const bob = (await host.ok(['token', 'create', 'bob'])).trim();
    assert.match(alice, /^xn_[0-9a-f]{8}_/);
    const created = await http(port, 'POST', '/v1/domains', alice, { configText: 'name = "alice1"\nmemory = 128\n' });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    assert.equal((created.json as { sponsor: string }).sponsor, 'alice');
    const aliceList = (await http(port, 'GET', '/v1/domains', alice)).json as Array<{ name: string }>;
    assert.deepEqual(
      aliceList.map((d) => d.name),
      ['alice1'],
    );
    const bobList = (await http(port, 'GET', '/v1/domains', bob)).json as Array<{ name: string }>;
    assert.deepEqual(bobList, []);
    assert.equal((await http(port, 'GET', '/v1/domains/alice1', bob)).status, 404);
    assert.equal((await http(port, 'POST', '/v1/domains/alice1/destroy', bob)).status, 404);
    assert.equal((await http(port, 'POST', '/v1/domains/alice1/pause', bob)).status, 404);
    const id = (created.json as { domid: number }).domid;
    assert.equal((await http(port, 'GET', `/v1/store/read?path=/local/domain/${id}/name`, bob)).status, 403);
    assert.equal((await http(port, 'GET', `/v1/store/read?path=/local/domain/${id}/name`, alice)).status, 200);
    assert.equal((await http(port, 'GET', '/v1/domains')).status, 401);
    assert.equal((await http(port, 'GET', '/v1/domains', 'xn_00000000_forged')).status, 401);
    assert.equal((await http(port, 'GET', '/v1/tokens', alice)).status, 403);
    // The admin (local socket) sees everyone's.
    assert.ok((await list()).some((r) => r.name === 'alice1'));
    // Revoked tokens stop working.
    const tokens = await host.ok(['token', 'list']);
    const bobId =
      tokens
        .split('\n')
        .find((l) => /\bbob\b/.test(l))
        ?.split(/\s+/)[0] ?? '';
    await host.ok(['token', 'revoke', bobId]);
    assert.equal((await http(port, 'GET', '/v1/domains', bob)).status, 401);
    assert.equal((await http(port, 'POST', '/v1/domains/alice1/destroy', alice)).status, 200);
    assert.doesNotMatch(await host.ok(['dmesg']), /xn_[0-9a-f]{8}_[A-Za-z0-9_-]{10,}/, 'tokens never logged');
  });
});

describe('help', () => {
  it('documents every subcommand', async () => {
    const help = await host.ok(['--help']);
    const cmds = [
      'create',
      'list',
      'destroy',
      'shutdown',
      'reboot',
      'pause',
      'unpause',
      'console',
      'rename',
      'domid',
      'domname',
      'uptime',
      'info',
      'dmesg',
      'vcpu-list',
      'mem-set',
      'mem-max',
      'top',
      'store',
      'token',
    ];
    for (const c of cmds) {
      assert.match(help, new RegExp(`^\\s+${c}\\b`, 'm'), `--help lists ${c}`);
      const h = await host.xl(['help', c]);
      assert.equal(h.code, 0);
      assert.match(h.stdout, new RegExp(`Usage: xenode ${c}`));
    }
    const bad = await host.xl(['help', 'nosuch']);
    assert.equal(bad.code, 1);
  });

  it('top -b prints a xentop frame', async () => {
    const out = await host.ok(['top', '-b']);
    assert.match(out, /^xentop - \d\d:\d\d:\d\d/m);
    assert.match(out, /NAME\s+STATE\s+CPU\(sec\)/);
    assert.match(out, /^\s+delta\s+/m);
  });
});
