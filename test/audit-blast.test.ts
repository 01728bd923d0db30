// Issue 17 on real guests: a one-way blast. Guest `ua` (alice) sends UDP at the
// host as fast as the kernel's pktgen can (configured through /proc/net/pktgen
// from the guest shell: busybox has no UDP sender); the ACK-symmetry rule's
// one-way budget throttles it. Meanwhile bob's guests `ub` and `uc` move 4 MiB
// over TCP with busybox nc: the transfer completes and its flows are logged with
// the counts both guests' interfaces show. Whether the transfer keeps 90 % of
// its rate is a measurement, not a test: `npm run bench:net -- --only blast`.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { VifView } from '../src/features/network/manager.ts';
import type { AuditEvent, FlowRecord } from '../src/toolstack/lifecycle-hooks.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const TAG = String(process.pid % 100000);
const HOST_TAP = `xnb${TAG}`;
const NET = '10.238.0';
const HOST_IP = `${NET}.1`;
const A_IP = `${NET}.21`;
const B_IP = `${NET}.22`;
const C_IP = `${NET}.23`;
const root = process.getuid?.() === 0;
/**
 * On this shared 2-CPU host under TCG, a guest booting while others load the CPUs can
 * fail the kernel's IO-APIC timer check and panic ("IO-APIC + timer doesn't work"):
 * seen twice at load 28-42. The check proves nothing here; skip it.
 */
const EXTRA = 'extra = "quiet no_timer_check"\n';

/** A one-way budget a blast crosses within a second; a throttle of 5 packets a second. */
const RULES = {
  flows: { windowSec: 60, idleSec: 4 },
  ackSymmetry: { maxOneWayBytes: 1 << 20, windowSec: 5 },
  throttle: { pps: 5, holdSec: 600 },
};
const BLAST_PKT = 1000;
const TRANSFER = 2 << 20;

let host: TestHost;
let port: number;
let alice: string;
let bob: string;
const cons = new Map<string, ConsoleSession>();
const agent = new Agent({ keepAlive: true, maxSockets: 2 });

