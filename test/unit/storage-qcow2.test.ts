// The storage gate's own qcow2 header reader and backing-chain check: images made
// by qemu-img read as QEMU reads them, and crafted hostile headers (huge offsets
// and lengths, names with NULs or protocols, loops, relative escapes) refused;
// every image used only in the format, and within the size, it was made with.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  checkImageChain,
  ImageRefusal,
  imageFiles,
  MAX_CHAIN,
  type RecordOf,
} from '../../src/features/storage/gate.ts';
import { formatSize, parseSize } from '../../src/features/storage/names.ts';
import { parseQcow2Header, Qcow2Error, readQcow2Header } from '../../src/features/storage/qcow2.ts';

interface Crafted {
  version?: number;
  clusterBits?: number;
  size?: bigint;
  backingOffset?: bigint;
  backingSize?: number;
  backing?: Buffer | string;
  headerLength?: number;
  incompatible?: bigint;
  exts?: Array<[number, Buffer | string]>;
  total?: number;
}

const BACKING_FORMAT = 0xe2792aca;
const DATA_FILE = 0x44415441;

/** A qcow2 header as QEMU lays it out (docs/interop/qcow2.txt), with every field under the test's control. */
function craft(o: Crafted = {}): Buffer {
  const version = o.version ?? 3;
  const bits = o.clusterBits ?? 16;
  const buf = Buffer.alloc(o.total ?? 2 ** Math.min(Math.max(bits, 9), 16));
  buf.write('QFI\xfb', 0, 'latin1');
  buf.writeUInt32BE(version, 4);
  buf.writeUInt32BE(bits, 20);
  buf.writeBigUInt64BE(o.size ?? 1n << 30n, 24);
  const hlen = o.headerLength ?? (version === 2 ? 72 : 112);
  if (version !== 2) {
    buf.writeBigUInt64BE(o.incompatible ?? 0n, 72);
    buf.writeUInt32BE(4, 96);
    buf.writeUInt32BE(hlen, 100);
  }
  let off = version === 2 ? 72 : hlen;
  for (const [type, data] of o.exts ?? []) {
    const d = typeof data === 'string' ? Buffer.from(data) : data;
    buf.writeUInt32BE(type, off);
    buf.writeUInt32BE(d.length, off + 4);
    d.copy(buf, off + 8);
    off += 8 + Math.ceil(d.length / 8) * 8;
  }
  off += 8; // end-of-extensions marker (zeros)
  if (o.backing !== undefined || o.backingOffset !== undefined) {
    const name = typeof o.backing === 'string' ? Buffer.from(o.backing) : (o.backing ?? Buffer.alloc(0));
    const at = o.backingOffset ?? BigInt(off);
    buf.writeBigUInt64BE(at, 8);
    buf.writeUInt32BE(o.backingSize ?? name.length, 16);
    if (at < BigInt(buf.length)) name.copy(buf, Number(at));
  }
  return buf;
}

function refused(buf: Buffer, re: RegExp): void {
  assert.throws(
    () => parseQcow2Header(buf),
    (e: unknown) => e instanceof Qcow2Error && re.test(e.message),
  );
}

let dir: string;
before(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'xn-qcow2-')));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function qemuImg(args: string[]): void {
  execFileSync('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function headerOf(file: string) {
  const fd = openSync(file, 'r');
  return readQcow2Header(fd);
}

describe('qcow2 header reader: images made by qemu-img', () => {
  it('reads size, version and no backing file from a plain image', () => {
    qemuImg(['create', '-q', '-f', 'qcow2', join(dir, 'plain.qcow2'), '64M']);
    const h = headerOf(join(dir, 'plain.qcow2'));
    assert.deepEqual(h, { version: 3, clusterBits: 16, size: 64 * 2 ** 20, needsDataFile: false });
  });

  it('reads the backing file and its format as qemu-img wrote them', () => {
    qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'plain.qcow2', '-F', 'qcow2', join(dir, 'over.qcow2')]);
    const h = headerOf(join(dir, 'over.qcow2'));
    assert.equal(h?.backingFile, 'plain.qcow2');
    assert.equal(h?.backingFormat, 'qcow2');
  });

  it('reads an external data file', () => {
    qemuImg(['create', '-q', '-f', 'qcow2', '-o', `data_file=${join(dir, 'data.raw')}`, join(dir, 'ext.qcow2'), '1M']);
    const h = headerOf(join(dir, 'ext.qcow2'));
    assert.equal(h?.dataFile, join(dir, 'data.raw'));
    assert.equal(h?.needsDataFile, true);
  });

  it('says "not qcow2" for a raw file', () => {
    writeFileSync(join(dir, 'raw.img'), Buffer.alloc(4096));
    assert.equal(headerOf(join(dir, 'raw.img')), undefined);
  });
});

