// Frame parsing: known frames decode to the right fields, and no input makes
// the parser throw or report more than the frame holds.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  dstMac,
  ETHERTYPE_ARP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4ToString,
  isGroupMac,
  parseFrame,
  srcMac,
  TCP_ACK,
  TCP_SYN,
} from '../../src/net/frame.ts';
import { macToString } from '../../src/net/mac.ts';
import { arpRequest, ethernet, ipv4, tcpHeader, udpHeader } from '../helpers/frames.ts';

const A = '00:16:3e:00:00:0a';
const B = '00:16:3e:00:00:0b';

describe('frame parsing', () => {
  it('reads the Ethernet addresses and type', () => {
    const f = ethernet(B, A, 0x88b5, [1, 2, 3]);
    const p = parseFrame(f);
    assert.ok(p);
    assert.equal(macToString(p.eth.dst), B);
    assert.equal(macToString(p.eth.src), A);
    assert.equal(p.eth.ethertype, 0x88b5);
    assert.equal(p.payloadLength, 3);
    assert.equal(macToString(dstMac(f)), B);
    assert.equal(macToString(srcMac(f)), A);
  });

  it('decodes an ARP request', () => {
    const p = parseFrame(arpRequest(A, '10.0.0.1', '10.0.0.2'));
    assert.equal(p?.eth.ethertype, ETHERTYPE_ARP);
    assert.equal(p?.arp?.op, 1);
    assert.equal(macToString(p?.arp?.senderMac ?? 0), A);
    assert.equal(ipv4ToString(p?.arp?.senderIp ?? 0), '10.0.0.1');
    assert.equal(ipv4ToString(p?.arp?.targetIp ?? 0), '10.0.0.2');
    assert.ok(isGroupMac(p?.eth.dst ?? 0));
  });

  it('decodes IPv4 + TCP and bounds the payload by the IP length, not the padding', () => {
    const f = ipv4(B, A, {
      srcIp: '10.0.0.1',
      dstIp: '10.0.0.2',
      protocol: IPPROTO_TCP,
      l4: tcpHeader(40000, 25, TCP_SYN | TCP_ACK, [1, 2, 3, 4]),
      pad: 6,
    });
    const p = parseFrame(f);
    assert.equal(ipv4ToString(p?.ipv4?.src ?? 0), '10.0.0.1');
    assert.equal(ipv4ToString(p?.ipv4?.dst ?? 0), '10.0.0.2');
    assert.deepEqual(
      { src: p?.tcp?.srcPort, dst: p?.tcp?.dstPort, flags: p?.tcp?.flags, seq: p?.tcp?.seq, ack: p?.tcp?.ack },
      { src: 40000, dst: 25, flags: TCP_SYN | TCP_ACK, seq: 7, ack: 9 },
    );
    assert.equal(p?.payloadLength, 4);
  });

  it('decodes IPv4 + UDP', () => {
    const p = parseFrame(
      ipv4(B, A, { srcIp: '1.2.3.4', dstIp: '5.6.7.8', protocol: IPPROTO_UDP, l4: udpHeader(53, 5353, [9, 9]) }),
    );
    assert.deepEqual(p?.udp, { srcPort: 53, dstPort: 5353, length: 10 });
    assert.equal(p?.payloadLength, 2);
  });

  it('gives no L4 header for a non-first fragment', () => {
    const p = parseFrame(
      ipv4(B, A, { srcIp: '1.2.3.4', dstIp: '5.6.7.8', protocol: IPPROTO_UDP, l4: udpHeader(1, 2), fragOffset: 185 }),
    );
    assert.equal(p?.ipv4?.fragmentOffset, 185);
    assert.equal(p?.udp, undefined);
  });

  it('reads through an 802.1Q tag', () => {
    const f = ethernet(B, A, 0x8100, [0x00, 0x2a, 0x08, 0x06]);
    const p = parseFrame(f);
    assert.equal(p?.eth.vlan, 42);
    assert.equal(p?.eth.ethertype, ETHERTYPE_ARP);
    assert.equal(p?.arp, undefined, 'truncated ARP is not decoded');
  });

  it('rejects frames shorter than an Ethernet header', () => {
    assert.equal(parseFrame(Buffer.alloc(13)), undefined);
  });

  it('tells group from unicast MACs', () => {
    assert.ok(isGroupMac(0xffffffffffff));
    assert.ok(isGroupMac(0x01005e000001));
    assert.ok(!isGroupMac(0x00163e000001));
    assert.ok(!isGroupMac(0xfeffffffffff));
  });

  it('never throws on random bytes, and never claims more payload than the frame has (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (bytes) => {
        const p = parseFrame(bytes);
        if (bytes.length < 14) return p === undefined;
        assert.ok(p);
        assert.ok(p.payloadLength >= 0 && p.payloadLength <= bytes.length);
        if (p.tcp) assert.ok(p.ipv4 && p.ipv4.protocol === IPPROTO_TCP);
        if (p.udp) assert.ok(p.ipv4 && p.ipv4.protocol === IPPROTO_UDP);
        return true;
      }),
      { numRuns: 20_000 },
    );
  });

  it('never throws on mutated IPv4/TCP frames (property)', () => {
    const base = ipv4(B, A, { srcIp: '10.0.0.1', dstIp: '10.0.0.2', protocol: IPPROTO_TCP, l4: tcpHeader(1, 2, 2) });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(base.length),
        (edits, cut) => {
          const f = Buffer.from(base);
          for (const [i, v] of edits) f[i] = v;
          const p = parseFrame(f.subarray(0, cut));
          if (p) assert.ok(p.payloadLength <= cut);
        },
      ),
      { numRuns: 20_000 },
    );
  });
});
