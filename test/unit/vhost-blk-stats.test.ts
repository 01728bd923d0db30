// The disk backend's counters and its queue-depth-1 path, without QEMU: the
// stats file the backend writes is what the disks feature reads (the layout is
// written down on both sides), a restarted backend counts on in the same file,
// a file that is not one is started afresh; serveRequestSync answers as
// serveRequest does and says what it moved.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  type BlockImage,
  type SyncBlockImage,
  serveRequest,
  serveRequestSync,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../../src/backends/vhost-blk/blk-request.ts';
import { STATS_FIELDS, StatsFile } from '../../src/backends/vhost-blk/stats-file.ts';
import type { Chain } from '../../src/backends/vhost-blk/virtqueue.ts';
import { parseDiskSpec } from '../../src/config/disk.ts';
import { readBackendCounters } from '../../src/features/disks/backend-stats.ts';
import { canonicalDiskSpec } from '../../src/features/disks/commands.ts';

const dir = mkdtempSync(join(tmpdir(), 'xn-blkstats-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the backend stats file', () => {
  it('what the backend counts is what the disks feature reads, field by field', () => {
    const path = join(dir, 'a.stats');
    const f = new StatsFile(path);
    assert.equal(f.resumed, false);
    STATS_FIELDS.forEach((k, i) => {
      f.add(k, 1000 * (i + 1));
      f.add(k, i + 1);
    });
    const c = readBackendCounters(path);
    assert.ok(c);
    assert.ok(c.epoch > 0);
    assert.deepEqual(
      c.stats,
      Object.fromEntries(STATS_FIELDS.map((k, i) => [k, 1001 * (i + 1)])),
      'every field in its place',
    );
  });

  it('a backend started again on the same file counts on, under the same epoch', () => {
    const path = join(dir, 'b.stats');
    const first = new StatsFile(path);
    first.add('rdBytes', 4096);
    const epoch = readBackendCounters(path)?.epoch;
    const second = new StatsFile(path);
    assert.equal(second.resumed, true);
    second.add('rdBytes', 512);
    assert.equal(readBackendCounters(path)?.stats.rdBytes, 4608);
    assert.equal(readBackendCounters(path)?.epoch, epoch);
  });

  it('a file that is not a stats file is started afresh, with a new epoch; none is undefined', () => {
    const path = join(dir, 'c.stats');
    writeFileSync(path, Buffer.alloc(128, 0xff));
    assert.equal(readBackendCounters(path), undefined, 'garbage is not read as counters');
    const f = new StatsFile(path);
    assert.equal(f.resumed, false);
    assert.equal(readBackendCounters(path)?.stats.wrOps, 0);
    assert.equal(readBackendCounters(join(dir, 'none.stats')), undefined);
    writeFileSync(join(dir, 'short.stats'), 'XNBS');
    assert.equal(readBackendCounters(join(dir, 'short.stats')), undefined);
  });
});

/** A chain as a virtqueue gives it: a header the device reads, then data and a status byte it writes or reads. */
function chain(type: number, sector: number, data: Uint8Array, dataWritable: boolean): Chain {
  const h = new Uint8Array(16);
  const v = new DataView(h.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  const status = new Uint8Array([0xff]);
  const readable = dataWritable || data.length === 0 ? [h] : [h, data];
  const writable = dataWritable && data.length > 0 ? [data, status] : [status];
  return {
    head: 0,
    readable,
    writable,
    readLen: readable.reduce((n, b) => n + b.length, 0),
    writeLen: writable.reduce((n, b) => n + b.length, 0),
    statusByte: status,
  };
}

function memImage(size: number): SyncBlockImage & { bytes: Uint8Array; flushes: number } {
  const bytes = new Uint8Array(size);
  const at = (bufs: Uint8Array[], pos: number, write: boolean) => {
    for (const b of bufs) {
      if (write) bytes.set(b, pos);
      else b.set(bytes.subarray(pos, pos + b.length));
      pos += b.length;
    }
  };
  const img = {
    size,
    readOnly: false,
    bytes,
    flushes: 0,
    readvSync: (b: Uint8Array[], p: number) => at(b, p, false),
    writevSync: (b: Uint8Array[], p: number) => at(b, p, true),
    flushSync: () => {
      img.flushes++;
    },
    readv: async (b: Uint8Array[], p: number) => at(b, p, false),
    writev: async (b: Uint8Array[], p: number) => at(b, p, true),
    flush: async () => {
      img.flushes++;
    },
    discard: async () => {},
    writeZeroes: async () => {},
  };
  return img;
}

describe('serveRequestSync (queue depth 1)', () => {
  const o = { serial: 'xvdb', discard: true, writeZeroes: true };

  it('reads, writes and flushes as serveRequest does, and says what moved', async () => {
    const img = memImage(1 << 20);
    const data = new Uint8Array(4096).fill(7);
    const w = serveRequestSync(chain(VIRTIO_BLK_T_OUT, 8, data, false), img, o);
    assert.deepEqual(w, { status: VIRTIO_BLK_S_OK, written: 1, kind: 'write', bytes: 4096 });
    assert.equal(img.bytes[8 * 512], 7);
    const into = new Uint8Array(4096);
    const c = chain(VIRTIO_BLK_T_IN, 8, into, true);
    const r = serveRequestSync(c, img, o);
    assert.deepEqual(r, { status: VIRTIO_BLK_S_OK, written: 4097, kind: 'read', bytes: 4096 });
    assert.equal(c.statusByte?.[0], VIRTIO_BLK_S_OK);
    assert.deepEqual(into, data);
    const f = serveRequestSync(chain(VIRTIO_BLK_T_FLUSH, 0, new Uint8Array(0), false), img, o);
    assert.equal(f?.kind, 'flush');
    assert.equal(img.flushes, 1);
    // The asynchronous path gives the same answer for the same read.
    const again = new Uint8Array(4096);
    const ra = await serveRequest(chain(VIRTIO_BLK_T_IN, 8, again, true), img as BlockImage, o);
    assert.deepEqual(ra, r);
  });

  it('a read past the end or an I/O error fails that request, as a failed read', () => {
    const img = memImage(64 * 1024);
    const past = serveRequestSync(chain(VIRTIO_BLK_T_IN, 128, new Uint8Array(4096), true), img, o);
    assert.equal(past?.status, VIRTIO_BLK_S_IOERR);
    assert.equal(past?.kind, 'read');
    const broken = {
      ...img,
      readvSync: () => {
        throw new Error('EIO');
      },
    };
    const c = chain(VIRTIO_BLK_T_IN, 0, new Uint8Array(4096), true);
    const e = serveRequestSync(c, broken, o);
    assert.equal(e?.status, VIRTIO_BLK_S_IOERR);
    assert.equal(e?.kind, 'read');
    assert.match(e?.error ?? '', /EIO/);
    assert.equal(c.statusByte?.[0], VIRTIO_BLK_S_IOERR);
  });

  it('leaves discard to the asynchronous path, untouched', () => {
    const img = memImage(1 << 20);
    const seg = new Uint8Array(16);
    new DataView(seg.buffer).setUint32(8, 8, true);
    const c = chain(VIRTIO_BLK_T_DISCARD, 0, seg, false);
    assert.equal(serveRequestSync(c, img, o), undefined);
    assert.equal(c.statusByte?.[0], 0xff, 'no status written');
  });
});

describe('block-attach of a backendtype=xenode disk, CLI to daemon', () => {
  it('the spec the CLI sends keeps backendtype=xenode (else QEMU would quietly serve the disk)', () => {
    const spec = parseDiskSpec('/srv/d.img,raw,xvdc,rw,backendtype=xenode', { baseDir: '/' });
    assert.equal(spec.backendtype, 'xenode');
    assert.deepEqual(parseDiskSpec(canonicalDiskSpec(spec), { baseDir: '/' }), spec);
    const q = parseDiskSpec('/srv/d.img,raw,xvdc,rw', { baseDir: '/' });
    assert.doesNotMatch(canonicalDiskSpec(q), /backendtype/);
  });
});