describe('qcow2 header reader: crafted headers', () => {
  it('accepts a crafted v2 and v3 header with a backing file', () => {
    const h = parseQcow2Header(craft({ backing: 'base', exts: [[BACKING_FORMAT, 'raw']] }));
    assert.equal(h.backingFile, 'base');
    assert.equal(h.backingFormat, 'raw');
    assert.equal(parseQcow2Header(craft({ version: 2, backing: '/x/y' })).backingFile, '/x/y');
  });

  it('refuses versions and cluster sizes QEMU refuses', () => {
    refused(craft({ version: 1 }), /version 1/);
    refused(craft({ version: 4 }), /version 4/);
    refused(craft({ clusterBits: 8 }), /cluster size/);
    refused(craft({ clusterBits: 22 }), /cluster size/);
    refused(craft({ clusterBits: 0xffffffff }), /cluster size/);
  });

  it('refuses a huge backing file offset or length', () => {
    refused(craft({ backing: 'x', backingOffset: 1n << 63n }), /outside the first cluster/);
    refused(craft({ backing: 'x', backingOffset: 0xffffffffffffffffn }), /outside the first cluster/);
    refused(craft({ backing: 'x', backingOffset: 65537n }), /outside the first cluster/);
    refused(craft({ backing: 'x', backingSize: 0xffffffff }), /too long/);
    refused(craft({ backing: 'x'.repeat(1024) }), /too long/);
    // Within QEMU's limits but past the end of a short file: nothing to read.
    refused(craft({ backing: 'x', backingSize: 1000, total: 600 }), /outside the image's header/);
  });

  it('refuses backing names QEMU would read differently (NUL, control characters, bad UTF-8)', () => {
    refused(craft({ backing: Buffer.from('ok\0/etc/shadow') }), /control characters/);
    refused(craft({ backing: 'a\nb' }), /control characters/);
    refused(craft({ backing: Buffer.from([0x66, 0xff, 0xfe]) }), /UTF-8/);
    refused(craft({ backing: 'x', exts: [[BACKING_FORMAT, 'raw\0qcow2']] }), /control characters/);
  });

  it('refuses oversize, duplicate and truncated extensions', () => {
    const big = craft();
    big.writeUInt32BE(BACKING_FORMAT, 112);
    big.writeUInt32BE(0xfffffff0, 116);
    refused(big, /extension too large/);
    refused(craft({ exts: [[BACKING_FORMAT, 'x'.repeat(16)]] }), /format name too long/);
    refused(
      craft({
        exts: [
          [DATA_FILE, '/a'],
          [DATA_FILE, '/b'],
        ],
      }),
      /duplicate/,
    );
    refused(craft({ exts: [[0x1234, 'zz']] }).subarray(0, 116), /truncated/);
  });

  it('refuses header lengths outside [104, cluster size] and truncated v3 headers', () => {
    refused(craft({ headerLength: 100 }), /header length/);
    refused(craft({ clusterBits: 9, headerLength: 1024, total: 2048 }), /header length/);
    refused(craft().subarray(0, 90), /truncated/);
    refused(Buffer.from('QFI\xfb', 'latin1'), /not a qcow2/);
  });

  it('skips unknown extensions and stops at the end marker', () => {
    const h = parseQcow2Header(
      craft({
        exts: [
          [0x6803f857, Buffer.alloc(48)],
          [0x0badcafe, 'abc'],
          [DATA_FILE, '/pool/alice/data'],
        ],
        incompatible: 4n,
      }),
    );
    assert.equal(h.dataFile, '/pool/alice/data');
    assert.equal(h.needsDataFile, true);
  });

  it('survives random headers without hanging or throwing anything but Qcow2Error', () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const b = craft({ backing: 'base', exts: [[BACKING_FORMAT, 'qcow2']], total: 4096 });
      for (let k = 0; k < 8; k++) b[rnd() % 200] = rnd() & 0xff;
      try {
        parseQcow2Header(b);
      } catch (e) {
        assert.ok(e instanceof Qcow2Error, String(e));
      }
    }
  });
});

