// vhost-user messages into the disk backend's device (VhostBlkDevice.handle),
// as the backend's server hands them over after reading the socket. The
// harness supplies the descriptors a message announces (a memfd sized as the
// message says, capped at 1 MiB; an eventfd for kick/call/err), since bytes
// cannot carry them. Input: records of [request u32][flags u32][size u32]
// [payload]; request 0xffff is a guest kick of queue payload[0].
// Invariants: handle() never rejects; every reply is a well-formed vhost-user
// message; no descriptor leaks once the device disconnects; nothing outside
// the image is touched.

import { readdirSync, readlinkSync } from 'node:fs';
import fc from 'fast-check';
import { VhostBlkDevice } from '../../src/backends/vhost-blk/device.ts';
import { newEventFd, newMemfd } from '../../src/backends/vhost-blk/libc.ts';
import { HEADER_SIZE, MAX_PAYLOAD, NAMES, VRING_NOFD } from '../../src/backends/vhost-blk/protocol.ts';
import { type FuzzTarget, invariant } from '../target.ts';
import { GPA } from './vhost-blk.ts';

const KICK = 0xffff;
const MAX_MAP = 1 << 20;

export function vuMessage(request: number, payload: Uint8Array, flags = 1): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(request, 0);
  h.writeUInt32LE(flags, 4);
  h.writeUInt32LE(payload.length, 8);
  return Buffer.concat([h, payload]);
}

const u64 = (...v: bigint[]) => {
  const b = Buffer.alloc(8 * v.length);
  for (const [i, x] of v.entries()) b.writeBigUInt64LE(x, 8 * i);
  return b;
};
const u32s = (...v: number[]) => {
  const b = Buffer.alloc(4 * v.length);
  for (const [i, x] of v.entries()) b.writeUInt32LE(x >>> 0, 4 * i);
  return b;
};

/** A typical QEMU handshake: features, one 64 KiB region at GPA, queue 0 of 8 at its start, kick, enable. */
export function handshake(): Buffer[] {
  const UVA = 0x7f00_0000_0000n;
  return [
    vuMessage(1, Buffer.alloc(0)),
    vuMessage(2, u64((1n << 32n) | (1n << 30n) | (1n << 28n) | (1n << 29n) | (1n << 9n) | (1n << 13n) | (1n << 14n))),
    vuMessage(15, Buffer.alloc(0)),
    vuMessage(16, u64((1n << 0n) | (1n << 3n) | (1n << 9n) | (1n << 12n))),
    vuMessage(3, Buffer.alloc(0)),
    vuMessage(31, Buffer.concat([u64(0n, 0n), Buffer.from([1, 0, 8, 0, 0, 0, 0, 0])])),
    vuMessage(5, Buffer.concat([u32s(1, 0), u64(BigInt(GPA), 0x10000n, UVA, 0n)])),
    vuMessage(8, u32s(0, 8)),
    vuMessage(9, Buffer.concat([u32s(0, 0), u64(UVA, UVA + 0x100n, UVA + 0x80n, 0n)])),
    vuMessage(10, u32s(0, 0)),
    vuMessage(13, u64(0n)),
    vuMessage(12, u64(0n)),
    vuMessage(18, u32s(0, 1)),
    vuMessage(24, Buffer.concat([u32s(0, 60, 0), Buffer.alloc(60)])),
    vuMessage(KICK, u32s(0)),
    vuMessage(11, u32s(0, 0)),
    vuMessage(4, Buffer.alloc(0), 1 | 8),
  ];
}

/**
 * Descriptors of the kinds the device is handed or makes (memfds, eventfds): the
 * harness's own files (corpus entries written while an input runs) are not its leaks.
 */
