// vlan= on Xenode's switch with real guests. va and vb are access ports of VLAN
// 10, vc is untagged: va and vb reach each other, vc reaches neither, not even
// with an 802.1Q interface of its own (the guest's tag picks no VLAN), and a
// tag va sends itself is dropped. The host port is a trunk: VLAN 10 leaves on
// it tagged 10 (tcpdump -e on the host's TAP), vc's own tagged frames never do.
// The switch killed and restarted keeps the VLANs. Bad vlan= values are refused.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { VifView } from '../src/features/network/manager.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const TAG = String(process.pid % 100000);
const HOST_TAP = `xnv${TAG}`;
const HOST_IP = '10.239.0.1';
const A_IP = '10.239.10.31';
const B_IP = '10.239.10.32';
const C_IP = '10.239.0.33';
const C_IP10 = '10.239.10.33';
const root = process.getuid?.() === 0;
/**
 * On this shared 2-CPU host under TCG, a guest booting while others load the CPUs can
 * fail the kernel's IO-APIC timer check and panic ("IO-APIC + timer doesn't work"):
 * seen twice at load 28-42. The check proves nothing here; skip it.
 */
const EXTRA = 'extra = "quiet no_timer_check"\n';

let host: TestHost;
let port: number;
let alice: string;
const cons = new Map<string, ConsoleSession>();
const agent = new Agent({ keepAlive: true, maxSockets: 2 });

interface Reply {
  status: number;
  json: Record<string, unknown> & { error?: { message?: string } };
}

function http(method: string, path: string, token: string | undefined, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload) headers['content-type'] = 'application/json';
    const opts = token
      ? { host: '127.0.0.1', port, method, path, headers, agent }
      : { socketPath: host.socket, method, path, headers };
    const req = request(opts, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

function con(name: string): ConsoleSession {
  const c = cons.get(name);
  assert.ok(c, `no console for ${name}`);
  return c;
}

async function ready(name: string): Promise<void> {
  const c = await host.console(name);
  await c.expect(/XENODE-READY/, 180_000);
  await c.expect(new RegExp(`${name}:/# `), 60_000);
  cons.set(name, c);
}

async function vif0(dom: string): Promise<VifView> {
  const r = await http('GET', `/v1/domains/${dom}/net`, alice);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const v = (r.json.vifs as VifView[])[0];
  assert.ok(v);
  return v;
}

/** Pings `ip` from `dom` (optionally through interface `dev`): packets received. */
async function ping(dom: string, ip: string, dev?: string): Promise<number> {
  const out = await con(dom).run(
    `ping -c 3 -W 1 ${dev ? `-I ${dev} ` : ''}${ip} 2>&1 | grep -o '[0-9]* packets received'`,
    60_000,
  );
  return Number(/(\d+) packets received/.exec(out)?.[1] ?? -1);
}

/** tcpdump -e on the host's TAP while `during` runs: the lines it printed. */
async function onTap(filter: string, during: () => Promise<unknown>): Promise<string[]> {
  const td = spawn('tcpdump', ['-i', HOST_TAP, '-e', '-n', '-l', ...filter.split(' ')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  td.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    td.stderr.on('data', (d: Buffer) => {
      if (/listening on/.test(d.toString())) resolve();
    });
    td.once('exit', () => reject(new Error('tcpdump exited early')));
  });
  try {
    await during();
  } finally {
    const gone = new Promise((r) => td.once('exit', r));
    td.kill('SIGINT');
    await gone;
  }
  return out.split('\n').filter((l) => l.trim() !== '');
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost({ XENODE_NET_HOSTPORT: root ? `${HOST_TAP},${HOST_IP}/24` : 'none' });
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  port = host.tcpPort();
});

after(async () => {
  for (const c of cons.values()) c.close();
  agent.destroy();
  await host?.cleanup();
});