describe('backing chain check', () => {
  let area: string;
  /** Sizes recorded for some images; without one, no size is checked. */
  const sizes = new Map<string, number>();
  /** The area's records: every plain file in it is a volume, made raw if its name ends in .raw, else qcow2. */
  const recordOf: RecordOf = (p) => {
    try {
      if (dirname(p) !== area || realpathSync(p) !== p) return undefined;
    } catch {
      return undefined;
    }
    const size = sizes.get(basename(p));
    return { format: p.endsWith('.raw') ? 'raw' : 'qcow2', ...(size === undefined ? {} : { size }) };
  };
  const image = (name: string, o: Crafted) => {
    writeFileSync(join(area, name), craft(o));
    return join(area, name);
  };
  const chainRefused = (path: string, re: RegExp, format: 'qcow2' | 'raw' = 'qcow2') =>
    assert.throws(
      () => checkImageChain(path, format, recordOf),
      (e: unknown) => e instanceof ImageRefusal && re.test(e.message),
    );

  before(() => {
    area = join(dir, 'pool', 'alice');
    mkdirSync(area, { recursive: true });
    mkdirSync(join(dir, 'pool', 'bob'));
    writeFileSync(join(area, 'base.raw'), Buffer.alloc(65536));
    writeFileSync(join(dir, 'pool', 'bob', 'secret'), 'bob');
  });

  it('accepts a chain inside the area and returns it, top first, as QEMU is to be given it', () => {
    const mid = image('mid.qcow2', { backing: 'base.raw', exts: [[BACKING_FORMAT, 'raw']] });
    const top = image('top.qcow2', { backing: mid, exts: [[BACKING_FORMAT, 'qcow2']] });
    assert.deepEqual(checkImageChain(top, 'qcow2', recordOf), [
      { path: top, format: 'qcow2' },
      { path: mid, format: 'qcow2' },
      { path: join(area, 'base.raw'), format: 'raw' },
    ]);
    assert.deepEqual(imageFiles(top, 'qcow2'), [mid, join(area, 'base.raw')]);
    assert.deepEqual(imageFiles(top, 'raw'), [], 'a raw disk names no files');
  });

  it('refuses a backing file outside the area, however it is named', () => {
    for (const name of [
      '/etc/shadow',
      '../bob/secret',
      `${area}/../bob/secret`,
      './../../pool/bob/secret',
      'sub/../../bob/secret',
    ]) {
      chainRefused(image('esc.qcow2', { backing: name, exts: [[BACKING_FORMAT, 'raw']] }), /outside your storage area/);
    }
  });

  it('refuses protocol and json: pseudo-file names', () => {
    for (const name of ['nbd:127.0.0.1:10809', 'json:{"driver":"file","filename":"/etc/shadow"}', 'file:base.raw']) {
      chainRefused(image('proto.qcow2', { backing: name, exts: [[BACKING_FORMAT, 'raw']] }), /not a plain file name/);
    }
  });

  it('refuses a backing file whose format QEMU would probe', () => {
    chainRefused(image('probe.qcow2', { backing: 'base.raw' }), /format is not stated/);
    chainRefused(
      image('vmdk.qcow2', { backing: 'base.raw', exts: [[BACKING_FORMAT, 'vmdk']] }),
      /format is not stated/,
    );
  });

  it('refuses loops and chains that are too long', () => {
    image('loop-a', { backing: 'loop-b', exts: [[BACKING_FORMAT, 'qcow2']] });
    image('loop-b', { backing: 'loop-a', exts: [[BACKING_FORMAT, 'qcow2']] });
    chainRefused(join(area, 'loop-a'), /loops/);
    chainRefused(image('self', { backing: 'self', exts: [[BACKING_FORMAT, 'qcow2']] }), /loops/);
    assert.ok(imageFiles(join(area, 'loop-a'), 'qcow2').length <= 2);
    let prev = 'base.raw';
    let fmt = 'raw';
    for (let i = 0; i <= MAX_CHAIN + 1; i++) {
      image(`c${i}`, { backing: prev, exts: [[BACKING_FORMAT, fmt]] });
      prev = `c${i}`;
      fmt = 'qcow2';
    }
    chainRefused(join(area, prev), /longer than/);
  });

  it('refuses a symbolic link as a backing file or as the image itself', () => {
    symlinkSync('/etc/shadow', join(area, 'link'));
    chainRefused(image('vialink.qcow2', { backing: 'link', exts: [[BACKING_FORMAT, 'raw']] }), /outside/);
    assert.throws(() => checkImageChain(join(area, 'link'), 'raw', () => ({ format: 'raw' })), ImageRefusal);
  });

  it('takes an external data file only as a raw volume of the area, named absolutely', () => {
    chainRefused(image('df1', { exts: [[DATA_FILE, '/etc/shadow']], incompatible: 4n }), /data file outside/);
    chainRefused(image('df2', { exts: [[DATA_FILE, 'base.raw']], incompatible: 4n }), /data file outside/);
    chainRefused(image('df3', { incompatible: 4n }), /does not name/);
    // Guest data would land as bytes in a volume made qcow2: refused.
    chainRefused(image('df5', { exts: [[DATA_FILE, join(area, 'mid.qcow2')]], incompatible: 4n }), /not a raw volume/);
    const df4 = image('df4', { exts: [[DATA_FILE, join(area, 'base.raw')]], incompatible: 4n });
    assert.deepEqual(checkImageChain(df4, 'qcow2', recordOf), [
      { path: df4, format: 'qcow2', dataFile: join(area, 'base.raw') },
    ]);
  });

  it('uses every image only in the format it was made with', () => {
    // A raw volume holding a hostile header (as a guest can write): read as bytes, never as a header.
    const hostile = image('hostile.raw', { backing: '/etc/shadow', exts: [[BACKING_FORMAT, 'raw']] });
    assert.deepEqual(checkImageChain(hostile, 'raw', recordOf), [{ path: hostile, format: 'raw' }]);
    chainRefused(hostile, /^is a raw volume: it is used only as raw$/, 'qcow2');
    const benign = image('benign.raw', {});
    chainRefused(benign, /^is a raw volume: it is used only as raw$/, 'qcow2');
    const broken = image('broken.raw', { version: 9 });
    checkImageChain(broken, 'raw', recordOf);
    // A qcow2 volume handed to a guest raw would let it write the metadata.
    chainRefused(join(area, 'mid.qcow2'), /^is a qcow2 volume: it is used only as qcow2$/, 'raw');
    // A backing file's stated format must be the one its volume was made with, both ways.
    chainRefused(
      image('over-raw.qcow2', { backing: 'benign.raw', exts: [[BACKING_FORMAT, 'qcow2']] }),
      /^has a backing file stated as qcow2, but that volume is raw$/,
    );
    chainRefused(
      image('over-q.qcow2', { backing: 'mid.qcow2', exts: [[BACKING_FORMAT, 'raw']] }),
      /^has a backing file stated as raw, but that volume is qcow2$/,
    );
    chainRefused(join(area, 'base.raw'), /is a raw volume/, 'qcow2');
  });

  it('refuses a qcow2 whose header claims more virtual size than recorded, anywhere in the chain', () => {
    sizes.set('small.qcow2', 2 ** 20);
    const small = image('small.qcow2', { size: 1n << 40n });
    chainRefused(small, /^claims a virtual size of 1T, more than the 1M it was made with$/);
    const over = image('over-small.qcow2', { backing: 'small.qcow2', exts: [[BACKING_FORMAT, 'qcow2']] });
    chainRefused(over, /^has a backing file that claims a virtual size of 1T/);
    image('small.qcow2', { size: 1n << 20n });
    checkImageChain(over, 'qcow2', recordOf);
  });
});

describe('sizes', () => {
  it('parses and prints volume sizes', () => {
    assert.equal(parseSize('1G'), 2 ** 30);
    assert.equal(parseSize('512M'), 512 * 2 ** 20);
    assert.equal(parseSize('10GiB'), 10 * 2 ** 30);
    assert.equal(parseSize('1000'), 1024);
    assert.equal(parseSize(4096), 4096);
    for (const bad of ['', '0', '-1G', '1X', '17T', 'G'])
      assert.throws(() => parseSize(bad), new RegExp(bad === '17T' ? 'limit' : 'invalid'));
    assert.equal(formatSize(2 ** 30), '1G');
    assert.equal(formatSize(1.5 * 2 ** 20), '1.5M');
    assert.equal(formatSize(100), '100B');
  });
});