interface Reply {
  status: number;
  json: Record<string, unknown>;
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

async function flows(token: string | undefined, query: string): Promise<FlowRecord[]> {
  const r = await http('GET', `/v1/flows?${query}`, token);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.flows as FlowRecord[];
}

async function events(token: string | undefined): Promise<AuditEvent[]> {
  const r = await http('GET', '/v1/audit/events?limit=5000', token);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.events as AuditEvent[];
}

async function waitFor<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let v = await get();
  while (!ok(v)) {
    if (Date.now() > end) assert.fail(`${what}: still ${JSON.stringify(v).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 500));
    v = await get();
  }
  return v;
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

async function vif0(dom: string, token: string | undefined): Promise<VifView> {
  const r = await http('GET', `/v1/domains/${dom}/net`, token);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const v = (r.json.vifs as VifView[])[0];
  assert.ok(v);
  return v;
}

async function counters(dom: string): Promise<number[]> {
  const out = await con(dom).run(
    'cd /sys/class/net/eth0/statistics && cat tx_packets tx_bytes rx_packets rx_bytes && cd /',
    60_000,
  );
  return out.split('\n').map(Number);
}

function tapRx(): number {
  return Number(readFileSync(`/sys/class/net/${HOST_TAP}/statistics/rx_packets`, 'utf8'));
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost({ XENODE_NET_HOSTPORT: root ? `${HOST_TAP},${HOST_IP}/24` : 'none' });
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  bob = (await host.ok(['token', 'create', 'bob'])).trim();
  port = host.tcpPort();
});

after(async () => {
  for (const c of cons.values()) c.close();
  agent.destroy();
  await host?.cleanup();
});

describe('a one-way UDP blast next to a TCP transfer', { skip: !root && 'needs root for the host port' }, () => {
  before(async () => {
    const r = await http('PUT', '/v1/audit/rules', undefined, { rules: RULES });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    for (const [name, ip, token] of [
      ['ua', A_IP, alice],
      ['ub', B_IP, bob],
      ['uc', C_IP, bob],
    ] as const) {
      const c = await http('POST', '/v1/domains', token, {
        configText: `name = "${name}"\nmemory = 256\nvif = ['ip=${ip}']\n${EXTRA}`,
      });
      assert.equal(c.status, 200, JSON.stringify(c.json));
    }
    await Promise.all(['ua', 'ub', 'uc'].map(ready));
    writeFileSync(`/proc/sys/net/ipv6/conf/${HOST_TAP}/disable_ipv6`, '1');
    // Only the traffic the test makes: no IPv6, no ARP (static entries both ways).
    const macB = (await vif0('ub', bob)).mac;
    const macC = (await vif0('uc', bob)).mac;
    for (const [dom, peer, peerMac] of [
      ['ub', C_IP, macC],
      ['uc', B_IP, macB],
    ] as const) {
      await con(dom).run(
        `echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6; arp -s ${peer} ${peerMac}; ip neigh show ${peer}`,
      );
      assert.match(await con(dom).run(`ip neigh show ${peer}`), /PERMANENT/);
    }
    // The host answers the blast with ICMP errors: a permanent entry for ua spares the
    // others its ARP broadcasts (ua's replies are throttled too), so their counters are theirs.
    const macA = (await vif0('ua', alice)).mac;
    execFileSync('ip', ['neigh', 'replace', A_IP, 'lladdr', macA, 'dev', HOST_TAP, 'nud', 'permanent']);
    await con('ua').run('echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6');
  });

  it('the blast is throttled by the one-way rule; the transfer completes and is logged exactly', async () => {
    const hostMac = readFileSync(`/sys/class/net/${HOST_TAP}/address`, 'utf8').trim();
    const t0 = Date.now();
    // pktgen from the guest shell: one kernel thread sends UDP to the host's discard port until stopped.
    const pg = await con('ua').run(
      [
        'modprobe pktgen',
        'echo "add_device eth0" > /proc/net/pktgen/kpktgend_0',
        `for s in "count 0" "pkt_size ${BLAST_PKT}" "delay 0" "dst ${HOST_IP}" "dst_mac ${hostMac}" "udp_dst_min 9" "udp_dst_max 9"; do echo "$s" > /proc/net/pktgen/eth0; done`,
        'grep -c "Params" /proc/net/pktgen/eth0',
        '(echo start > /proc/net/pktgen/pgctrl 2>/dev/null &)',
      ].join('; '),
      60_000,
    );
    assert.match(pg, /^1$/m, pg);

    // The transfer, during the blast: uc listens and counts, ub sends 4 MiB.
    const before = { ub: await counters('ub'), uc: await counters('uc') };
    const since = Date.now() - 1000;
    await con('uc').run('(nc -l -p 5001 | wc -c > /tmp/rx; echo end >> /tmp/rx) >/dev/null 2>&1 & true', 30_000);
    await waitFor(
      'uc listening',
      () => con('uc').run('netstat -ltn | grep -c ":5001 "', 30_000),
      (s) => s.trim() === '1',
    );
    const sent = await con('ub').run(
      `dd if=/dev/zero bs=1024 count=${TRANSFER / 1024} 2>/dev/null | nc -w 10 ${C_IP} 5001; echo rc=$?`,
      240_000,
    );
    assert.match(sent, /rc=0/);
    const got = await waitFor(
      'the receiver to finish',
      () => con('uc').run('cat /tmp/rx 2>/dev/null', 30_000),
      (s) => /end/.test(s),
      120_000,
    );
    assert.equal(Number(got.split('\n')[0]), TRANSFER, got);

    // The rule fired for the blaster only, and says so in the events, the store and the CLI.
    const ev = await waitFor(
      'the ack-symmetry event',
      () => events(alice),
      (e) => e.some((x) => x.rule === 'ack-symmetry' && x.action === 'throttle' && x.time >= t0),
    );
    const fired = ev.find((x) => x.rule === 'ack-symmetry' && x.action === 'throttle') as AuditEvent;
    assert.match(fired.detail, /bytes sent without anything coming back/);
    assert.ok(!(await events(bob)).some((x) => x.rule === 'ack-symmetry'), 'bob was not throttled');
    const cli = await host.ok(['flows', 'events', '--limit', '5000']);
    assert.match(cli, /alice\s+ack-symmetry\s+throttle\s+\d+ bytes sent without anything coming back/);
    assert.match(cli, /alice\s+ack-symmetry\s+drop\s+\d+ packets dropped/);
    const st = await http(
      'GET',
      `/v1/store/read?path=${encodeURIComponent(`/local/domain/${fired.domid}/audit/last-action`)}`,
      undefined,
    );
    assert.equal(st.status, 200, JSON.stringify(st.json));
    assert.match(JSON.stringify(st.json), /ack-symmetry/);

    // The switch drops the blast: its audit counter grows, and what reaches the host
    // over a measured interval is within the throttle (5 packets a second, plus its burst).
    const d0 = (await vif0('ua', alice)).counters?.tx_audit_dropped ?? 0;
    const r0 = tapRx();
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const d1 = (await vif0('ua', alice)).counters?.tx_audit_dropped ?? 0;
    const r1 = tapRx();
    const secs = (performance.now() - w0) / 1000;
    assert.ok(d1 - d0 > 100, `blast packets dropped in ${secs.toFixed(1)} s: ${d1 - d0}`);
    assert.ok(
      r1 - r0 <= Math.ceil(RULES.throttle.pps * (secs + 1)),
      `${r1 - r0} packets reached the host in ${secs} s`,
    );
    await con('ua').run('echo stop > /proc/net/pktgen/pgctrl', 60_000);
    const sentA = await con('ua').run('grep -o "pkts-sofar: [0-9]*" /proc/net/pktgen/eth0', 60_000);
    assert.ok(Number(/\d+/.exec(sentA)?.[0]) >= d1, sentA);

    // The transfer's flows: what ub sent is what uc received, and both match the guests' counters.
    const after = { ub: await counters('ub'), uc: await counters('uc') };
    await new Promise((r) => setTimeout(r, (RULES.flows.idleSec + 2) * 1000));
    const fb = await waitFor(
      "ub's flow closed",
      () => flows(bob, `domain=ub&since=${since}`),
      (f) => f.some((x) => x.dport === 5001),
    );
    const fc = await flows(bob, `domain=uc&since=${since}`);
    const sum = (fs: FlowRecord[], k: 'pktsOut' | 'bytesOut' | 'pktsIn' | 'bytesIn') =>
      fs.reduce((a, f) => a + f[k], 0);
    for (const [dom, fs] of [
      ['ub', fb],
      ['uc', fc],
    ] as const) {
      const [txP, txB, rxP, rxB] = after[dom].map((v, i) => v - (before[dom][i] as number));
      assert.deepEqual(
        {
          pktsOut: sum(fs, 'pktsOut'),
          bytesOut: sum(fs, 'bytesOut'),
          pktsIn: sum(fs, 'pktsIn'),
          bytesIn: sum(fs, 'bytesIn'),
        },
        { pktsOut: txP, bytesOut: txB, pktsIn: rxP, bytesIn: rxB },
        `${dom}: ${JSON.stringify(fs)}`,
      );
      for (const f of fs) assert.equal(f.action, 'accept', JSON.stringify(f));
    }
    // And what the switch saw leave ub is what it saw reach uc.
    assert.equal(sum(fb, 'bytesOut'), sum(fc, 'bytesIn'));
    assert.equal(sum(fb, 'pktsOut'), sum(fc, 'pktsIn'));
    assert.equal(sum(fc, 'bytesOut'), sum(fb, 'bytesIn'));
    assert.ok(sum(fb, 'bytesOut') > TRANSFER, 'the payload and its headers');
    // Alice's blast is in her log, marked with the rule; bob cannot see it.
    const fa = await waitFor(
      "the blast's flow",
      () => flows(alice, `domain=ua&since=${t0}`),
      (f) => f.some((x) => x.proto === 17 && x.dport === 9),
    );
    const blast = fa.filter((x) => x.proto === 17 && x.dport === 9);
    assert.ok(
      blast.some((x) => x.rule === 'ack-symmetry'),
      JSON.stringify(blast),
    );
    assert.ok(blast.every((x) => x.pktsIn === 0));
    assert.deepEqual(await flows(bob, 'domain=ua'), []);
  });
});
