// The switch's audit engine without a switch: frames in, verdicts, flow records
// and events out, on a fake clock. Rules: new-connection limits (SMTP), port
// scans, SYN floods, ACK symmetry, throttle and quarantine; the rules' grammar.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuditEngine } from '../../src/net/audit/engine.ts';
import { defaultRules, parseRules, RulesError } from '../../src/net/audit/rules.ts';
import { parseFrame } from '../../src/net/frame.ts';
import type { PortInfo } from '../../src/net/policy.ts';
import { type SwitchPort, sourceMacOf, zeroCounters } from '../../src/net/switch-core.ts';
import { SwitchServer } from '../../src/net/switch-server.ts';
import { ipv4 } from '../helpers/frames.ts';

const T0 = Date.UTC(2026, 11, 7, 12);
const HOST_MAC = '02:00:00:00:00:01';

function vif(domid: number, sponsor: string): PortInfo {
  const mac = `00:16:3e:00:00:${domid.toString(16).padStart(2, '0')}`;
  return { id: `d${domid}.0`, kind: 'vif', sponsor, domid, devid: 0, mac };
}

function macBytes(m: string): number[] {
  return m.split(':').map((x) => Number.parseInt(x, 16));
}

function ipBytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

interface Seg {
  from: string;
  to: string;
  srcIp: string;
  dstIp: string;
  sport: number;
  dport: number;
  flags: number;
  seq?: number;
  ack?: number;
  data?: number;
}

function tcp(s: Seg): Uint8Array {
  const payload = new Array(s.data ?? 0).fill(0x61);
  const l4 = [
    s.sport >> 8,
    s.sport & 255,
    s.dport >> 8,
    s.dport & 255,
    ...u32(s.seq ?? 1000),
    ...u32(s.ack ?? 0),
    0x50,
    s.flags,
    0xff,
    0xff,
    0,
    0,
    0,
    0,
    ...payload,
  ];
  return ip(s.from, s.to, s.srcIp, s.dstIp, 6, l4);
}

function udp(from: string, to: string, srcIp: string, dstIp: string, sport: number, dport: number, n = 100) {
  const len = 8 + n;
  return ip(from, to, srcIp, dstIp, 17, [
    sport >> 8,
    sport & 255,
    dport >> 8,
    dport & 255,
    len >> 8,
    len & 255,
    0,
    0,
    ...new Array(n).fill(1),
  ]);
}

function ip(from: string, to: string, srcIp: string, dstIp: string, proto: number, l4: number[]): Uint8Array {
  const total = 20 + l4.length;
  const hdr = [0x45, 0, total >> 8, total & 255, 0, 1, 0x40, 0, 64, proto, 0, 0, ...ipBytes(srcIp), ...ipBytes(dstIp)];
  return Uint8Array.from([...macBytes(to), ...macBytes(from), 0x08, 0x00, ...hdr, ...l4]);
}

const SYN = 0x02;
const ACK = 0x10;
const SYNACK = 0x12;
const FIN = 0x01;

function setup(rules = defaultRules()) {
  let now = T0;
  const e = new AuditEngine(rules, { now: () => now });
  return {
    e,
    advance(ms: number) {
      now += ms;
    },
    get now() {
      return now;
    },
  };
}