function openFds(): number {
  let n = 0;
  for (const f of readdirSync('/proc/self/fd')) {
    try {
      const to = readlinkSync(`/proc/self/fd/${f}`);
      if (to.startsWith('/memfd:') || to === 'anon_inode:[eventfd]') n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

export function target(): FuzzTarget {
  const requests = Object.keys(NAMES).map(Number);
  const baseline = { fds: -1 };
  return {
    name: 'vhost-user',
    about: 'vhost-user messages into VhostBlkDevice.handle: never rejects, replies well formed, no descriptor leak',
    files: ['src/backends/vhost-blk/'],
    maxLen: 4096,
    dict: [
      ...requests.map((r) => Uint8Array.from(u32s(r))),
      u32s(1),
      u32s(9),
      u32s(0x100),
      u64(BigInt(GPA)),
      u64(0x7f00_0000_0000n),
      u32s(0, 8),
      u32s(KICK),
    ],
    generate: fc
      .array(
        fc.oneof(
          fc.constantFrom(...handshake()),
          fc
            .tuple(fc.constantFrom(...requests, KICK), fc.uint8Array({ maxLength: 80 }), fc.constantFrom(1, 9, 0, 5))
            .map(([r, p, f]) => vuMessage(r, p, f)),
        ),
        { minLength: 1, maxLength: 20 },
      )
      .map((ms) => new Uint8Array(Buffer.concat(ms))),
    async run(data) {
      const logs: string[] = [];
      const img = {
        size: 64 * 512,
        readOnly: false,
        violations: [] as string[],
        async readv(bufs: Uint8Array[], pos: number) {
          if (pos + bufs.reduce((n, b) => n + b.length, 0) > this.size) this.violations.push(`read at ${pos}`);
        },
        async writev(bufs: Uint8Array[], pos: number) {
          if (pos + bufs.reduce((n, b) => n + b.length, 0) > this.size) this.violations.push(`write at ${pos}`);
        },
        async flush() {},
        async discard() {},
        async writeZeroes(pos: number, len: number) {
          if (pos + len > this.size) this.violations.push(`zeroes at ${pos}`);
        },
      };
      // Per input: a descriptor some earlier input leaked must not be blamed on this one.
      baseline.fds = openFds();
      const dev = new VhostBlkDevice(img, { serial: 'xvdb', log: (m) => logs.push(m), numQueues: 2 });
      dev.connect();
      const replies: Buffer[] = [];
      // The device closes what it sends once the message is out (the kernel passes QEMU a copy).
      const send = (b: Buffer) => {
        replies.push(Buffer.from(b));
      };
      try {
        for (let off = 0; off + HEADER_SIZE <= data.length; ) {
          const request = data.readUInt32LE(off);
          const flags = data.readUInt32LE(off + 4);
          const size = data.readUInt32LE(off + 8);
          if (size > MAX_PAYLOAD || (flags & 3) !== 1) break; // the server drops such a connection
          const payload = Buffer.from(data.subarray(off + HEADER_SIZE, off + HEADER_SIZE + size));
          off += HEADER_SIZE + size;
          if (payload.length < size) break;
          if (request === KICK) {
            dev.kick(payload[0] ?? 0);
            continue;
          }
          const fds: number[] = [];
          if (request === 5 && payload.length >= 8) {
            const n = Math.min(payload.readUInt32LE(0), 8);
            for (let i = 0; i < n && payload.length >= 8 + 32 * (i + 1); i++) {
              const o = 8 + 32 * i;
              const len = Number(payload.readBigUInt64LE(o + 8)) + Number(payload.readBigUInt64LE(o + 24));
              if (len > 0 && len <= MAX_MAP) fds.push(newMemfd('fuzz-mem', len));
            }
          } else if (request === 32 && payload.length >= 16) {
            const len = Number(payload.readBigUInt64LE(0)) + Number(payload.readBigUInt64LE(8));
            if (len > 0 && len <= MAX_MAP) fds.push(newMemfd('fuzz-inflight', len));
          } else if (request >= 12 && request <= 14 && payload.length >= 4 && !(payload.readUInt32LE(0) & VRING_NOFD)) {
            fds.push(newEventFd());
          }
          await dev.handle({ request, flags, payload, fds }, send);
        }
      } finally {
        await dev.disconnect();
      }
      for (const r of replies) {
        invariant(r.length >= HEADER_SIZE && r.readUInt32LE(8) === r.length - HEADER_SIZE, 'a malformed reply');
        invariant((r.readUInt32LE(4) & 4) !== 0, 'a reply without the reply flag');
      }
      invariant(img.violations.length === 0, `image misuse: ${img.violations.join('; ')}`);
      const fds = openFds();
      invariant(fds <= baseline.fds, `descriptors leaked: ${fds} open after the input, ${baseline.fds} before`);
    },
  };
}
