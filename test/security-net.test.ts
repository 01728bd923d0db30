// Issue 13, findings 10 and 5 (error texts), from the hostile side: a guest that
// takes another domain's MAC must not receive that domain's traffic (the switch
// forwards only frames whose source MAC is the sending vif's own), and the errors
// a sponsor gets for bridge= must not tell which host interfaces exist. Domains
// are created over the real TCP API with a sponsor token; real guests on
// Xenode's switch with its host port.

import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { NetStatus, VifView } from '../src/features/network/manager.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

// A host port and subnet of this test's own, so other tests' networks are never disturbed.
const TAG = String(process.pid % 100000);
const HOST_TAP = `xns${TAG}`;
const NET = '10.236.0';
const A_IP = `${NET}.11`;
const B_IP = `${NET}.12`;
const root = process.getuid?.() === 0;

let host: TestHost;
let port: number;
let alice: string;
const cons = new Map<string, ConsoleSession>();
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

interface Reply {
  status: number;
  json: { error?: { kind?: string; message?: string; hint?: string } } & Record<string, unknown>;
}

function http(method: string, path: string, token: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (payload) headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
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

/** Admin view over the local socket (switch status is admin-only). */
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

async function vif0(dom: string): Promise<VifView> {
  const r = await http('GET', `/v1/domains/${dom}/net`, alice);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const v = (r.json.vifs as VifView[])[0];
  assert.ok(v, `${dom} has a vif`);
  return v;
}

async function createAsAlice(name: string, extra: string, paused = false): Promise<Reply> {
  return http('POST', '/v1/domains', alice, { configText: `name = "${name}"\nmemory = 256\n${extra}\n`, paused });
}

function con(name: string): ConsoleSession {
  const c = cons.get(name);
  assert.ok(c, `no console for ${name}`);
  return c;
}

async function ready(name: string): Promise<void> {
  const c = await host.console(name);
  await c.expect(/XENODE-READY/, 120_000);
  await c.expect(new RegExp(`${name}:/# `), 60_000);
  cons.set(name, c);
}

/** Received count of busybox `ping -c N`. */
async function ping(from: string, to: string, count = 2): Promise<number> {
  const out = await con(from).run(`ping -c ${count} -W 2 ${to}`, 60_000);
  const m = /(\d+) packets received/.exec(out);
  assert.ok(m, out);
  return Number(m[1]);
}

async function rxPackets(dom: string): Promise<number> {
  return Number(await con(dom).run('cat /sys/class/net/eth0/statistics/rx_packets'));
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost({ XENODE_NET_HOSTPORT: root ? `${HOST_TAP},${NET}.1/24` : 'none' });
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  port = host.tcpPort();
});

after(async () => {
  for (const c of cons.values()) c.close();
  agent.destroy();
  await host?.cleanup();
});

