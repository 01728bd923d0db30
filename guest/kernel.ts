// Turning the Debian bzImage into `vmlinux`, the uncompressed ELF that QEMU can boot
// through its PVH entry note, skipping the in-guest decompressor (slow under TCG).

import { writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { elfNotes, isElf64, XEN_ELFNOTE_PHYS32_ENTRY } from './elf.ts';
import { runBuffer } from './exec.ts';
import { decompressLz4Legacy } from './lz4.ts';

export interface BzImagePayload {
  /** Boot protocol version, e.g. 0x20f for 2.15. */
  protocol: number;
  compression: 'gzip' | 'xz' | 'zstd' | 'lz4';
  /** The compressed stream, without the u32 size the kernel build appends. */
  data: Buffer;
  /** Size of the uncompressed vmlinux, from that appended u32. */
  uncompressedSize: number;
}

// Offsets in the real-mode setup header (Documentation/arch/x86/boot.rst).
const SETUP_SECTS = 0x1f1;
const BOOT_FLAG = 0x1fe;
const HEADER_MAGIC = 0x202;
const VERSION = 0x206;
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;

const MAGICS: ReadonlyArray<[BzImagePayload['compression'], Buffer]> = [
  ['gzip', Buffer.from([0x1f, 0x8b])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['lz4', Buffer.from([0x02, 0x21, 0x4c, 0x18])],
];

export function parseBzImage(bz: Buffer): BzImagePayload {
  if (
    bz.length < 0x250 ||
    bz.readUInt16LE(BOOT_FLAG) !== 0xaa55 ||
    bz.toString('latin1', HEADER_MAGIC, 0x206) !== 'HdrS'
  ) {
    throw new Error('not a bzImage (no HdrS setup header)');
  }
  const protocol = bz.readUInt16LE(VERSION);
  // payload_offset/length exist from boot protocol 2.08 on.
  if (protocol < 0x208) throw new Error(`bzImage boot protocol ${protocol.toString(16)} is older than 2.08`);
  // setup_sects 0 means 4, for historical reasons; +1 for the boot sector itself.
  const setupSects = bz[SETUP_SECTS] || 4;
  const start = (setupSects + 1) * 512 + bz.readUInt32LE(PAYLOAD_OFFSET);
  const length = bz.readUInt32LE(PAYLOAD_LENGTH);
  if (length < 8 || start + length > bz.length) throw new Error('bzImage payload lies outside the file');
  const payload = bz.subarray(start, start + length);
  const found = MAGICS.find(([, magic]) => payload.subarray(0, magic.length).equals(magic));
  if (!found) throw new Error(`unsupported kernel compression (magic ${payload.subarray(0, 4).toString('hex')})`);
  return {
    protocol,
    compression: found[0],
    data: payload.subarray(0, length - 4),
    uncompressedSize: payload.readUInt32LE(length - 4),
  };
}

async function decompress(p: BzImagePayload, tmpFile: string, signal?: AbortSignal): Promise<Buffer> {
  switch (p.compression) {
    case 'gzip':
      return gunzipSync(p.data);
    case 'lz4':
      return decompressLz4Legacy(p.data, p.uncompressedSize);
    case 'xz':
    case 'zstd': {
      // Node 20's zlib has neither; the CLIs read the stream from a file we write.
      await writeFile(tmpFile, p.data);
      return runBuffer(p.compression, ['-dc', tmpFile], {
        signal,
        providedBy: p.compression === 'xz' ? 'xz-utils' : 'zstd',
      });
    }
  }
}

/** The physical PVH entry address, or undefined if the ELF has no PVH note. */
export function pvhEntry(vmlinux: Buffer): number | undefined {
  const note = elfNotes(vmlinux).find((n) => n.name === 'Xen' && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (!note || note.desc.length < 4) return undefined;
  return note.desc.readUInt32LE(0);
}

/** Extracts and checks the uncompressed kernel ELF from a bzImage. */
export async function extractVmlinux(bz: Buffer, tmpFile: string, signal?: AbortSignal): Promise<Buffer> {
  const payload = parseBzImage(bz);
  const elf = await decompress(payload, tmpFile, signal);
  if (!isElf64(elf)) throw new Error(`decompressed ${payload.compression} kernel payload is not an ELF64 file`);
  if (elf.length !== payload.uncompressedSize) {
    throw new Error(`decompressed kernel is ${elf.length} bytes, the bzImage says ${payload.uncompressedSize}`);
  }
  if (pvhEntry(elf) === undefined) throw new Error('kernel ELF has no PVH entry note (needs CONFIG_PVH=y)');
  return elf;
}
