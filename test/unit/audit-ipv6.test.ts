// IPv6 anti-spoofing in the switch's audit: a vif sends IPv6 only from its ip=
// IPv6 addresses, its MAC's EUI-64 link-local address, or (as for IPv4) the
// first link-local and the first other address it uses; neighbour discovery may
// claim only those addresses and only its own MAC; router advertisements and
// redirects from guests are dropped.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuditEngine } from '../../src/net/audit/engine.ts';
import { defaultRules } from '../../src/net/audit/rules.ts';
import type { PortInfo } from '../../src/net/policy.ts';
import { ethernet, macBytes } from '../helpers/frames.ts';

const MAC = '00:16:3e:00:00:01';
const OTHER_MAC = '00:16:3e:00:00:02';
/** MAC's EUI-64 link-local address. */
const LL = 'fe80::216:3eff:fe00:1';

function addr(s: string): number[] {
  const [head = '', tail = ''] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = s.includes('::') ? [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

function ip6(src: string, dst: string, next: number, l4: number[], hop = 64, from = MAC): Buffer {
  const hdr = [0x60, 0, 0, 0, l4.length >> 8, l4.length & 0xff, next, hop, ...addr(src), ...addr(dst)];
  return ethernet('33:33:00:00:00:01', from, 0x86dd, [...hdr, ...l4]);
}

const udp = (src: string) => ip6(src, 'ff02::1', 17, [0, 53, 0, 53, 0, 8, 0, 0]);

/** An ICMPv6 neighbour advertisement for `target`, with a target link-layer option of `lladdr`. */
function na(src: string, target: string, lladdr = MAC): Buffer {
  return ip6(src, 'ff02::1', 58, [136, 0, 0, 0, 0x20, 0, 0, 0, ...addr(target), 2, 1, ...macBytes(lladdr)], 255);
}

/** A neighbour solicitation from `src` with a source link-layer option of `lladdr`. */
function ns(src: string, target: string, lladdr?: string): Buffer {
  const opt = lladdr ? [1, 1, ...macBytes(lladdr)] : [];
  return ip6(src, 'ff02::1:ff00:2', 58, [135, 0, 0, 0, 0, 0, 0, 0, ...addr(target), ...opt], 255);
}

/** A vif with ip= `addrs` (IPv4 and IPv6, as the daemon splits them). */
function port(addrs: string[]): PortInfo {
  const ips = addrs.filter((a) => !a.includes(':'));
  const ips6 = addrs.filter((a) => a.includes(':'));
  return { id: 'd1.0', kind: 'vif', sponsor: 'alice', domid: 1, devid: 0, mac: MAC, ips, ips6 };
}

describe('IPv6 anti-spoofing', () => {
  it("passes the vif's ip= IPv6 addresses and its EUI-64 link-local, drops the rest", () => {
    const a = new AuditEngine(defaultRules());
    const p = port(['10.0.0.1', '2001:db8::1']);
    assert.equal(a.fromVif(p, udp('2001:db8::1')), 'forward');
    assert.equal(a.fromVif(p, udp(LL)), 'forward');
    assert.equal(a.fromVif(p, udp('2001:db8::99')), 'spoof');
    // A link-local other than the EUI-64 one (stable privacy): the first is bound, a second is not.
    assert.equal(a.fromVif(p, udp('fe80::1234')), 'forward');
    assert.equal(a.fromVif(p, udp('fe80::1235')), 'spoof');
    a.tick();
    const ev = a.drain().events;
    assert.ok(
      ev.some((e) => e.rule === 'anti-spoofing' && e.action === 'drop' && /fe80::1235|2001:db8::99/.test(e.detail)),
    );
  });

  it('without ip= IPv6: binds the first global and the first link-local it uses, then only those', () => {
    const a = new AuditEngine(defaultRules());
    const p = port(['10.0.0.1']);
    assert.equal(a.fromVif(p, udp('2001:db8::5')), 'forward');
    assert.equal(a.fromVif(p, udp('2001:db8::6')), 'spoof');
    assert.equal(a.fromVif(p, udp('fe80::abcd')), 'forward', 'a stable-privacy link-local, first used');
    assert.equal(a.fromVif(p, udp('fe80::abce')), 'spoof');
    assert.equal(a.fromVif(p, udp(LL)), 'forward', 'the EUI-64 one always');
    assert.equal(a.fromVif(p, udp('2001:db8::5')), 'forward');
  });

  it('DAD from :: passes; :: for anything else does not', () => {
    const a = new AuditEngine(defaultRules());
    const p = port(['2001:db8::1']);
    assert.equal(a.fromVif(p, ns('::', '2001:db8::1')), 'forward');
    assert.equal(a.fromVif(p, udp('::')), 'spoof');
  });

  it("neighbour advertisements claim only the vif's addresses and its MAC", () => {
    const a = new AuditEngine(defaultRules());
    const p = port(['2001:db8::1']);
    assert.equal(a.fromVif(p, na('2001:db8::1', '2001:db8::1')), 'forward');
    assert.equal(a.fromVif(p, na(LL, '2001:db8::1')), 'forward');
    // Another guest's address, from the vif's own source: the classic ND spoof.
    assert.equal(a.fromVif(p, na('2001:db8::1', '2001:db8::2')), 'spoof');
    // Its own address but another MAC in the option.
    assert.equal(a.fromVif(p, na('2001:db8::1', '2001:db8::1', OTHER_MAC)), 'spoof');
    assert.equal(a.fromVif(p, ns('2001:db8::1', '2001:db8::2', OTHER_MAC)), 'spoof');
    assert.equal(a.fromVif(p, ns('2001:db8::1', '2001:db8::2', MAC)), 'forward');
  });

  it('drops router advertisements and redirects from guests', () => {
    const a = new AuditEngine(defaultRules());
    const p = port(['2001:db8::1']);
    const ra = ip6(LL, 'ff02::1', 58, [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0], 255);
    const redirect = ip6(
      LL,
      'fe80::2',
      58,
      [137, 0, 0, 0, 0, 0, 0, 0, ...addr('fe80::9'), ...addr('2001:db8::7')],
      255,
    );
    assert.equal(a.fromVif(p, ra), 'spoof');
    assert.equal(a.fromVif(p, redirect), 'spoof');
  });

  it('an ND message behind an extension header is checked too; off, nothing is', () => {
    const a = new AuditEngine(defaultRules());
    const p = port(['2001:db8::1']);
    const inner = [136, 0, 0, 0, 0x20, 0, 0, 0, ...addr('2001:db8::2'), 2, 1, ...macBytes(MAC)];
    // Hop-by-hop options header (8 bytes: next = ICMPv6, length 0, PadN).
    const hbh = ip6('2001:db8::1', 'ff02::1', 0, [58, 0, 1, 4, 0, 0, 0, 0, ...inner], 255);
    assert.equal(a.fromVif(p, hbh), 'spoof');
    const off = new AuditEngine({ ...defaultRules(), antiSpoofing: { enabled: false } });
    assert.equal(off.fromVif(p, na('2001:db8::1', '2001:db8::2')), 'forward');
    assert.equal(off.fromVif(p, udp('2001:db8::99')), 'forward');
  });
});

describe('IPv6 parsing of hostile frames', () => {
  it('never throws on truncated or random IPv6 frames, and never binds a multicast source', () => {
    const a = new AuditEngine(defaultRules());
    const p = port(['10.0.0.1']);
    let seed = 17;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    const good = na(LL, LL);
    for (let i = 0; i < 20_000; i++) {
      const f = Buffer.from(good.subarray(0, rnd() % (good.length + 1)));
      // Keep the Ethernet header (the MACs are checked before the audit), shake the rest.
      for (let j = 0; j < 4; j++) if (f.length > 14) f[14 + (rnd() % (f.length - 14))] = rnd() & 0xff;
      const v = a.fromVif(p, f);
      assert.ok(v === 'forward' || v === 'spoof' || v === 'drop', v);
    }
    assert.equal(new AuditEngine(defaultRules()).fromVif(p, udp('ff02::1')), 'spoof');
  });
});
