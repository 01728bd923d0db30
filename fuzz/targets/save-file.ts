// Save files (xl restore reads them from anywhere a sponsor can name): the
// bytes as a file through readSaveFileHeader, then its JSON sections through
// the checks restore applies. Each input runs twice: as it is, and with its
// section checksums and trailer size fixed up, so mutations get past them.
// Invariant: a damaged or hostile file is a XenodeError (or the store's
// refusal), never another exception; importing its store touches only the home.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  FLAG_OPTIONAL,
  FLAG_STREAMED,
  jsonSection,
  readSaveFileHeader,
  SAVE_MAGIC,
  SECTION,
  TRAILER_SIZE,
} from '../../src/features/saverestore/save-format.ts';
import type { FuzzTarget } from '../target.ts';
import { CONFIG, checkTransfer, cleanRefusal, importStore, META, STORE } from './transfer.ts';

const HEADER = 24;
const SECTION_HEADER = 48;
const TRAILER_MAGIC = Buffer.from('XNSAVEND', 'latin1');

export function saveFile(
  sections: Array<{ type: number; flags: number; body: Uint8Array }>,
  stream: Uint8Array,
  algorithm = 1,
): Buffer {
  const head = Buffer.alloc(HEADER);
  SAVE_MAGIC.copy(head, 0);
  head.writeUInt16LE(1, 16);
  head.writeUInt16LE(1, 18);
  const parts: Buffer[] = [head];
  for (const s of sections) {
    const h = Buffer.alloc(SECTION_HEADER);
    h.writeUInt32LE(s.type, 0);
    h.writeUInt32LE(s.flags, 4);
    h.writeBigUInt64LE(BigInt(s.body.length), 8);
    createHash('sha256').update(s.body).digest().copy(h, 16);
    parts.push(h, Buffer.from(s.body));
  }
  const sh = Buffer.alloc(SECTION_HEADER);
  sh.writeUInt32LE(SECTION.qemu, 0);
  sh.writeUInt32LE(FLAG_STREAMED, 4);
  parts.push(sh, Buffer.from(stream));
  const t = Buffer.alloc(TRAILER_SIZE);
  TRAILER_MAGIC.copy(t, 0);
  t.writeBigUInt64LE(BigInt(stream.length), 8);
  t.writeUInt32LE(algorithm === 0 ? 1 << 20 : 0, 16);
  t.writeUInt32LE(algorithm, 20);
  parts.push(t);
  const out = Buffer.concat(parts);
  out.writeBigUInt64LE(BigInt(out.length), out.length - 8);
  return out;
}

export function typicalSave(): Buffer {
  const j = (v: unknown) => Buffer.from(JSON.stringify(v));
  return saveFile(
    [
      { type: SECTION.config, flags: 0, body: j(CONFIG) },
      { type: SECTION.meta, flags: 0, body: j(META) },
      { type: SECTION.store, flags: FLAG_OPTIONAL, body: j(STORE) },
      { type: SECTION.console, flags: FLAG_OPTIONAL, body: Buffer.from('login: ') },
    ],
    Buffer.from([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3]),
  );
}

/** Section checksums and sizes made consistent with the bytes, as a writer would have made them. */
function fixUp(data: Buffer): Buffer {
  const b = Buffer.from(data);
  if (b.length < HEADER + TRAILER_SIZE) return b;
  const end = b.length - TRAILER_SIZE;
  let pos = HEADER;
  while (pos + SECTION_HEADER <= end) {
    const flags = b.readUInt32LE(pos + 4);
    if (flags & FLAG_STREAMED) {
      b.writeBigUInt64LE(BigInt(end - pos - SECTION_HEADER), end + 8);
      break;
    }
    const len = Number(b.readBigUInt64LE(pos + 8));
    if (pos + SECTION_HEADER + len > end) break;
    createHash('sha256')
      .update(b.subarray(pos + SECTION_HEADER, pos + SECTION_HEADER + len))
      .digest()
      .copy(b, pos + 16);
    pos += SECTION_HEADER + len;
  }
  TRAILER_MAGIC.copy(b, end);
  b.writeBigUInt64LE(BigInt(b.length), b.length - 8);
  return b;
}

export function target(): FuzzTarget {
  const dir = mkdtempSync(join('/dev/shm', 'xenode-fuzz-save-'));
  const path = join(dir, 'f.save');
  const restore = (bytes: Buffer) => {
    writeFileSync(path, bytes);
    try {
      const f = readSaveFileHeader(path);
      const store = f.sections.has(SECTION.store) ? jsonSection(f, SECTION.store) : undefined;
      checkTransfer(jsonSection(f, SECTION.config), jsonSection(f, SECTION.meta));
      if (store !== undefined && store !== null) importStore(store);
    } catch (e) {
      if (!cleanRefusal(e)) throw e;
    }
  };
  const arbJson = (v: unknown) =>
    fc.oneof(
      fc.constant(JSON.stringify(v)),
      fc.jsonValue().map((x) => JSON.stringify(x)),
      fc.constant(JSON.stringify(v)).chain((s) => fc.nat(s.length).map((n) => s.slice(0, n))),
    );
  return {
    name: 'save-file',
    about: 'save files through readSaveFileHeader and the restore checks: only XenodeError/StoreError refusals',
    files: ['src/features/saverestore/', 'src/store/snapshot.ts', 'src/store/perms.ts'],
    maxLen: 8192,
    dict: [
      SAVE_MAGIC,
      TRAILER_MAGIC,
      Buffer.from('Xen saved domain'),
      '"format":"xenode-store-snapshot"',
      '"perms":[{"id":0,"perm":"b"}]',
      '"path":"a/b"',
      '"maxmem":',
      '"accel":"kvm"',
      '"cpu":"host"',
      '"disks":[',
      '"vifs":[',
      Uint8Array.from([2, 0, 0, 0]),
      Uint8Array.from([16, 0, 0, 0]),
      Uint8Array.from([1, 0, 0, 0]),
    ],
    generate: fc
      .record({
        cfg: arbJson(CONFIG),
        meta: arbJson(META),
        store: arbJson(STORE),
        alg: fc.constantFrom(0, 1, 2),
        extra: fc.constantFrom(0, 5, 99),
      })
      .map(({ cfg, meta, store, alg, extra }) => {
        const secs: Array<{ type: number; flags: number; body: Uint8Array }> = [
          { type: SECTION.config, flags: 0, body: Buffer.from(cfg) },
          { type: SECTION.meta, flags: 0, body: Buffer.from(meta) },
          { type: SECTION.store, flags: FLAG_OPTIONAL, body: Buffer.from(store) },
        ];
        if (extra) secs.push({ type: extra, flags: extra === 99 ? FLAG_OPTIONAL : 0, body: Buffer.from('x') });
        return new Uint8Array(saveFile(secs, Buffer.from('QEVM'), alg));
      }),
    run(data) {
      restore(data);
      restore(fixUp(data));
    },
    close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
