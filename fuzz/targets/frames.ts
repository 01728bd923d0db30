// Frame building blocks shared by the switch target's generator and dictionary.

import fc from 'fast-check';

export const MACS = [
  '00:16:3e:00:00:01',
  '00:16:3e:00:00:02',
  '00:16:3e:00:00:03',
  '00:16:3e:00:00:04',
  'ff:ff:ff:ff:ff:ff',
  '01:00:5e:00:00:01',
  '02:00:00:00:00:09',
];

export function macBytes(m: string): number[] {
  return m.split(':').map((h) => Number.parseInt(h, 16));
}

export function ipBytes(ip: string): number[] {
  return ip.split('.').map(Number);
}

const arbMac = fc.constantFrom(...MACS).map(macBytes);
const arbIp = fc
  .constantFrom('10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.9', '192.168.1.1', '255.255.255.255')
  .map(ipBytes);
const arbPort = fc.oneof(fc.constantFrom(25, 80, 443, 465, 587, 53, 22), fc.integer({ min: 0, max: 65535 }));

const tcp = fc
  .record({
    sp: arbPort,
    dp: arbPort,
    seq: fc.nat(),
    ack: fc.nat(),
    flags: fc.constantFrom(0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14, 0xff, 0),
    data: fc.uint8Array({ maxLength: 64 }),
  })
  .map(({ sp, dp, seq, ack, flags, data }) => {
    const b = Buffer.alloc(20 + data.length);
    b.writeUInt16BE(sp, 0);
    b.writeUInt16BE(dp, 2);
    b.writeUInt32BE(seq >>> 0, 4);
    b.writeUInt32BE(ack >>> 0, 8);
    b[12] = 0x50;
    b[13] = flags;
    b.writeUInt16BE(65535, 14);
    Buffer.from(data).copy(b, 20);
    return { proto: 6, l4: b };
  });
const udp = fc.record({ sp: arbPort, dp: arbPort, data: fc.uint8Array({ maxLength: 64 }) }).map(({ sp, dp, data }) => {
  const b = Buffer.alloc(8 + data.length);
  b.writeUInt16BE(sp, 0);
  b.writeUInt16BE(dp, 2);
  b.writeUInt16BE(8 + data.length, 4);
  Buffer.from(data).copy(b, 8);
  return { proto: 17, l4: b };
});
const icmp = fc.uint8Array({ minLength: 4, maxLength: 40 }).map((d) => ({ proto: 1, l4: Buffer.from(d) }));

export const arbIpv4Frame = fc
  .record({
    dst: arbMac,
    src: arbMac,
    sip: arbIp,
    dip: arbIp,
    l4: fc.oneof(tcp, udp, icmp),
    ihl: fc.constantFrom(5, 5, 5, 6, 4, 15),
    frag: fc.constantFrom(0, 0, 0x2000, 0x1fff, 0x4000),
  })
  .map(({ dst, src, sip, dip, l4, ihl, frag }) => {
    const opt = Math.max(0, ihl - 5) * 4;
    const ip = Buffer.alloc(20 + opt);
    ip[0] = 0x40 | ihl;
    ip.writeUInt16BE(20 + opt + l4.l4.length, 2);
    ip.writeUInt16BE(frag, 6);
    ip[8] = 64;
    ip[9] = l4.proto;
    Buffer.from(sip).copy(ip, 12);
    Buffer.from(dip).copy(ip, 16);
    return Buffer.concat([Buffer.from([...dst, ...src, 0x08, 0x00]), ip, l4.l4]);
  });

export const arbArpFrame = fc
  .record({ src: arbMac, sip: arbIp, tip: arbIp, op: fc.constantFrom(1, 2) })
  .map(({ src, sip, tip, op }) =>
    Buffer.from([
      ...macBytes('ff:ff:ff:ff:ff:ff'),
      ...src,
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
      ...src,
      ...sip,
      0,
      0,
      0,
      0,
      0,
      0,
      ...tip,
    ]),
  );

export const arbVlanFrame = fc
  .tuple(fc.integer({ min: 0, max: 4095 }), arbIpv4Frame)
  .map(([vid, f]) =>
    Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, vid >> 8, vid & 0xff]), f.subarray(12)]),
  );

export const arbFrame = fc.oneof(arbIpv4Frame, arbIpv4Frame, arbArpFrame, arbVlanFrame);