function checksumOk(b: Uint8Array, off: number, len: number, acc = 0): boolean {
  let s = acc;
  for (let i = 0; i + 1 < len; i += 2) s += ((b[off + i] as number) << 8) | (b[off + i + 1] as number);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

describe('audit rules grammar', () => {
  it('fills in defaults and keeps what the admin set', () => {
    const r = parseRules({ portScan: { maxPorts: 5 }, exempt: ['ops'] });
    assert.equal(r.portScan.maxPorts, 5);
    assert.equal(r.portScan.windowSec, 10);
    assert.deepEqual(r.exempt, ['ops']);
    assert.deepEqual(r.connLimits, defaultRules().connLimits);
    assert.deepEqual(parseRules({ connLimits: [] }).connLimits, []);
  });

  it('names the first bad field, and refuses unknown ones', () => {
    const bad: Array<[unknown, RegExp]> = [
      [[], /JSON object/],
      [{ portScan: { maxPorts: 0 } }, /portScan\.maxPorts/],
      [{ portScan: { maxport: 3 } }, /unknown field "maxport"/],
      [{ connLimits: [{ name: 'x', ports: [70000] }] }, /connLimits\[0\]\.ports/],
      [{ connLimits: [{ name: 'x', ports: [25], action: 'explode' }] }, /connLimits\[0\]\.action/],
      [
        {
          connLimits: [
            { name: 'x', ports: [25] },
            { name: 'x', ports: [26] },
          ],
        },
        /names must differ/,
      ],
      [{ exempt: ['a b'] }, /exempt/],
      [{ synFlood: { action: 'reject' } }, /synFlood\.action/],
      [{ throttle: { pps: 1.5 } }, /whole number/],
      [{ quarantineSec: '60' }, /quarantineSec/],
    ];
    for (const [v, re] of bad)
      assert.throws(
        () => parseRules(v),
        (e: Error) => e instanceof RulesError && re.test(e.message),
        JSON.stringify(v),
      );
  });
});

describe('audit engine', () => {
  const alice1 = vif(1, 'alice');
  const alice2 = vif(2, 'alice');
  const bob = vif(3, 'bob');
  const aIp = '10.200.0.11';
  const hostIp = '10.200.0.1';
  const syn = (p: PortInfo, sport: number, dport = 25, ipAddr = aIp) =>
    tcp({ from: p.mac as string, to: HOST_MAC, srcIp: ipAddr, dstIp: hostIp, sport, dport, flags: SYN });

  it('lets one SMTP connection per 10 s per sponsor through, refuses the rest with a RST, and logs them', () => {
    const t = setup();
    const { e } = t;
    assert.equal(e.fromVif(alice1, syn(alice1, 40001)), 'forward');
    // The same SYN again (a retransmission) is the same connection.
    assert.equal(e.fromVif(alice1, syn(alice1, 40001)), 'forward');
    t.advance(2000);
    const second = syn(alice1, 40002);
    assert.equal(e.fromVif(alice1, second), 'reject');
    // Its retransmission stays refused.
    assert.equal(e.fromVif(alice1, syn(alice1, 40002)), 'reject');
    // The sponsor's other domain shares the budget; another sponsor has its own; port 80 is not limited.
    assert.equal(e.fromVif(alice2, syn(alice2, 40003, 587, '10.200.0.12')), 'reject');
    assert.equal(e.fromVif(bob, syn(bob, 40004, 25, '10.200.0.13')), 'forward');
    assert.equal(e.fromVif(alice1, syn(alice1, 40005, 80)), 'forward');
    // The RST answers the refused SYN, with valid checksums.
    const rst = e.reply(second);
    assert.ok(rst);
    const p = parseFrame(rst);
    assert.equal(p?.tcp?.flags, 0x14);
    assert.equal(p?.tcp?.srcPort, 25);
    assert.equal(p?.tcp?.dstPort, 40002);
    assert.equal(p?.tcp?.ack, 1001);
    assert.equal(p?.ipv4?.dst, 0x0ac8000b);
    assert.ok(checksumOk(rst, 14, 20));
    const pseudo = [...rst.subarray(26, 34)].reduce((a, b, i) => a + (i % 2 === 0 ? b << 8 : b), 0) + 6 + 20;
    assert.ok(checksumOk(rst, 34, 20, pseudo));
    // 10 s after the first: one more.
    t.advance(8000);
    assert.equal(e.fromVif(alice1, syn(alice1, 40006)), 'forward');
    assert.equal(e.fromVif(alice1, syn(alice1, 40007)), 'reject');
    e.tick();
    const ev = e.drain().events.filter((x) => x.rule === 'smtp');
    assert.deepEqual(
      ev.map((x) => [x.domid, x.action, /refused (\d+)/.exec(x.detail)?.[1]]),
      [
        [1, 'reject', '3'],
        [2, 'reject', '1'],
      ],
    );
    // The records: after the idle time, one per flow, the refused ones marked.
    t.advance(31_000);
    e.tick();
    const flows = e.drain().flows.filter((f) => f.dport === 25 || f.dport === 587);
    const bySport = new Map(flows.map((f) => [f.sport, f]));
    assert.equal(bySport.get(40001)?.action, 'accept');
    assert.equal(bySport.get(40001)?.pktsOut, 2);
    assert.equal(bySport.get(40002)?.action, 'reject');
    assert.equal(bySport.get(40002)?.rule, 'smtp');
    assert.equal(bySport.get(40002)?.pktsOut, 2);
    assert.equal(bySport.get(40003)?.action, 'reject');
    assert.equal(bySport.get(40004)?.action, 'accept');
    assert.equal(bySport.get(40001)?.src, aIp);
    assert.equal(bySport.get(40001)?.dst, hostIp);
    assert.equal(bySport.get(40001)?.sponsor, 'alice');
  });

  it('changes limits at runtime, and leaves exempt sponsors alone', () => {
    const t = setup();
    const { e } = t;
    assert.equal(e.fromVif(alice1, syn(alice1, 1)), 'forward');
    assert.equal(e.fromVif(alice1, syn(alice1, 2)), 'reject');
    e.setRules(parseRules({ connLimits: [{ name: 'smtp', ports: [25], connections: 3, perSec: 10, action: 'drop' }] }));
    assert.equal(e.fromVif(alice1, syn(alice1, 3)), 'forward');
    e.setRules(parseRules({ exempt: ['alice'] }));
    for (let i = 10; i < 20; i++) assert.equal(e.fromVif(alice1, syn(alice1, i)), 'forward');
    e.setRules(parseRules({ connLimits: [{ name: 'mail', ports: [25], action: 'drop', sponsors: ['bob'] }] }));
    assert.equal(e.fromVif(alice1, syn(alice1, 30)), 'forward');
    assert.equal(e.fromVif(bob, syn(bob, 31)), 'forward');
    assert.equal(e.fromVif(bob, syn(bob, 32)), 'drop');
  });

  it('detects a port scan at maxPorts + 1 probes and throttles the vif', () => {
    const t = setup(parseRules({ portScan: { maxPorts: 10, windowSec: 10 }, throttle: { pps: 5, holdSec: 30 } }));
    const { e } = t;
    let detectedAt = 0;
    for (let port = 1; port <= 20 && !detectedAt; port++) {
      e.fromVif(bob, syn(bob, 50000 + port, 1000 + port, '10.200.0.13'));
      e.tick();
      if (e.drain().events.some((x) => x.rule === 'port-scan' && x.action === 'throttle')) detectedAt = port;
      t.advance(100);
    }
    assert.equal(detectedAt, 11);
    // Throttled: 5 packets a second get through, the rest are dropped.
    const verdicts = Array.from({ length: 20 }, (_, i) => e.fromVif(bob, syn(bob, 60000 + i, 80, '10.200.0.13')));
    assert.ok(verdicts.filter((v) => v === 'forward').length <= 6, verdicts.join(' '));
    assert.ok(verdicts.includes('drop'));
    // Other vifs are not affected; a slow connection pattern is not a scan.
    assert.equal(e.fromVif(alice1, syn(alice1, 1, 80)), 'forward');
    t.advance(31_000);
    e.tick();
    assert.ok(e.drain().events.some((x) => x.rule === 'port-scan' && x.detail === 'throttle lifted'));
    assert.equal(e.fromVif(bob, syn(bob, 61000, 80, '10.200.0.13')), 'forward');
  });

  it('quarantines a scanner when told to: nothing but ARP until it ends', () => {
    const t = setup(parseRules({ portScan: { maxPorts: 3, action: 'quarantine' }, quarantineSec: 60 }));
    const { e } = t;
    for (let port = 1; port <= 4; port++) e.fromVif(bob, syn(bob, 50000 + port, port, '10.200.0.13'));
    assert.equal(e.fromVif(bob, syn(bob, 50010, 80, '10.200.0.13')), 'drop');
    const arp = Uint8Array.from([
      ...macBytes('ff:ff:ff:ff:ff:ff'),
      ...macBytes(bob.mac as string),
      0x08,
      0x06,
      ...new Array(28).fill(0),
    ]);
    assert.equal(e.fromVif(bob, arp), 'forward');
    e.tick();
    assert.ok(e.drain().events.some((x) => x.action === 'quarantine' && /quarantined for 60 s/.test(x.detail)));
    t.advance(61_000);
    e.tick();
    assert.equal(e.fromVif(bob, syn(bob, 50011, 80, '10.200.0.13')), 'forward');
  });

  it('detects a SYN flood: SYNs the far side never answers', () => {
    const t = setup(parseRules({ synFlood: { maxHalfOpen: 20 }, portScan: { enabled: false } }));
    const { e } = t;
    const host = { id: 'host', kind: 'host', sponsor: '@host' } as const;
    void host;
    // Answered SYNs are not half-open.
    for (let i = 0; i < 40; i++) {
      e.fromVif(alice1, syn(alice1, 30000 + i, 80));
      e.toVif(
        alice1,
        tcp({
          from: HOST_MAC,
          to: alice1.mac as string,
          srcIp: hostIp,
          dstIp: aIp,
          sport: 80,
          dport: 30000 + i,
          flags: SYNACK,
          ack: 1001,
        }),
      );
    }
    e.tick();
    assert.deepEqual(
      e.drain().events.filter((x) => x.rule !== 'anti-spoofing'),
      [],
    );
    for (let i = 0; i < 21; i++) e.fromVif(alice1, syn(alice1, 40000 + i, 80));
    e.tick();
    assert.ok(e.drain().events.some((x) => x.rule === 'syn-flood' && x.action === 'throttle'));
  });

  it('throttles a TCP flow whose data runs ahead of the ACKs, not one that is acknowledged', () => {
    const t = setup(parseRules({ ackSymmetry: { maxUnackedBytes: 100_000 }, throttle: { pps: 10 } }));
    const { e } = t;
    const send = (p: PortInfo, sport: number, seq: number) =>
      e.fromVif(
        p,
        tcp({
          from: p.mac as string,
          to: HOST_MAC,
          srcIp: aIp,
          dstIp: hostIp,
          sport,
          dport: 5001,
          flags: ACK,
          seq,
          data: 1400,
        }),
      );
    const ackBack = (p: PortInfo, sport: number, ack: number) =>
      e.toVif(
        p,
        tcp({
          from: HOST_MAC,
          to: p.mac as string,
          srcIp: hostIp,
          dstIp: aIp,
          sport: 5001,
          dport: sport,
          flags: ACK,
          ack,
        }),
      );
    e.fromVif(
      alice1,
      tcp({
        from: alice1.mac as string,
        to: HOST_MAC,
        srcIp: aIp,
        dstIp: hostIp,
        sport: 7000,
        dport: 5001,
        flags: SYN,
        seq: 0,
      }),
    );
    e.fromVif(
      alice2,
      tcp({
        from: alice2.mac as string,
        to: HOST_MAC,
        srcIp: aIp,
        dstIp: hostIp,
        sport: 7001,
        dport: 5001,
        flags: SYN,
        seq: 0,
      }),
    );
    let seq = 1;
    for (let i = 0; i < 200; i++) {
      // alice1's peer acknowledges everything; alice2's only the first segment.
      assert.equal(send(alice1, 7000, seq), 'forward');
      ackBack(alice1, 7000, seq + 1400);
      send(alice2, 7001, seq);
      if (i === 0) ackBack(alice2, 7001, seq + 1400);
      seq += 1400;
      t.advance(1);
    }
    e.tick();
    const ev = e.drain().events;
    assert.ok(
      ev.some((x) => x.domid === 2 && x.rule === 'ack-symmetry'),
      JSON.stringify(ev),
    );
    assert.ok(!ev.some((x) => x.domid === 1 && x.rule === 'ack-symmetry'));
    assert.equal(send(alice2, 7001, seq), 'drop');
    assert.equal(send(alice1, 7000, seq), 'forward');
  });

  it('throttles a vif blasting UDP that gets nothing back', () => {
    const t = setup(parseRules({ ackSymmetry: { maxOneWayBytes: 50_000, windowSec: 5 }, throttle: { pps: 10 } }));
    const { e } = t;
    for (let i = 0; i < 400; i++) {
      e.fromVif(bob, udp(bob.mac as string, HOST_MAC, '10.200.0.13', hostIp, 9999, 9));
      // alice1's UDP gets answers.
      e.fromVif(alice1, udp(alice1.mac as string, HOST_MAC, aIp, hostIp, 5353, 53));
      e.toVif(alice1, udp(HOST_MAC, alice1.mac as string, hostIp, aIp, 53, 5353));
    }
    e.tick();
    const ev = e.drain().events;
    assert.ok(
      ev.some((x) => x.domid === 3 && x.rule === 'ack-symmetry' && x.action === 'throttle'),
      JSON.stringify(ev),
    );
    assert.ok(!ev.some((x) => x.domid === 1 && x.rule === 'ack-symmetry'));
    const v = Array.from({ length: 30 }, () =>
      e.fromVif(bob, udp(bob.mac as string, HOST_MAC, '10.200.0.13', hostIp, 9999, 9)),
    );
    assert.ok(v.filter((x) => x === 'drop').length >= 15);
  });

  it('emits one record per flow per window with both directions counted, and closes finished connections', () => {
    const t = setup(parseRules({ flows: { windowSec: 10, idleSec: 30 } }));
    const { e } = t;
    const out = (flags: number, data = 0) =>
      e.fromVif(
        alice1,
        tcp({
          from: alice1.mac as string,
          to: HOST_MAC,
          srcIp: aIp,
          dstIp: hostIp,
          sport: 33000,
          dport: 80,
          flags,
          data,
        }),
      );
    const back = (flags: number, data = 0, mac = alice1.mac as string) =>
      e.toVif(
        alice1,
        tcp({ from: HOST_MAC, to: mac, srcIp: hostIp, dstIp: aIp, sport: 80, dport: 33000, flags, data }),
      );
    out(SYN);
    back(SYNACK);
    out(ACK, 100);
    back(ACK, 1000);
    // A frame flooded to the vif for another MAC is not the guest's.
    back(ACK, 1000, '00:16:3e:99:99:99');
    t.advance(11_000);
    out(ACK);
    e.tick();
    let flows = e.drain().flows;
    assert.equal(flows.length, 1);
    const f = flows[0];
    assert.equal(f?.pktsOut, 3);
    assert.equal(f?.pktsIn, 2);
    assert.equal(f?.bytesOut, 54 + 154 + 54);
    assert.equal(f?.bytesIn, 54 + 1054);
    assert.equal(f?.flagsOut, SYN | ACK);
    assert.equal(f?.flagsIn, SYNACK);
    assert.equal(f?.start, T0);
    assert.equal(f?.end, T0 + 11_000);
    // Next window: a FIN each way; the flow ends 2 s later.
    out(FIN | ACK);
    back(FIN | ACK);
    t.advance(2500);
    e.tick();
    flows = e.drain().flows;
    assert.equal(flows.length, 1);
    assert.equal(flows[0]?.pktsOut, 1);
    assert.equal(flows[0]?.flagsOut, FIN | ACK);
    t.advance(60_000);
    e.tick();
    assert.equal(e.drain().flows.length, 0);
  });

  it("drops IPv4 and ARP from addresses not the vif's: its ip=, or the first it used", () => {
    const t = setup();
    const { e } = t;
    const fixed: PortInfo = { ...vif(5, 'carol'), ips: ['10.200.0.55'] };
    const fromFixed = (src: string) => udp(fixed.mac as string, HOST_MAC, src, hostIp, 1000, 53);
    assert.equal(e.fromVif(fixed, fromFixed('10.200.0.55')), 'forward');
    assert.equal(e.fromVif(fixed, fromFixed('10.200.0.11')), 'spoof');
    // No ip=: the first address it uses is its own from then on.
    assert.equal(e.fromVif(bob, udp(bob.mac as string, HOST_MAC, '10.200.0.13', hostIp, 1000, 53)), 'forward');
    assert.equal(e.fromVif(bob, udp(bob.mac as string, HOST_MAC, '10.200.0.99', hostIp, 1000, 53)), 'spoof');
    const arp = (mac: string, op: number, senderIp: string) =>
      Uint8Array.from([
        ...macBytes('ff:ff:ff:ff:ff:ff'),
        ...macBytes(mac),
        0x08,
        0x06,
        0,
        1,
        8,
        0,
        6,
        4,
        0,
        op,
        ...macBytes(mac),
        ...ipBytes(senderIp),
        0,
        0,
        0,
        0,
        0,
        0,
        ...ipBytes(hostIp),
      ]);
    // A reply claiming another guest's address; its own; a probe (sender 0.0.0.0).
    assert.equal(e.fromVif(bob, arp(bob.mac as string, 2, aIp)), 'spoof');
    assert.equal(e.fromVif(bob, arp(bob.mac as string, 2, '10.200.0.13')), 'forward');
    assert.equal(e.fromVif(bob, arp(bob.mac as string, 1, '0.0.0.0')), 'forward');
    // DHCP from 0.0.0.0 passes; anything else from 0.0.0.0 does not.
    assert.equal(
      e.fromVif(alice2, udp(alice2.mac as string, HOST_MAC, '0.0.0.0', '255.255.255.255', 68, 67)),
      'forward',
    );
    assert.equal(e.fromVif(alice2, udp(alice2.mac as string, HOST_MAC, '0.0.0.0', hostIp, 68, 53)), 'spoof');
    e.tick();
    const ev = e.drain().events.filter((x) => x.rule === 'anti-spoofing' && x.action === 'drop');
    assert.deepEqual(
      ev.map((x) => [x.domid, /^(\d+) frame/.exec(x.detail)?.[1]]),
      [
        [5, '1'],
        [3, '2'],
        [2, '1'],
      ],
    );
    // Off when the admin turns it off.
    e.setRules(parseRules({ antiSpoofing: { enabled: false } }));
    assert.equal(e.fromVif(fixed, fromFixed('10.200.0.11')), 'forward');
  });

  it('keeps at most maxFlowsPerVif flows per vif; the rest go to one overflow record', () => {
    const t = setup(
      parseRules({ flows: { maxFlowsPerVif: 16 }, portScan: { enabled: false }, synFlood: { enabled: false } }),
    );
    const { e } = t;
    for (let i = 0; i < 1000; i++)
      e.fromVif(bob, udp(bob.mac as string, HOST_MAC, '10.200.0.13', hostIp, 10000 + i, 53));
    assert.equal(e.flowCount, 17);
    e.removePort(bob.id);
    const flows = e.drain().flows;
    assert.equal(flows.length, 17);
    const over = flows.find((f) => f.rule === 'flow-table-full');
    assert.equal(over?.pktsOut, 1000 - 16);
    assert.equal(e.flowCount, 0);
  });
});

describe('the audit switched off (enabled: false)', () => {
  it('is refused unless true or false', () => {
    assert.equal(parseRules({ enabled: false }).enabled, false);
    assert.equal(parseRules({}).enabled, true);
    assert.throws(() => parseRules({ enabled: 'no' }), /rules\.enabled must be true or false/);
  });

  it('frames skip the audit while it is off (no address check, no flow); back on, both again', async () => {
    const server = new SwitchServer({ controlPath: '/nonexistent/ctl', idleExitMs: 1e9, log: () => {} });
    const got: Buffer[] = [];
    const port = (domid: number, ips: string[], onSend: (f: Uint8Array) => void): SwitchPort => {
      const info: PortInfo = { ...vif(domid, 'alice'), ips };
      return {
        info,
        counters: zeroCounters(),
        sourceMac: sourceMacOf(info),
        send: (f) => {
          onSend(f);
          return true;
        },
      };
    };
    const a = port(1, ['10.0.0.1'], () => {});
    const b = port(2, ['10.0.0.2'], (f) => got.push(Buffer.from(f)));
    server.core.addPort(a);
    server.core.addPort(b);
    // UDP from an address that is not a's own.
    const spoofed = ipv4(b.info.mac as string, a.info.mac as string, {
      srcIp: '10.0.0.99',
      dstIp: '10.0.0.2',
      protocol: 17,
      l4: [0, 53, 0, 53, 0, 8, 0, 0],
    });
    await server.handle({ id: 1, op: 'audit-rules', rules: { enabled: false } });
    server.core.input(a, spoofed);
    assert.equal(got.length, 1, 'forwarded: nothing checked the address');
    assert.equal(server.audit.flowCount, 0, 'and nothing was logged');
    await server.handle({ id: 2, op: 'audit-rules', rules: {} });
    server.core.input(a, spoofed);
    assert.equal(got.length, 1);
    assert.equal(a.counters.spoofDrops, 1);
  });
});
