// The disk backend serving requests on its main thread when they cannot block
// it (issue 18, bench:io at queue depth 4): a read the host's page cache holds
// is done at once (preadv2 RWF_NOWAIT into guest memory), a read of pages not
// cached is left to the worker threads with the guest's status byte untouched,
// a write of whole pages goes into the page cache at once, a partial-page write
// and a flush are left to the worker threads.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  serveRequestNow,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
} from '../../src/backends/vhost-blk/blk-request.ts';
import { closeFd, mapShared, newMemfd } from '../../src/backends/vhost-blk/libc.ts';
import { RawImage } from '../../src/backends/vhost-blk/raw-image.ts';
import type { Chain } from '../../src/backends/vhost-blk/virtqueue.ts';

const dir = mkdtempSync(join(tmpdir(), 'xn-blknow-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const opts = { serial: 'xvdb', discard: true, writeZeroes: true };
const MIB = 1 << 20;

/** Guest memory as the backend has it: a shared mapping of a memfd. */
const memfd = newMemfd('test-guest', 4 * MIB);
const guest = mapShared(memfd, 4 * MIB, 0).bytes;
closeFd(memfd);

/** A request in guest memory: header at 0, data at 64 KiB (page-aligned), status byte at 1 MiB. */
function chain(type: number, sector: number, len: number): Chain {
  const h = guest.subarray(0, 16);
  const v = new DataView(h.buffer, h.byteOffset, 16);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  const data = guest.subarray(64 * 1024, 64 * 1024 + len);
  const status = guest.subarray(MIB, MIB + 1);
  status[0] = 0xff;
  const readable = type === VIRTIO_BLK_T_OUT ? [h, data] : [h];
  const writable = type === VIRTIO_BLK_T_IN ? [data, status] : [status];
  return {
    head: 0,
    readable,
    writable,
    readLen: readable.reduce((n, b) => n + b.length, 0),
    writeLen: writable.reduce((n, b) => n + b.length, 0),
    statusByte: status,
  };
}

/** An 8 MiB image of known bytes, written back and dropped from the host's page cache. */
function coldImage(name: string): string {
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  for (let i = 0; i < 8; i++) writeSync(fd, Buffer.alloc(MIB, i + 1));
  fsyncSync(fd);
  closeSync(fd);
  execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
  return path;
}

describe('serveRequestNow on a buffered raw image', () => {
  it('a read of cached pages is done at once; one of pages not cached is left, status untouched', () => {
    const path = coldImage('a.img');
    const img = new RawImage(path, false, 'off');
    try {
      // Megabyte 5 has not been read since it was dropped: not served here.
      const cold = chain(VIRTIO_BLK_T_IN, (5 * MIB) / 512, 4096);
      assert.equal(serveRequestNow(cold, img, opts), undefined, 'a cache miss goes to the worker threads');
      assert.equal(cold.statusByte?.[0], 0xff, 'the status byte is left alone');
      // Cache megabyte 2 (as a first, blocking read would), then read it now.
      readFileSync(path).subarray(0, 1);
      const warm = chain(VIRTIO_BLK_T_IN, (2 * MIB + 8192) / 512, 8192);
      guest.fill(0, 64 * 1024, 64 * 1024 + 8192);
      const r = serveRequestNow(warm, img, opts);
      assert.ok(r, 'a cached read is served now');
      assert.equal(r.status, VIRTIO_BLK_S_OK);
      assert.equal(r.written, 8193);
      assert.equal(warm.statusByte?.[0], VIRTIO_BLK_S_OK);
      assert.ok(
        guest.subarray(64 * 1024, 64 * 1024 + 8192).every((b) => b === 3),
        'the bytes of megabyte 2',
      );
    } finally {
      img.close();
    }
  });

  it('a write of whole pages goes into the page cache at once; a partial page or a flush is left', () => {
    const path = coldImage('b.img');
    const img = new RawImage(path, false, 'off');
    try {
      guest.fill(0xab, 64 * 1024, 64 * 1024 + 4096);
      const w = chain(VIRTIO_BLK_T_OUT, 4096 / 512, 4096);
      const r = serveRequestNow(w, img, opts);
      assert.equal(r?.status, VIRTIO_BLK_S_OK);
      assert.equal(w.statusByte?.[0], VIRTIO_BLK_S_OK);
      assert.ok(
        readFileSync(path)
          .subarray(4096, 8192)
          .every((b) => b === 0xab),
        'in the image',
      );
      const half = chain(VIRTIO_BLK_T_OUT, 1, 512);
      assert.equal(serveRequestNow(half, img, opts), undefined, 'a 512-byte write may read a page first');
      assert.equal(half.statusByte?.[0], 0xff);
      assert.equal(readFileSync(path)[512], 1, 'nothing written');
      const f = chain(VIRTIO_BLK_T_FLUSH, 0, 0);
      assert.equal(serveRequestNow(f, img, opts), undefined, 'fdatasync blocks: worker threads');
    } finally {
      img.close();
    }
  });

  it('with O_DIRECT in use nothing is served now (every transfer would block)', (t) => {
    const path = coldImage('c.img');
    let img: RawImage;
    try {
      img = new RawImage(path, false, 'on');
    } catch {
      t.skip('no O_DIRECT on this file system');
      return;
    }
    try {
      readFileSync(path);
      assert.equal(serveRequestNow(chain(VIRTIO_BLK_T_IN, 0, 4096), img, opts), undefined);
      assert.equal(serveRequestNow(chain(VIRTIO_BLK_T_OUT, 0, 4096), img, opts), undefined);
    } finally {
      img.close();
    }
  });

  it('a read past the end is answered now with IOERR (no I/O to wait for)', () => {
    const img = new RawImage(coldImage('d.img'), false, 'off');
    try {
      const bad = chain(VIRTIO_BLK_T_IN, (8 * MIB) / 512, 4096);
      const r = serveRequestNow(bad, img, opts);
      assert.equal(r?.status, 1);
      assert.equal(bad.statusByte?.[0], 1);
    } finally {
      img.close();
    }
  });
});
