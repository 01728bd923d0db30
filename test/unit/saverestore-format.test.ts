// The save-file container: round trip, and every way a file can be damaged
// (truncated, bit-flipped, wrong version, foreign) gives a one-line error.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { XenodeError } from '../../src/errors.ts';
import {
  CHECKSUM,
  ChunkedHash,
  FLAG_OPTIONAL,
  jsonSection,
  readSaveFile,
  readSaveFileHeader,
  SaveFileWriter,
  SECTION,
  TRAILER_SIZE,
  Xxh3Hash,
} from '../../src/features/saverestore/save-format.ts';

let dir: string;
let good: string;
const stream = randomBytes(9 * 1024 * 1024 + 123); // crosses two 4 MiB chunk boundaries
const config = { name: 'web1', memory: 256 };
const meta = { name: 'web1', uuid: 'u' };

function write(
  path: string,
  opts: { major?: number; extra?: () => void; sections?: (w: SaveFileWriter) => void } = {},
) {
  const w = new SaveFileWriter(path, { version: { major: opts.major ?? 1, minor: 1 } });
  w.addJson(SECTION.config, config);
  w.addJson(SECTION.meta, meta);
  w.addSection(SECTION.console, Buffer.from('console tail\r\n'), FLAG_OPTIONAL);
  opts.sections?.(w);
  w.beginStream();
  // In uneven pieces, as a socket delivers them.
  for (let off = 0; off < stream.length; off += 65_521) w.writeStream(stream.subarray(off, off + 65_521));
  return w.finish();
}

function* chunks(b: Buffer, n: number): Generator<Buffer> {
  for (let off = 0; off < b.length; off += n) yield b.subarray(off, off + n);
}

