// Builders for Ethernet frames in unit tests of the switch and its parsers.

export function macBytes(mac: string): number[] {
  return mac.split(':').map((o) => Number.parseInt(o, 16));
}

function ipBytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

export function ethernet(dst: string, src: string, ethertype: number, payload: number[] = []): Buffer {
  return Buffer.from([...macBytes(dst), ...macBytes(src), ethertype >> 8, ethertype & 0xff, ...payload]);
}

export function arpRequest(srcMac: string, srcIp: string, targetIp: string): Buffer {
  const body = [0, 1, 8, 0, 6, 4, 0, 1, ...macBytes(srcMac), ...ipBytes(srcIp), 0, 0, 0, 0, 0, 0, ...ipBytes(targetIp)];
  return ethernet('ff:ff:ff:ff:ff:ff', srcMac, 0x0806, body);
}

export function ipv4(
  dst: string,
  src: string,
  o: { srcIp: string; dstIp: string; protocol: number; l4: number[]; fragOffset?: number; pad?: number },
): Buffer {
  const total = 20 + o.l4.length;
  const frag = o.fragOffset ?? 0;
  const hdr = [0x45, 0, total >> 8, total & 0xff, 0, 1, (frag >> 8) & 0x1f, frag & 0xff, 64, o.protocol, 0, 0];
  const body = [...hdr, ...ipBytes(o.srcIp), ...ipBytes(o.dstIp), ...o.l4, ...new Array(o.pad ?? 0).fill(0)];
  return ethernet(dst, src, 0x0800, body);
}

export function tcpHeader(srcPort: number, dstPort: number, flags: number, payload: number[] = []): number[] {
  return [
    srcPort >> 8,
    srcPort & 0xff,
    dstPort >> 8,
    dstPort & 0xff,
    0,
    0,
    0,
    7, // seq 7
    0,
    0,
    0,
    9, // ack 9
    0x50, // 20-byte header
    flags,
    0xff,
    0xff,
    0,
    0,
    0,
    0,
    ...payload,
  ];
}

export function udpHeader(srcPort: number, dstPort: number, payload: number[] = []): number[] {
  const len = 8 + payload.length;
  return [srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, len >> 8, len & 0xff, 0, 0, ...payload];
}