describe('vlan= on vifs', () => {
  it('refuses a VLAN id out of range or not a number, and vlan= on a Linux bridge', async () => {
    for (const bad of ['0', '4095', '10:20', 'ten', '-1']) {
      const r = await http('POST', '/v1/domains', alice, {
        configText: `name = "bad"\nmemory = 128\nvif = ['vlan=${bad}']\n`,
      });
      assert.equal(r.status, 400, `vlan=${bad}: ${JSON.stringify(r.json)}`);
      assert.match(r.json.error?.message ?? '', /vlan/);
    }
    // The JSON form (create -n prints it) is checked too.
    const file = join(host.dir, 'vlan.cfg');
    writeFileSync(file, 'name = "x"\nmemory = 128\nvif = ["vlan=12"]\n');
    const n = await host.xl(['create', '-n', file]);
    assert.equal(n.code, 0, n.stderr);
    const cfg = JSON.parse(n.stdout) as { vif: Array<{ vlan?: number }> };
    assert.equal(cfg.vif[0]?.vlan, 12);
    (cfg.vif[0] as { vlan?: number }).vlan = 5000;
    const j = await http('POST', '/v1/domains', undefined, { config: cfg, paused: true });
    assert.equal(j.status, 400, JSON.stringify(j.json));
    assert.match(j.json.error?.message ?? '', /vlan/);
    assert.doesNotMatch(n.stderr, /ignored/);
  });

  describe('real guests', { skip: !root && 'needs root for the host port' }, () => {
    before(async () => {
      // A sponsor may name only the VLANs the admin opened to it (docs/network.md).
      await host.ok(['quota-set', 'alice', 'vlans=10']);
      for (const [name, vif] of [
        ['va', `ip=${A_IP},vlan=10`],
        ['vb', `ip=${B_IP},vlan=10`],
        ['vc', `ip=${C_IP} ${C_IP10}`],
      ] as const) {
        const c = await http('POST', '/v1/domains', alice, {
          configText: `name = "${name}"\nmemory = 256\nvif = ['${vif}']\n${EXTRA}`,
        });
        assert.equal(c.status, 200, JSON.stringify(c.json));
      }
      await Promise.all(['va', 'vb', 'vc'].map(ready));
      writeFileSync(`/proc/sys/net/ipv6/conf/${HOST_TAP}/disable_ipv6`, '1');
      for (const d of ['va', 'vb', 'vc']) await con(d).run('echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6');
      assert.equal((await vif0('va')).vlan, 10);
      assert.equal((await vif0('vc')).vlan, undefined);
    });

    it('two guests on VLAN 10 reach each other; the untagged one reaches neither', async () => {
      assert.equal(await ping('va', B_IP), 3);
      assert.equal(await ping('vb', A_IP), 3);
      // vc's untagged frames, from an address in VLAN 10's subnet: nothing crosses.
      await con('vc').run(`ip addr add ${C_IP10}/24 dev eth0`);
      assert.equal(await ping('vc', A_IP), 0);
      assert.equal(await ping('vc', B_IP), 0);
      await con('vc').run(`ip addr del ${C_IP10}/24 dev eth0`);
      // vc itself works: the host answers it on the untagged VLAN.
      assert.equal(await ping('vc', HOST_IP), 3);
    });

    it('VLAN 10 leaves on the host trunk tagged 10; a guest-tagged frame from the untagged vif never does', async () => {
      const tagged = await onTap('vlan 10', () => ping('va', '10.239.10.1'));
      assert.ok(
        tagged.some((l) => /vlan 10/.test(l) && /ARP/.test(l) && l.includes(A_IP)),
        tagged.join('\n') || 'nothing tagged on the trunk',
      );
      // vc's own 802.1Q interface for VLAN 10: its tag picks nothing.
      const out = await con('vc').run(
        `modprobe 8021q && ip link add link eth0 name eth0.10 type vlan id 10 && ip addr add ${C_IP10}/24 dev eth0.10 && ip link set eth0.10 up && echo vlan-up`,
        60_000,
      );
      assert.match(out, /vlan-up/);
      const leaked = await onTap('vlan', async () => {
        assert.equal(await ping('vc', A_IP, 'eth0.10'), 0);
        assert.equal(await ping('vc', B_IP, 'eth0.10'), 0);
      });
      assert.deepEqual(leaked, [], 'no guest-tagged frame on the trunk');
      await con('vc').run('ip link del eth0.10');
    });

    it('a tag va sends itself is dropped and counted; va still reaches vb untagged', async () => {
      const before = (await vif0('va')).counters?.tx_spoof_dropped ?? 0;
      const out = await con('va').run(
        'modprobe 8021q && ip link add link eth0 name eth0.20 type vlan id 20 && ip addr add 10.239.20.31/24 dev eth0.20 && ip link set eth0.20 up && echo vlan-up',
        60_000,
      );
      assert.match(out, /vlan-up/);
      assert.equal(await ping('va', '10.239.20.32', 'eth0.20'), 0);
      const after = (await vif0('va')).counters?.tx_spoof_dropped ?? 0;
      assert.ok(after - before >= 3, `tagged frames dropped: ${after - before}`);
      await con('va').run('ip link del eth0.20');
      assert.equal(await ping('va', B_IP), 3);
    });

    it('a restarted switch keeps the VLANs', async () => {
      const st = await http('GET', '/v1/net', undefined);
      assert.equal(st.status, 200, JSON.stringify(st.json));
      const pid = (st.json.switch as { pid?: number }).pid;
      assert.ok(pid);
      process.kill(pid, 'SIGKILL');
      // Back when both VLAN 10 guests talk again (the supervisor restarts it and replays the ports).
      const end = Date.now() + 60_000;
      while ((await ping('va', B_IP)) < 1) assert.ok(Date.now() < end, 'VLAN 10 did not come back');
      const now = await http('GET', '/v1/net', undefined);
      assert.notEqual((now.json.switch as { pid?: number }).pid, pid);
      await con('vc').run(`ip addr add ${C_IP10}/24 dev eth0`);
      assert.equal(await ping('vc', A_IP), 0);
      await con('vc').run(`ip addr del ${C_IP10}/24 dev eth0`);
    });
  });
});
