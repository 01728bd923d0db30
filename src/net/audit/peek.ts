// The few header fields the audit needs, read straight from the frame's bytes
// into one reused object: the audit runs for every frame, and frame.ts's
// parseFrame (objects per layer) costs more than the forwarding itself. Every
// read is bounds-checked; a short or odd frame is `other`, never an exception.

export const PEEK_OTHER = 0;
export const PEEK_ARP = 1;
export const PEEK_IPV4 = 4;
export const PEEK_IPV6 = 6;

export interface Peek {
  /** PEEK_OTHER, PEEK_ARP or PEEK_IPV4. */
  kind: number;
  proto: number;
  srcIp: number;
  dstIp: number;
  /** 0 for protocols without ports and for fragments after the first. */
  sport: number;
  dport: number;
  /** TCP header present: flags, seq, ack valid. */
  tcp: boolean;
  flags: number;
  seq: number;
  ack: number;
  /** Bytes of TCP/UDP payload (bounded by the IP total length). */
  payload: number;
  /** UDP header present. */
  udp: boolean;
  /** An Ethernet/IPv4 ARP's sender address; -1 when the ARP is too short or not Ethernet/IPv4. */
  arpSenderIp: number;
  /** IPv6: the source address as 32 hex digits. */
  src6: string;
  /** IPv6: the ICMPv6 type (after any hop-by-hop, routing and destination options headers); -1 for none. */
  icmp6: number;
  /** IPv6 neighbour advertisement or solicitation: the target address as 32 hex digits. */
  ndTarget: string;
  /** IPv6 neighbour discovery: the MACs its source and target link-layer address options name. */
  ndMacs: number[];
}

export function newPeek(): Peek {
  return {
    kind: PEEK_OTHER,
    proto: 0,
    srcIp: 0,
    dstIp: 0,
    sport: 0,
    dport: 0,
    tcp: false,
    flags: 0,
    seq: 0,
    ack: 0,
    payload: 0,
    udp: false,
    arpSenderIp: -1,
    src6: '',
    icmp6: -1,
    ndTarget: '',
    ndMacs: [],
  };
}

function hex6(b: Uint8Array, o: number): string {
  let s = '';
  for (let i = o; i < o + 16; i++) s += ((b[i] as number) < 16 ? '0' : '') + (b[i] as number).toString(16);
  return s;
}

function mac6(b: Uint8Array, o: number): number {
  return (
    (b[o] as number) * 2 ** 40 +
    (b[o + 1] as number) * 2 ** 32 +
    (((b[o + 2] as number) << 24) >>> 0) +
    ((b[o + 3] as number) << 16) +
    ((b[o + 4] as number) << 8) +
    (b[o + 5] as number)
  );
}

/** IPv6 after the Ethernet header at `off`: the source, and what neighbour discovery claims. */
function peek6(b: Uint8Array, off: number, p: Peek): Peek {
  const n = b.length;
  if (n - off < 40 || (b[off] as number) >> 4 !== 6) return p;
  p.kind = PEEK_IPV6;
  p.src6 = hex6(b, off + 8);
  p.icmp6 = -1;
  p.ndTarget = '';
  p.ndMacs.length = 0;
  let next = b[off + 6] as number;
  let pos = off + 40;
  // Hop-by-hop, routing and destination options may stand before ICMPv6; a fragment
  // header ends the walk (the kernel drops fragmented neighbour discovery, RFC 6980).
  for (let i = 0; i < 8 && (next === 0 || next === 43 || next === 60); i++) {
    if (n - pos < 8) return p;
    next = b[pos] as number;
    pos += ((b[pos + 1] as number) + 1) * 8;
  }
  if (next !== 58 || n - pos < 4) return p;
  const type = b[pos] as number;
  p.icmp6 = type;
  // Options: after the 8-byte header (router solicitation), or the 24 with the target address (NS, NA).
  let o = pos + 8;
  if (type === 135 || type === 136) {
    if (n - pos < 24) return p;
    p.ndTarget = hex6(b, pos + 8);
    o = pos + 24;
  } else if (type !== 133) return p;
  while (n - o >= 2) {
    const len = (b[o + 1] as number) * 8;
    if (len === 0) break;
    // Source (1) or target (2) link-layer address.
    if ((b[o] === 1 || b[o] === 2) && len >= 8 && n - o >= 8) p.ndMacs.push(mac6(b, o + 2));
    o += len;
  }
  return p;
}

function u32(b: Uint8Array, o: number): number {
  return (
    (((b[o] as number) << 24) | ((b[o + 1] as number) << 16) | ((b[o + 2] as number) << 8) | (b[o + 3] as number)) >>> 0
  );
}

/** Fill `p` from frame `b`; returns `p`. */
export function peek(b: Uint8Array, p: Peek): Peek {
  p.kind = PEEK_OTHER;
  p.tcp = false;
  p.udp = false;
  p.sport = 0;
  p.dport = 0;
  p.flags = 0;
  p.payload = 0;
  const n = b.length;
  if (n < 14) return p;
  let off = 14;
  let et = ((b[12] as number) << 8) | (b[13] as number);
  if (et === 0x8100) {
    if (n < 18) return p;
    et = ((b[16] as number) << 8) | (b[17] as number);
    off = 18;
  }
  if (et === 0x0806) {
    p.kind = PEEK_ARP;
    const ok =
      n - off >= 28 &&
      b[off] === 0 &&
      b[off + 1] === 1 &&
      b[off + 2] === 8 &&
      b[off + 3] === 0 &&
      b[off + 4] === 6 &&
      b[off + 5] === 4;
    p.arpSenderIp = ok ? u32(b, off + 14) : -1;
    return p;
  }
  if (et === 0x86dd) return peek6(b, off, p);
  if (et !== 0x0800 || n - off < 20) return p;
  const vihl = b[off] as number;
  const hl = (vihl & 0x0f) * 4;
  if (vihl >> 4 !== 4 || hl < 20 || n - off < hl) return p;
  p.kind = PEEK_IPV4;
  p.proto = b[off + 9] as number;
  p.srcIp = u32(b, off + 12);
  p.dstIp = u32(b, off + 16);
  const total = ((b[off + 2] as number) << 8) | (b[off + 3] as number);
  const end = Math.min(n, off + Math.max(total, hl));
  const l4 = off + hl;
  // A later fragment has no L4 header.
  if (((((b[off + 6] as number) << 8) | (b[off + 7] as number)) & 0x1fff) !== 0) return p;
  if (p.proto === 6 && end - l4 >= 20) {
    p.tcp = true;
    p.sport = ((b[l4] as number) << 8) | (b[l4 + 1] as number);
    p.dport = ((b[l4 + 2] as number) << 8) | (b[l4 + 3] as number);
    p.seq = u32(b, l4 + 4);
    p.ack = u32(b, l4 + 8);
    p.flags = b[l4 + 13] as number;
    p.payload = Math.max(0, end - l4 - Math.max(20, ((b[l4 + 12] as number) >> 4) * 4));
  } else if (p.proto === 17 && end - l4 >= 8) {
    p.udp = true;
    p.sport = ((b[l4] as number) << 8) | (b[l4 + 1] as number);
    p.dport = ((b[l4 + 2] as number) << 8) | (b[l4 + 3] as number);
    p.payload = end - l4 - 8;
  }
  return p;
}