describe('anti-spoofing on the switch (finding 10)', { skip: !root && 'needs root for the host port' }, () => {
  before(async () => {
    for (const [name, ip] of [
      ['sa', A_IP],
      ['sb', B_IP],
    ] as const) {
      const r = await createAsAlice(name, `vif = ['ip=${ip}']`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
    }
    await Promise.all(['sa', 'sb'].map(ready));
  });

  it("a domain that takes another domain's MAC receives none of its traffic from the host port", async () => {
    const macA = (await vif0('sa')).mac;
    const macB = (await vif0('sb')).mac;
    assert.notEqual(macA, macB);
    // Both reach the host: the switch and the host have learned where A and B are.
    assert.ok((await ping('sa', `${NET}.1`)) >= 1, 'A reaches the host');
    assert.ok((await ping('sb', `${NET}.1`)) >= 1, 'B reaches the host');

    // B takes A's MAC and keeps sending with it: ARP requests for an address nobody has
    // (broadcast, no replies), so a learning switch moves A's MAC to B's port.
    const txBefore = Number(await con('sb').run('cat /sys/class/net/eth0/statistics/tx_packets'));
    await con('sb').run(`ip link set dev eth0 address ${macA}`);
    assert.equal(await con('sb').run('cat /sys/class/net/eth0/address'), macA);
    await con('sb').run(`ping -i 0.2 ${NET}.99 >/dev/null 2>&1 & echo $! > /tmp/spoofer`);
    await con('sb').run(
      `for i in $(seq 100); do [ $(cat /sys/class/net/eth0/statistics/tx_packets) -ge ${txBefore + 3} ] && break; sleep 0.1; done`,
    );

    // The host sends A a burst of UDP datagrams (A's port 9 is closed: A just counts them).
    const N = 40;
    const rxA = await rxPackets('sa');
    const rxB = await rxPackets('sb');
    const sock = createSocket('udp4');
    try {
      for (let i = 0; i < N; i++) {
        await new Promise<void>((resolve, reject) =>
          sock.send(Buffer.from(`for A ${i}`), 9, A_IP, (e) => (e ? reject(e) : resolve())),
        );
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      sock.close();
    }
    // Wait in A until the burst arrived (or 10 s passed), then look at both.
    const gotA =
      Number(
        await con('sa').run(
          `for i in $(seq 100); do [ $(cat /sys/class/net/eth0/statistics/rx_packets) -ge ${rxA + N} ] && break; sleep 0.1; done; cat /sys/class/net/eth0/statistics/rx_packets`,
          30_000,
        ),
      ) - rxA;
    const gotB = (await rxPackets('sb')) - rxB;
    assert.ok(gotB < 8, `B received ${gotB} frames while the host sent ${N} to A`);
    assert.ok(gotA >= N - 2, `A received ${gotA} of the ${N} datagrams sent to it`);

    // The switch counts what it dropped, on B's port, where port statistics are.
    const st = await adminGet<NetStatus>('/v1/net');
    const bPort = st.ports.find((p) => p.mac === macB);
    assert.ok((bPort?.counters.spoofDrops ?? 0) >= 3, `B's spoofed frames are counted: ${JSON.stringify(bPort)}`);
    assert.ok(((await vif0('sb')).counters?.tx_spoof_dropped ?? 0) >= 3, 'and the sponsor sees them on its vif');
    assert.equal(st.ports.find((p) => p.mac === macA)?.counters.spoofDrops, 0, 'A sent nothing spoofed');

    // B with its own MAC back is on the network again.
    await con('sb').run(`kill $(cat /tmp/spoofer); ip link set dev eth0 address ${macB}`);
    assert.ok((await ping('sb', `${NET}.1`)) >= 1, 'B reaches the host with its own MAC');
    assert.ok((await ping('sa', `${NET}.1`)) >= 1, 'A still reaches the host');
  });
});

describe('bridge errors do not reveal host interfaces (finding 5)', () => {
  // `lo` exists on every host and is not a bridge; the other name exists nowhere.
  const missing = `xnno${TAG}`;

  /** The error with the bridge's name taken out: what the caller learns beyond its own input. */
  function shape(r: Reply, name: string): string {
    assert.ok(r.status >= 400, `refused: ${JSON.stringify(r.json)}`);
    return JSON.stringify(r.json.error).replace(new RegExp(`\\b${name}\\b`, 'g'), '<NAME>');
  }

  async function noBrDomains(): Promise<void> {
    const list = await http('GET', '/v1/domains', alice);
    assert.deepEqual(
      (list.json as unknown as Array<{ name: string }>).map((d) => d.name).filter((n) => n.startsWith('brc')),
      [],
      'no domain was created',
    );
  }

  // Not open to alice: refused before any look at the host. Open to her (the admin's
  // allow-list): the look at the host answers the same for both names.
  for (const open of [false, true]) {
    it(`create: an existing non-bridge interface and a missing one give the same error (${open ? 'allowed' : 'not allowed'})`, async () => {
      await host.ok(['quota-set', 'alice', `bridges=${open ? `lo,${missing}` : 'none'}`]);
      const onLo = await createAsAlice('brclo', "vif = ['bridge=lo']");
      const onMissing = await createAsAlice('brcmiss', `vif = ['bridge=${missing}']`);
      assert.equal(shape(onLo, 'lo'), shape(onMissing, missing));
      // Allowed, the name got past the allow-list to the look at the host.
      if (open) assert.match(onLo.json.error?.message ?? '', /bridge 'lo' does not exist/);
      await noBrDomains();
    });

    it(`network-attach: the same (${open ? 'allowed' : 'not allowed'})`, async () => {
      await host.ok(['quota-set', 'alice', `bridges=${open ? `lo,${missing}` : 'none'}`]);
      const r = await createAsAlice('brhot', '', true);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      try {
        const onLo = await http('POST', '/v1/domains/brhot/net', alice, { spec: 'bridge=lo' });
        const onMissing = await http('POST', '/v1/domains/brhot/net', alice, { spec: `bridge=${missing}` });
        assert.equal(shape(onLo, 'lo'), shape(onMissing, missing));
        if (open) assert.match(onLo.json.error?.message ?? '', /bridge 'lo' does not exist/);
        assert.equal(((await http('GET', '/v1/domains/brhot/net', alice)).json.vifs as VifView[]).length, 0);
      } finally {
        await http('POST', '/v1/domains/brhot/destroy', alice);
      }
    });
  }
});

describe('a sponsor’s vlan= (the host port carries every VLAN tagged)', () => {
  it('is refused until the admin opens that VLAN id to the sponsor, at create and at network-attach', async () => {
    await host.ok(['quota-set', 'alice', 'vlans=none']);
    const shut = await createAsAlice('vlclosed', "vif = ['vlan=10']", true);
    assert.equal(shut.status, 403, JSON.stringify(shut.json));
    assert.match(shut.json.error?.message ?? '', /vlan 10 is not open to you/);
    await host.ok(['quota-set', 'alice', 'vlans=10']);
    const other = await createAsAlice('vlother', "vif = ['vlan=20']", true);
    assert.match(other.json.error?.message ?? '', /vlan 20 is not open to you/, 'only the ids opened');
    const ok = await createAsAlice('vlopen', "vif = ['vlan=10']", true);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    try {
      const hot = await http('POST', '/v1/domains/vlopen/net', alice, { spec: 'vlan=20' });
      assert.match(hot.json.error?.message ?? '', /vlan 20 is not open to you/);
    } finally {
      await http('POST', '/v1/domains/vlopen/destroy', alice);
      await host.ok(['quota-set', 'alice', 'vlans=none']);
    }
    const bad = await host.xl(['quota-set', 'alice', 'vlans=5000']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid VLAN id '5000'/);
  });
});
