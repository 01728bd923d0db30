// The guest's memory as the backend sees it: the regions QEMU sent in
// SET_MEM_TABLE, each mapped into this process. Every address the guest (or
// QEMU) hands over is translated here and checked to lie inside a region; an
// address or length outside them translates to nothing, never to a wild view.

export interface MemRegion {
  /** Guest-physical address of the region's first byte. */
  gpa: number;
  /** QEMU's virtual address of the same byte (ring addresses are given in these). */
  uva: number;
  /** The region's bytes (length = the region's size). */
  bytes: Uint8Array;
}

/** The largest address JavaScript numbers hold exactly; a u64 beyond it is out of any region. */
export const MAX_ADDR = Number.MAX_SAFE_INTEGER;

/** A u64 from guest memory as a number, or -1 if it cannot be an address here. */
export function u64(v: DataView, off: number): number {
  const b = v.getBigUint64(off, true);
  return b > BigInt(MAX_ADDR) ? -1 : Number(b);
}

export class GuestMemory {
  private readonly regions: readonly MemRegion[];

  constructor(regions: readonly MemRegion[]) {
    this.regions = [...regions].sort((a, b) => a.gpa - b.gpa);
  }

  get count(): number {
    return this.regions.length;
  }

  /**
   * The guest-physical range [addr, addr+len) as views into the regions it lies
   * in (several when it spans adjacent regions); undefined if any byte of it is
   * outside every region. A zero length is an empty list.
   */
  gpaRange(addr: number, len: number): Uint8Array[] | undefined {
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || addr < 0 || len < 0) return undefined;
    if (addr + len > MAX_ADDR) return undefined;
    const out: Uint8Array[] = [];
    let a = addr;
    let left = len;
    while (left > 0) {
      const r = this.regions.find((x) => a >= x.gpa && a < x.gpa + x.bytes.length);
      if (!r) return undefined;
      const off = a - r.gpa;
      const n = Math.min(left, r.bytes.length - off);
      out.push(r.bytes.subarray(off, off + n));
      a += n;
      left -= n;
    }
    return out;
  }

  /** A QEMU virtual range (a ring) as one view; undefined unless it lies inside one region. */
  uvaRange(addr: number, len: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || addr < 0 || len < 0) return undefined;
    const r = this.regions.find((x) => addr >= x.uva && addr + len <= x.uva + x.bytes.length);
    if (!r) return undefined;
    const off = addr - r.uva;
    return r.bytes.subarray(off, off + len);
  }
}

/** A DataView over exactly a view's bytes. */
export function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
