// Ethernet, ARP, IPv4, TCP, UDP and ICMP header parsing for the switch and its
// policies. Every read is bounds-checked: a guest controls these bytes, so a
// short or malformed frame yields fewer layers, never an exception.

export const ETH_HEADER_LEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** A MAC address as a 48-bit integer (exact in a double), so it can key a Map cheaply. */
export type MacInt = number;

export interface EthernetHeader {
  dst: MacInt;
  src: MacInt;
  /** The ethertype after an optional 802.1Q tag. */
  ethertype: number;
  /** 802.1Q VLAN id, when tagged. */
  vlan?: number;
  /** Offset of the payload (14, or 18 with a VLAN tag). */
  payloadOffset: number;
}

export interface ArpPacket {
  op: number;
  senderMac: MacInt;
  senderIp: number;
  targetMac: MacInt;
  targetIp: number;
}

export interface Ipv4Header {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  headerLength: number;
  totalLength: number;
  /** In 8-byte units; non-zero means this is not the first fragment (no L4 header here). */
  fragmentOffset: number;
  moreFragments: boolean;
}

export interface TcpHeader {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE 0x40, CWR 0x80. */
  flags: number;
  headerLength: number;
}

export interface UdpHeader {
  srcPort: number;
  dstPort: number;
  length: number;
}

export interface IcmpHeader {
  type: number;
  code: number;
}

export interface ParsedFrame {
  eth: EthernetHeader;
  arp?: ArpPacket;
  ipv4?: Ipv4Header;
  tcp?: TcpHeader;
  udp?: UdpHeader;
  icmp?: IcmpHeader;
  /** Bytes after the last parsed header. */
  payloadLength: number;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

export const BROADCAST_MAC: MacInt = 0xffffffffffff;

function readMac(b: Uint8Array, off: number): MacInt {
  // Two reads keep each part inside 32-bit arithmetic.
  return (
    ((b[off] as number) * 0x10000 + (b[off + 1] as number) * 0x100 + (b[off + 2] as number)) * 0x1000000 +
    ((b[off + 3] as number) * 0x10000 + (b[off + 4] as number) * 0x100 + (b[off + 5] as number))
  );
}

function u16(b: Uint8Array, off: number): number {
  return ((b[off] as number) << 8) | (b[off + 1] as number);
}

function u32(b: Uint8Array, off: number): number {
  return (
    (((b[off] as number) << 24) |
      ((b[off + 1] as number) << 16) |
      ((b[off + 2] as number) << 8) |
      (b[off + 3] as number)) >>>
    0
  );
}

/** Destination MAC of a frame of at least 6 bytes (the switch's hot path). */
export function dstMac(b: Uint8Array): MacInt {
  return readMac(b, 0);
}

/** The MAC `off` bytes into a frame at least off + 6 long (e.g. an ARP sender address). */
export function macAt(b: Uint8Array, off: number): MacInt {
  return readMac(b, off);
}

/** Source MAC of a frame of at least 12 bytes. */
export function srcMac(b: Uint8Array): MacInt {
  return readMac(b, 6);
}

/** The group bit: broadcast and multicast destinations are flooded. */
export function isGroupMac(mac: MacInt): boolean {
  return Math.floor(mac / 0x10000000000) % 2 === 1;
}

export function parseEthernet(b: Uint8Array): EthernetHeader | undefined {
  if (b.length < ETH_HEADER_LEN) return undefined;
  const dst = readMac(b, 0);
  const src = readMac(b, 6);
  let ethertype = u16(b, 12);
  let payloadOffset = ETH_HEADER_LEN;
  let vlan: number | undefined;
  if (ethertype === ETHERTYPE_VLAN) {
    if (b.length < ETH_HEADER_LEN + 4) return { dst, src, ethertype, payloadOffset };
    vlan = u16(b, 14) & 0x0fff;
    ethertype = u16(b, 16);
    payloadOffset += 4;
  }
  return { dst, src, ethertype, vlan, payloadOffset };
}

function parseArp(b: Uint8Array, off: number): ArpPacket | undefined {
  // Only Ethernet/IPv4 ARP (htype 1, ptype 0x0800, hlen 6, plen 4): 28 bytes.
  if (b.length - off < 28) return undefined;
  if (u16(b, off) !== 1 || u16(b, off + 2) !== ETHERTYPE_IPV4 || b[off + 4] !== 6 || b[off + 5] !== 4) return undefined;
  return {
    op: u16(b, off + 6),
    senderMac: readMac(b, off + 8),
    senderIp: u32(b, off + 14),
    targetMac: readMac(b, off + 18),
    targetIp: u32(b, off + 24),
  };
}

function parseIpv4(b: Uint8Array, off: number): Ipv4Header | undefined {
  if (b.length - off < 20) return undefined;
  const vihl = b[off] as number;
  const headerLength = (vihl & 0x0f) * 4;
  if (vihl >> 4 !== 4 || headerLength < 20 || b.length - off < headerLength) return undefined;
  const frag = u16(b, off + 6);
  return {
    totalLength: u16(b, off + 2),
    moreFragments: (frag & 0x2000) !== 0,
    fragmentOffset: frag & 0x1fff,
    ttl: b[off + 8] as number,
    protocol: b[off + 9] as number,
    src: u32(b, off + 12),
    dst: u32(b, off + 16),
    headerLength,
  };
}

/** Parse every header the frame carries; never throws. */
export function parseFrame(b: Uint8Array): ParsedFrame | undefined {
  const eth = parseEthernet(b);
  if (!eth) return undefined;
  const out: ParsedFrame = { eth, payloadLength: Math.max(0, b.length - eth.payloadOffset) };
  const off = eth.payloadOffset;
  if (eth.ethertype === ETHERTYPE_ARP) {
    out.arp = parseArp(b, off);
    if (out.arp) out.payloadLength = 0;
    return out;
  }
  if (eth.ethertype !== ETHERTYPE_IPV4) return out;
  const ip = parseIpv4(b, off);
  if (!ip) return out;
  out.ipv4 = ip;
  // The IP total length bounds the L4 data (Ethernet pads short frames to 60 bytes).
  const ipEnd = Math.min(b.length, off + Math.max(ip.totalLength, ip.headerLength));
  const l4 = off + ip.headerLength;
  out.payloadLength = Math.max(0, ipEnd - l4);
  if (ip.fragmentOffset !== 0) return out;
  if (ip.protocol === IPPROTO_TCP && ipEnd - l4 >= 20) {
    const headerLength = ((b[l4 + 12] as number) >> 4) * 4;
    out.tcp = {
      srcPort: u16(b, l4),
      dstPort: u16(b, l4 + 2),
      seq: u32(b, l4 + 4),
      ack: u32(b, l4 + 8),
      flags: b[l4 + 13] as number,
      headerLength,
    };
    out.payloadLength = Math.max(0, ipEnd - l4 - Math.max(20, headerLength));
  } else if (ip.protocol === IPPROTO_UDP && ipEnd - l4 >= 8) {
    out.udp = { srcPort: u16(b, l4), dstPort: u16(b, l4 + 2), length: u16(b, l4 + 4) };
    out.payloadLength = ipEnd - l4 - 8;
  } else if (ip.protocol === IPPROTO_ICMP && ipEnd - l4 >= 4) {
    out.icmp = { type: b[l4] as number, code: b[l4 + 1] as number };
    out.payloadLength = ipEnd - l4 - 4;
  }
  return out;
}

export function ipv4ToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}
