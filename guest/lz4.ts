// LZ4 "legacy" frame decoder. Debian's cloud kernel compresses its payload with
// `lz4 -l`; decoding it here keeps the lz4 CLI off the list of host requirements.
// Format: magic 0x184C2102, then blocks of [u32 LE compressed size][LZ4 block],
// each decoding to at most 8 MiB. The kernel build appends the uncompressed size as a
// u32 after the frame; the caller strips it and passes it as `expectedSize`.

export const LZ4_LEGACY_MAGIC = 0x184c2102;

export function decompressLz4Legacy(src: Buffer, expectedSize: number): Buffer {
  if (src.length < 4 || src.readUInt32LE(0) !== LZ4_LEGACY_MAGIC) throw new Error('not an LZ4 legacy frame');
  const dst = Buffer.allocUnsafe(expectedSize);
  let s = 4;
  let d = 0;
  while (s + 4 <= src.length) {
    const size = src.readUInt32LE(s);
    s += 4;
    // Concatenated legacy frames repeat the magic between blocks.
    if (size === LZ4_LEGACY_MAGIC) continue;
    if (s + size > src.length) throw new Error('LZ4 block runs past the end of the payload');
    d = decodeBlock(src, s, s + size, dst, d);
    s += size;
  }
  if (d !== expectedSize) throw new Error(`LZ4 payload decoded to ${d} bytes, expected ${expectedSize}`);
  return dst;
}

function readLength(src: Buffer, pos: { s: number }, base: number): number {
  let len = base;
  let b = 255;
  while (b === 255) {
    b = src[pos.s++] as number;
    len += b;
  }
  return len;
}

/** Decodes one raw LZ4 block from src[start, end) into dst at `d`; returns the new end of dst. */
function decodeBlock(src: Buffer, start: number, end: number, dst: Buffer, d: number): number {
  const pos = { s: start };
  while (pos.s < end) {
    const token = src[pos.s++] as number;
    let lit = token >>> 4;
    if (lit === 15) lit = readLength(src, pos, lit);
    if (pos.s + lit > end || d + lit > dst.length) throw new Error('corrupt LZ4 block (literals)');
    src.copy(dst, d, pos.s, pos.s + lit);
    pos.s += lit;
    d += lit;
    // The last sequence of a block carries literals only.
    if (pos.s >= end) break;
    const offset = (src[pos.s] as number) | ((src[pos.s + 1] as number) << 8);
    pos.s += 2;
    let len = token & 15;
    if (len === 15) len = readLength(src, pos, len);
    len += 4;
    let m = d - offset;
    if (offset === 0 || m < 0 || d + len > dst.length) throw new Error('corrupt LZ4 block (match)');
    if (offset >= len) {
      dst.copyWithin(d, m, m + len);
      d += len;
    } else {
      // Overlapping match: a repeating pattern, which must be copied byte by byte.
      for (const stop = d + len; d < stop; ) dst[d++] = dst[m++] as number;
    }
  }
  return d;
}
