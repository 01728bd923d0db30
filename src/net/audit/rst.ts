// The TCP RST that answers a refused SYN, as the far end would send it: the
// guest's connect() fails at once with "connection refused" instead of
// retransmitting its SYN for a minute. IPv4 only (what the parser reads).

import { ETHERTYPE_VLAN, type ParsedFrame, TCP_ACK, TCP_RST, TCP_SYN } from '../frame.ts';

function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  let s = acc;
  for (let i = 0; i + 1 < len; i += 2) s += ((b[off + i] as number) << 8) | (b[off + i + 1] as number);
  if (len % 2 === 1) s += (b[off + len - 1] as number) << 8;
  return s;
}

function fold(s: number): number {
  let v = s;
  while (v > 0xffff) v = (v & 0xffff) + (v >>> 16);
  return ~v & 0xffff;
}

/** A RST|ACK for the TCP segment `frame` (parsed as `p`), or undefined if it is not one to answer. */
export function rstFor(frame: Uint8Array, p: ParsedFrame): Uint8Array | undefined {
  const ip = p.ipv4;
  const tcp = p.tcp;
  if (!ip || !tcp || tcp.flags & TCP_RST) return undefined;
  const l2 = p.eth.payloadOffset;
  const out = new Uint8Array(l2 + 40);
  // Ethernet: back to the sender, from the MAC it sent to (an 802.1Q tag kept as it was).
  out.set(frame.subarray(6, 12), 0);
  out.set(frame.subarray(0, 6), 6);
  if (l2 === 18) {
    out[12] = ETHERTYPE_VLAN >> 8;
    out[13] = ETHERTYPE_VLAN & 0xff;
    out.set(frame.subarray(14, 18), 14);
  } else {
    out[12] = 0x08;
    out[13] = 0x00;
  }
  const o = l2;
  out[o] = 0x45;
  out[o + 2] = 0;
  out[o + 3] = 40;
  out[o + 6] = 0x40; // DF
  out[o + 8] = 64;
  out[o + 9] = 6;
  const ipSrc = frame.subarray(l2 + 12, l2 + 16);
  const ipDst = frame.subarray(l2 + 16, l2 + 20);
  out.set(ipDst, o + 12);
  out.set(ipSrc, o + 16);
  const ck = fold(sum16(out, o, 20));
  out[o + 10] = ck >> 8;
  out[o + 11] = ck & 0xff;
  const t = o + 20;
  out[t] = tcp.dstPort >> 8;
  out[t + 1] = tcp.dstPort & 0xff;
  out[t + 2] = tcp.srcPort >> 8;
  out[t + 3] = tcp.srcPort & 0xff;
  // RFC 793: answering a segment without ACK, seq 0 and ack = its seq + its length.
  const len = p.payloadLength + (tcp.flags & TCP_SYN ? 1 : 0) + (tcp.flags & 0x01 ? 1 : 0);
  const seq = tcp.flags & TCP_ACK ? tcp.ack : 0;
  const ack = (tcp.seq + len) >>> 0;
  new DataView(out.buffer).setUint32(t + 4, seq);
  new DataView(out.buffer).setUint32(t + 8, ack);
  out[t + 12] = 0x50;
  out[t + 13] = TCP_RST | TCP_ACK;
  // Pseudo-header: addresses, protocol, TCP length.
  let s = sum16(out, o + 12, 8);
  s += 6 + 20;
  const tck = fold(sum16(out, t, 20, s));
  out[t + 16] = tck >> 8;
  out[t + 17] = tck & 0xff;
  return out;
}
