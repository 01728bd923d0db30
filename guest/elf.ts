// Just enough ELF64 (little-endian) reading for the guest builder: the notes of an
// executable (the kernel's PVH entry) and a named section of an object (a module's
// .modinfo).

export const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const PT_NOTE = 4;

/** Xen's note saying where a 32-bit PVH loader may enter the kernel. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

export interface ElfNote {
  name: string;
  type: number;
  desc: Buffer;
}

export function isElf64(buf: Buffer): boolean {
  return buf.length >= 64 && buf.subarray(0, 4).equals(ELF_MAGIC) && buf[4] === ELFCLASS64 && buf[5] === ELFDATA2LSB;
}

function requireElf64(buf: Buffer): void {
  if (!isElf64(buf)) throw new Error('not a little-endian ELF64 file');
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Notes from every PT_NOTE program header (what a loader such as QEMU sees). */
export function elfNotes(buf: Buffer): ElfNote[] {
  requireElf64(buf);
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const notes: ElfNote[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (buf.readUInt32LE(ph) !== PT_NOTE) continue;
    const off = Number(buf.readBigUInt64LE(ph + 8));
    const end = off + Number(buf.readBigUInt64LE(ph + 32));
    let p = off;
    while (p + 12 <= end) {
      const namesz = buf.readUInt32LE(p);
      const descsz = buf.readUInt32LE(p + 4);
      const type = buf.readUInt32LE(p + 8);
      p += 12;
      const name = buf.toString('latin1', p, p + namesz).replace(/\0+$/, '');
      p += align4(namesz);
      notes.push({ name, type, desc: buf.subarray(p, p + descsz) });
      p += align4(descsz);
    }
  }
  return notes;
}

/** The contents of section `name`, or undefined when there is none. */
export function elfSection(buf: Buffer, name: string): Buffer | undefined {
  requireElf64(buf);
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const shstrndx = buf.readUInt16LE(0x3e);
  const header = (i: number) => {
    const sh = shoff + i * shentsize;
    return {
      name: buf.readUInt32LE(sh),
      offset: Number(buf.readBigUInt64LE(sh + 0x18)),
      size: Number(buf.readBigUInt64LE(sh + 0x20)),
    };
  };
  const strtab = header(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    const start = strtab.offset + h.name;
    const nul = buf.indexOf(0, start);
    if (buf.toString('latin1', start, nul) === name) return buf.subarray(h.offset, h.offset + h.size);
  }
  return undefined;
}
