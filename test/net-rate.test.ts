// Issue 16, network: vif rate= enforced by Xenode's switch, changed at runtime
// with network-rate, the per-sponsor aggregate from quota-set net-rate=, kept
// across a daemon kill -9, a switch kill and save/restore; read back from the
// switch each time. A real guest, created by a sponsor over the TCP API, sends
// a file through its limited vif. No timing is asserted: that the limit held
// the guest back shows in the switch's own counter (rate holds).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { NetStatus, VifView } from '../src/features/network/manager.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const TAG = String(process.pid % 100000);
const HOST_TAP = `xnr${TAG}`;
const BRIDGE = `xnrb${TAG}`;
const NET = '10.238.0';
const root = process.getuid?.() === 0;
const NAME = 'rated';

let host: TestHost;
let port: number;
let alice: string;
let bob: string;
let con: ConsoleSession | undefined;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

interface Reply {
  status: number;
  json: { error?: { kind?: string; message?: string } } & Record<string, unknown>;
}

function http(method: string, path: string, token: string, body?: unknown, raw?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = raw ?? (body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (payload) headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => {
        let json: Reply['json'] = {};
        try {
          json = text ? JSON.parse(text) : {};
        } catch {
          json = { error: { message: text } };
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

function adminGet<T>(path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: host.socket, path, method: 'GET' }, (res) => {
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

async function domid(name = NAME): Promise<number> {
  return Number((await host.ok(['domid', name])).trim());
}

/** The switch port of the domain's vif 0, as the switch reports it. */
async function switchPort(name = NAME) {
  const id = `d${await domid(name)}.0`;
  const st = await adminGet<NetStatus>('/v1/net');
  const p = st.ports.find((x) => x.id === id);
  assert.ok(p, `switch port ${id}: ${JSON.stringify(st.ports.map((x) => x.id))}`);
  return { st, p };
}

async function vif0(name = NAME): Promise<VifView> {
  const v = (await adminGet<{ vifs: VifView[] }>(`/v1/domains/${name}/net`)).vifs[0];
  assert.ok(v);
  return v;
}

async function configRate(name = NAME): Promise<string | undefined> {
  const l = JSON.parse(await host.ok(['list', '-l', name])) as Array<{ config: { vif: Array<{ rate?: string }> } }>;
  return l[0]?.config.vif[0]?.rate;
}

const R = (bytesPerSec: number, intervalUs = 50_000) => ({ bytesPerSec, intervalUs });

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost({ XENODE_NET_HOSTPORT: root ? `${HOST_TAP},${NET}.1/24` : 'none' });
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  bob = (await host.ok(['token', 'create', 'bob'])).trim();
  port = host.tcpPort();
  const r = await http('POST', '/v1/domains', alice, {
    configText: `name = "${NAME}"\nmemory = 256\nvif = [ 'ip=${NET}.11,rate=256Kb/s@20ms' ]\n`,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
});

after(async () => {
  con?.close();
  agent.destroy();
  await host?.xl(['destroy', NAME]);
  await host?.cleanup();
  if (root) {
    try {
      execFileSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
    } catch {
      /* not made */
    }
  }
});

describe('vif rate= on the switch', () => {
  it('is in force in the switch after create, in Xen store form, and shown by network-list -s', async () => {
    const { p } = await switchPort();
    assert.deepEqual(p.rate, R(32_000, 20_000), '256Kb/s = 32000 B/s, every 20 ms');
    assert.deepEqual((await vif0()).rate_in_force, R(32_000, 20_000));
    const be = `/local/domain/0/backend/vif/${await domid()}/0/rate`;
    assert.equal((await host.ok(['store', 'read', be])).trim(), '640,20000', 'bytes per interval, µs');
    assert.match(await host.ok(['network-list', '-s', NAME]), /256Kb\/s@20ms/);
    assert.equal((await host.ok(['network-rate', NAME, '0'])).trim(), '256Kb/s@20ms');
  });

  it('a guest sends a file through its limited vif: all of it arrives, and the switch held it back', {
    skip: !root && 'needs root for the host port',
  }, async () => {
    const c = await host.console(NAME);
    con = c;
    await c.expect(/XENODE-READY/, 120_000);
    await c.expect(new RegExp(`${NAME}:/# `), 60_000);
    const size = 96 * 1024;
    const chunks: Buffer[] = [];
    let n = 0;
    const srv = createServer((s) => {
      s.on('data', (d: Buffer) => {
        chunks.push(d);
        n += d.length;
        // busybox nc may not half-close at the end of its input: hang up once all of it is here.
        if (n >= size) s.end();
      });
      s.on('error', () => {});
    });
    await new Promise<void>((r) => srv.listen(0, `${NET}.1`, () => r()));
    const addr = srv.address();
    const tcpPort = typeof addr === 'object' && addr ? addr.port : 0;
    try {
      const sum = await c.run('dd if=/dev/urandom of=/tmp/f bs=1k count=96 2>/dev/null; md5sum < /tmp/f');
      await c.run(`nc ${NET}.1 ${tcpPort} < /tmp/f`, 180_000);
      const data = Buffer.concat(chunks);
      assert.equal(data.length, size);
      // The console may interleave boot messages: the sum is the line that looks like one.
      assert.equal(createHash('md5').update(data).digest('hex'), /^([0-9a-f]{32}) {2}-$/m.exec(sum)?.[1]);
    } finally {
      srv.close();
    }
    const { p } = await switchPort();
    assert.ok(p.counters.rateHolds > 0, `the switch stopped reading for credit: ${JSON.stringify(p.counters)}`);
    assert.equal(p.counters.rxBytes >= size, true);
    assert.ok(p.counters.rxPackets > 0 && p.counters.txPackets > 0, 'packets counted both ways');
    const v = await vif0();
    assert.ok((v.counters?.tx_rate_holds ?? 0) > 0);
  });

  it('network-rate changes it on the running domain, kept in its config and vif record', async () => {
    await host.ok(['network-rate', NAME, '0', '2Mb/s']);
    assert.deepEqual((await switchPort()).p.rate, R(250_000));
    assert.equal((await host.ok(['network-rate', NAME, '0'])).trim(), '2Mb/s@50ms');
    assert.equal(await configRate(), '2Mb/s');
    const rec = JSON.parse(readFileSync(join(host.dir, 'domains', String(await domid()), 'vifs.json'), 'utf8'));
    assert.equal(rec[0].rate, '2Mb/s');
    // The sponsor on its own domain, by MAC, over the API.
    const mac = (await vif0()).mac;
    const r = await http('PUT', `/v1/domains/${NAME}/net/${mac}/rate`, alice, { rate: '1MB/s@10ms' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.rate_in_force, R(1_000_000, 10_000));
    assert.deepEqual((await switchPort()).p.rate, R(1_000_000, 10_000));
    // none lifts it; then back to a limit for the tests below.
    await host.ok(['network-rate', NAME, '0', 'none']);
    assert.equal((await switchPort()).p.rate, undefined);
    assert.equal(await configRate(), undefined);
    assert.equal((await host.ok(['network-rate', NAME, '0'])).trim(), 'none');
    await assert.rejects(
      host.ok(['store', 'read', `/local/domain/0/backend/vif/${await domid()}/0/rate`]),
      'the store key goes with the limit',
    );
    await host.ok(['network-rate', NAME, '0', '4Mb/s@20ms']);
    assert.deepEqual((await switchPort()).p.rate, R(500_000, 20_000));
  });

  it("another sponsor's token gets 404, a bad rate one clear error, and nothing changes", async () => {
    const mine = `/v1/domains/${NAME}/net/0/rate`;
    const b = await http('PUT', mine, bob, { rate: '100Gb/s' });
    assert.equal(b.status, 404);
    assert.doesNotMatch(JSON.stringify(b.json), /alice|d\d+\.0/);
    assert.equal((await http('PUT', mine, bob, { rate: null })).status, 404);
    assert.equal((await http('GET', `/v1/domains/${NAME}/net`, bob)).status, 404);
    for (const [body, re] of [
      [{ rate: 'fast' }, /invalid rate 'fast'/],
      [{ rate: '0Mb/s' }, /out of range/],
      [{ rate: '10Mb/s@0ms' }, /out of range/],
      [{ rate: 5 }, /network-rate needs/],
      [{ rate: 'x'.repeat(100_000) }, /network-rate needs/],
      [{}, /network-rate needs/],
    ] as const) {
      const r = await http('PUT', mine, alice, body);
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 40)}: ${JSON.stringify(r.json)}`);
      assert.match(r.json.error?.message ?? '', re);
      assert.doesNotMatch(r.json.error?.message ?? '', /\n/);
    }
    const unknown = await http('PUT', `/v1/domains/${NAME}/net/7/rate`, alice, { rate: '1Mb/s' });
    assert.equal(unknown.status, 404);
    assert.match(unknown.json.error?.message ?? '', /Unknown device 7\./);
    const big = await http('PUT', mine, alice, undefined, Buffer.alloc(3 * 1024 * 1024, 0x20));
    assert.equal(big.status, 413);
    const cli = await host.xl(['network-rate', NAME, '0', '10Qb/s']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /invalid rate '10Qb\/s'/);
    assert.doesNotMatch(cli.stderr, /\n\s+at /);
    assert.deepEqual((await switchPort()).p.rate, R(500_000, 20_000), 'unchanged');
  });

  it("quota-set net-rate= puts the sponsor's aggregate in force at once; none lifts it", async () => {
    assert.deepEqual((await switchPort()).st.sponsor_rates, []);
    await host.ok(['quota-set', 'alice', 'net-rate=100Mb/s']);
    assert.deepEqual((await switchPort()).st.sponsor_rates, [{ sponsor: 'alice', rate: R(12_500_000) }]);
    assert.match(await host.ok(['network-status']), /net-rate +: alice=100Mb\/s@50ms/);
    await host.ok(['quota-set', 'alice', 'net-rate=none']);
    assert.deepEqual((await switchPort()).st.sponsor_rates, []);
    // A row of her own, even without net-rate, keeps the '*' row off her (quota-set's rule) ...
    await host.ok(['quota-set', '*', 'net-rate=40Mb/s']);
    assert.deepEqual((await switchPort()).st.sponsor_rates, []);
    // ... and without it she inherits '*' at once.
    await host.ok(['quota-unset', 'alice']);
    assert.deepEqual((await switchPort()).st.sponsor_rates, [{ sponsor: 'alice', rate: R(5_000_000) }]);
  });

  it('survives a daemon kill -9 (the switch keeps it) and a switch kill -9 (the daemon sends it again)', async () => {
    const before = (await switchPort()).st;
    host.killDaemon('SIGKILL');
    await host.ok(['list']);
    let { st, p } = await switchPort();
    assert.equal(st.switch.pid, before.switch.pid, 'the same switch');
    assert.deepEqual(p.rate, R(500_000, 20_000));
    assert.deepEqual(st.sponsor_rates, [{ sponsor: 'alice', rate: R(5_000_000) }]);
    process.kill(st.switch.pid as number, 'SIGKILL');
    for (let i = 0; i < 200; i++) {
      ({ st, p } = await switchPort().catch(() => ({ st, p })));
      if (st.switch.running && st.switch.pid !== before.switch.pid && p.rate) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.notEqual(st.switch.pid, before.switch.pid, 'a new switch');
    assert.deepEqual(p.rate, R(500_000, 20_000));
    assert.deepEqual(st.sponsor_rates, [{ sponsor: 'alice', rate: R(5_000_000) }]);
    assert.equal((await host.ok(['network-rate', NAME, '0'])).trim(), '4Mb/s@20ms');
  });

  it('survives save and restore (the runtime value, not the one it was created with)', async () => {
    const file = join(host.dir, 'rated.save');
    con?.close();
    con = undefined;
    await host.ok(['save', NAME, file]);
    const r = await host.xl(['restore', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await switchPort()).p.rate, R(500_000, 20_000));
    assert.equal(await configRate(), '4Mb/s@20ms');
    assert.equal(
      (await host.ok(['list', '-l', NAME])).includes('"sponsor": "alice"'),
      true,
      'still alice’s domain, still under her aggregate',
    );
    assert.deepEqual((await switchPort()).st.sponsor_rates, [{ sponsor: 'alice', rate: R(5_000_000) }]);
  });
});

describe('rate= on a Linux bridge vif', { skip: !root && 'needs root' }, () => {
  it('is policed by tc where the kernel can, and refused with a clear error where it cannot', async () => {
    execFileSync('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    execFileSync('ip', ['link', 'set', BRIDGE, 'up']);
    const id = await domid();
    const r = await host.xl(['network-attach', NAME, `bridge=${BRIDGE}`, 'rate=1Mb/s']);
    let tcWorks = true;
    try {
      execFileSync('ip', ['tuntap', 'add', 'dev', `xnrp${TAG}`, 'mode', 'tap']);
      execFileSync('tc', ['qdisc', 'add', 'dev', `xnrp${TAG}`, 'ingress']);
      execFileSync(
        'tc',
        [
          ...[
            'filter',
            'add',
            'dev',
            `xnrp${TAG}`,
            'parent',
            'ffff:',
            'protocol',
            'all',
            'u32',
            'match',
            'u32',
            '0',
            '0',
          ],
          ...['action', 'police', 'rate', '1mbit', 'burst', '128k', 'mtu', '64k', 'drop'],
        ],
        { stdio: 'ignore' },
      );
    } catch {
      tcWorks = false;
    } finally {
      try {
        execFileSync('ip', ['link', 'del', `xnrp${TAG}`], { stdio: 'ignore' });
      } catch {
        /* not made */
      }
    }
    if (tcWorks) {
      assert.equal(r.code, 0, r.stderr);
      const v = (await adminGet<{ vifs: VifView[] }>(`/v1/domains/${NAME}/net`)).vifs.find((x) => x.devid === 1);
      assert.deepEqual(v?.rate_in_force, R(125_000));
      assert.match(execFileSync('tc', ['filter', 'show', 'dev', `vif${id}.1`, 'parent', 'ffff:']).toString(), /police/);
      await host.ok(['network-detach', NAME, '1']);
    } else {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /rate= cannot be enforced on vif 1 \(bridge '/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.ok(!existsSync(`/sys/class/net/vif${id}.1`), 'no TAP left behind');
      assert.equal((await adminGet<{ vifs: VifView[] }>(`/v1/domains/${NAME}/net`)).vifs.length, 1);
      assert.match(await host.ok(['dmesg']), /rate 1Mb\/s on TAP/);
    }
  });
});