async function failure(path: string): Promise<XenodeError> {
  try {
    await readSaveFile(path);
  } catch (e) {
    assert.ok(e instanceof XenodeError, `expected a XenodeError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    return e;
  }
  assert.fail(`${path} was accepted`);
}

function copyWith(name: string, edit: (b: Buffer) => Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, edit(Buffer.from(readFileSync(good))));
  return p;
}

before(async () => {
  dir = mkdtempSync('/tmp/xn-savefmt-');
  good = join(dir, 'good.save');
  await write(good);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('save file format', () => {
  it('round-trips config, metadata, console and the stream', async () => {
    const f = await readSaveFile(good);
    assert.deepEqual(f.version, { major: 1, minor: 1 });
    assert.deepEqual(jsonSection(f, SECTION.config), config);
    assert.deepEqual(jsonSection(f, SECTION.meta), meta);
    assert.equal(f.sections.get(SECTION.console)?.toString(), 'console tail\r\n');
    assert.equal(f.stream.length, stream.length);
    const bytes = readFileSync(good);
    assert.ok(bytes.subarray(f.stream.offset, f.stream.offset + f.stream.length).equals(stream));
    assert.ok(!existsSync(`${good}.partial`), 'the partial file was renamed');
  });

  it('hashes a stream another process appends to the file (how QEMU writes it)', async () => {
    const p = join(dir, 'appended.save');
    const w = new SaveFileWriter(p);
    w.addJson(SECTION.config, config);
    w.addJson(SECTION.meta, meta);
    w.addSection(SECTION.console, Buffer.from('console tail\r\n'), FLAG_OPTIONAL);
    w.beginStream();
    let done = false;
    const hashed = w.followAppended(() => done);
    // The "other process": appends in pieces while the follower reads behind it.
    for (const c of chunks(stream, 1 << 20)) {
      appendFileSync(w.partial, c);
      await new Promise((r) => setImmediate(r));
    }
    done = true;
    await hashed;
    await w.finish();
    assert.ok(readFileSync(p).equals(readFileSync(good)), 'byte for byte the same file');
  });

  it('starts with the magic and version', () => {
    const b = readFileSync(good);
    assert.equal(b.subarray(0, 13).toString('latin1'), 'XENODE-SAVE\n\0');
    assert.equal(b.readUInt16LE(16), 1);
  });

  it('chunked hash does not depend on how the data is split', () => {
    const a = new ChunkedHash(1000);
    a.update(stream.subarray(0, 5000));
    const b = new ChunkedHash(1000);
    for (let i = 0; i < 5000; i += 7) b.update(stream.subarray(i, Math.min(i + 7, 5000)));
    assert.ok(a.digest().equals(b.digest()));
  });

  it('stream checksums do not depend on how the data is split', () => {
    const a = new Xxh3Hash();
    a.update(stream.subarray(0, 5000));
    const b = new Xxh3Hash();
    for (let i = 0; i < 5000; i += 7) b.update(stream.subarray(i, Math.min(i + 7, 5000)));
    assert.ok(a.digest().equals(b.digest()));
    const c = new Xxh3Hash();
    c.update(stream.subarray(0, 4999));
    assert.ok(!a.digest().equals(c.digest()));
  });

  it('writes XXH3 (format 1.1) and still reads format 1.0 files (chunked sha256)', async () => {
    const b = readFileSync(good);
    const t = b.length - TRAILER_SIZE;
    assert.equal(b.readUInt16LE(18), 1, 'minor version 1');
    assert.equal(b.readUInt32LE(t + 20), CHECKSUM.xxh3);
    // The same file as format 1.0 wrote it: algorithm 0, sha256 per 4 MiB chunk.
    const sha = new ChunkedHash(4 << 20);
    sha.update(stream);
    const old = copyWith('v1.0.save', (x) => {
      x.writeUInt16LE(0, 18);
      x.writeUInt32LE(4 << 20, t + 16);
      x.writeUInt32LE(CHECKSUM.chunkedSha256, t + 20);
      sha.digest().copy(x, t + 24);
      return x;
    });
    const f = await readSaveFile(old);
    assert.deepEqual(f.version, { major: 1, minor: 0 });
    const flipped = copyWith('v1.0-flipped.save', (x) => {
      x.set(readFileSync(old));
      x[t - 1000] = (x[t - 1000] as number) ^ 1;
      return x;
    });
    assert.match((await failure(flipped)).message, /checksum mismatch in the QEMU state/);
  });

  it('refuses an unknown checksum algorithm, asking for a newer Xenode', async () => {
    const p = copyWith('alg9.save', (x) => {
      x.writeUInt32LE(9, x.length - TRAILER_SIZE + 20);
      return x;
    });
    assert.match((await failure(p)).message, /needs a newer Xenode \(unknown checksum algorithm 9\)/);
  });

  it('refuses a truncated file wherever it is cut', async () => {
    const size = readFileSync(good).length;
    for (const cut of [0, 5, 20, 30, 100, 200, size >> 1, size - TRAILER_SIZE, size - 1]) {
      const p = join(dir, `cut-${cut}.save`);
      writeFileSync(p, readFileSync(good).subarray(0, cut));
      const e = await failure(p);
      assert.match(e.message, cut < 13 ? /not a Xenode save file|truncated/ : /truncated|incomplete/, `cut at ${cut}`);
    }
  });

  it('replaces an existing file whole, durable or not, and leaves nothing beside it', async () => {
    const p = join(dir, 'replace.save');
    writeFileSync(p, 'an older save');
    const w = new SaveFileWriter(p, { durable: false });
    w.addJson(SECTION.config, config);
    w.addJson(SECTION.meta, meta);
    w.beginStream();
    w.writeStream(stream.subarray(0, 100_000));
    await w.finish();
    const f = await readSaveFile(p);
    assert.equal(f.stream.length, 100_000);
    await new Promise((r) => setTimeout(r, 50)); // the old file is removed in the background
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('replace.save')),
      ['replace.save'],
    );
  });

  it('refuses a file the writer never finished', async () => {
    const p = join(dir, 'unfinished.save');
    const w = new SaveFileWriter(p);
    w.addJson(SECTION.config, config);
    w.beginStream();
    w.writeStream(stream.subarray(0, 1000));
    // No finish(): only NAME.partial exists.
    assert.ok(existsSync(`${p}.partial`));
    const e = await failure(`${p}.partial`);
    assert.match(e.message, /truncated or incomplete/);
    await w.abort();
    assert.ok(!existsSync(`${p}.partial`));
  });

  it('names the section whose checksum fails', async () => {
    const f = readSaveFileHeader(good);
    const configAt = 24 + 48; // first payload
    const e1 = await failure(
      copyWith('flip-config.save', (b) => {
        b[configAt + 2] ^= 0x40;
        return b;
      }),
    );
    assert.match(e1.message, /checksum mismatch in the config section/);
    const e2 = await failure(
      copyWith('flip-stream.save', (b) => {
        b[f.stream.offset + 5_000_000] ^= 1;
        return b;
      }),
    );
    assert.match(e2.message, /checksum mismatch in the QEMU state/);
  });

  it('refuses an unknown major version with a hint, before reading further', async () => {
    const p = join(dir, 'v2.save');
    await write(p, { major: 2 });
    const e = await failure(p);
    assert.match(e.message, /format version 2\.1; this Xenode reads version 1\.x/);
    assert.match(e.hint ?? '', /newer Xenode/);
  });

  it('refuses foreign files, naming xl save files', async () => {
    const p = join(dir, 'xl.save');
    writeFileSync(p, Buffer.concat([Buffer.from('Xen saved domain, xl format\n \0 \r'), randomBytes(200)]));
    const e = await failure(p);
    assert.match(e.message, /is not a Xenode save file/);
    assert.match(e.hint ?? '', /xl save file/);
    const q = join(dir, 'random.save');
    writeFileSync(q, randomBytes(5000));
    assert.match((await failure(q)).message, /not a Xenode save file/);
  });

  it('refuses stray bytes after the trailer', async () => {
    const p = copyWith('stray.save', (b) => Buffer.concat([b, Buffer.from('x')]));
    const e = await failure(p);
    assert.match(e.message, /truncated or incomplete|stray bytes/);
  });

  it('skips unknown optional sections and refuses unknown mandatory ones', async () => {
    const opt = join(dir, 'optional.save');
    await write(opt, { sections: (w) => w.addSection(99, Buffer.from('future'), FLAG_OPTIONAL) });
    const f = await readSaveFile(opt);
    assert.equal(f.sections.has(99), false);
    const mand = join(dir, 'mandatory.save');
    await write(mand, { sections: (w) => w.addSection(99, Buffer.from('future')) });
    assert.match((await failure(mand)).message, /unknown mandatory section type 99/);
  });

  it('reports a missing file and a missing directory clearly', async () => {
    const e = await failure(join(dir, 'nope.save'));
    assert.equal(e.kind, 'not-found');
    assert.throws(() => new SaveFileWriter(join(dir, 'no-dir', 'x.save')), /no such directory/);
  });

  it('a section length running past the end is corruption, not a crash', async () => {
    const p = copyWith('len.save', (b) => {
      b.writeBigUInt64LE(1n << 40n, 24 + 8);
      return b;
    });
    assert.match((await failure(p)).message, /runs past the end/);
    truncateSync(p, 10);
    assert.match((await failure(p)).message, /not a Xenode save file|truncated/);
  });
});
