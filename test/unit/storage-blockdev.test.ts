// A sponsor's disk chain, as the storage gate checked it, handed to QEMU in the
// -blockdev itself: QEMU opens the pinned backing and data files and never a
// name it reads from a header (issue 13 review, the qcow2 chain race).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DiskSpec } from '../../src/config/types.ts';
import { blockdevOptions, DEFAULT_DISK_IO, type PinnedImage, type PlacedDisk } from '../../src/engine/disk-args.ts';

let dir: string;
let good: string;
let evil: string;
/** A qcow2 whose header names `evil` as its raw backing file. */
let top: string;

/** The part of a -blockdev node these tests look at. */
interface Node {
  driver: string;
  'node-name'?: string;
  'read-only': boolean;
  file: { filename: string; 'read-only': boolean };
  'data-file'?: { filename: string; 'read-only': boolean };
  backing?: Node | null;
}

function placed(target: string, chain?: PinnedImage[], access: DiskSpec['access'] = 'rw'): PlacedDisk {
  return {
    spec: { target, format: 'qcow2', vdev: 'xvdb', access, devtype: 'disk' },
    devnum: 51728,
    kind: 'virtio-blk',
    slot: 1,
    ...(chain ? { chain } : {}),
  };
}

/** The first 4 bytes the guest would read, through QEMU's block layer opened with these options. */
function guestReads(opts: Record<string, unknown> | undefined): string {
  const out = execFileSync('qemu-io', ['-r', '-c', 'read -v 0 4', `json:${JSON.stringify(opts)}`], {
    encoding: 'utf8',
  });
  const m = /^00000000:\s+((?:[0-9a-f]{2}\s+){4})/m.exec(out);
  assert.ok(m, out);
  return Buffer.from(
    (m[1] as string)
      .trim()
      .split(/\s+/)
      .map((h) => Number.parseInt(h, 16)),
  ).toString('latin1');
}

/** The files a QEMU started with this -blockdev has open. */
function filesOpened(opts: Record<string, unknown> | undefined): string[] {
  const qmp = [
    { execute: 'qmp_capabilities' },
    { execute: 'query-named-block-nodes', arguments: { flat: true } },
    { execute: 'quit' },
  ];
  const out = execFileSync(
    'qemu-system-x86_64',
    ['-machine', 'none', '-nodefaults', '-display', 'none', '-S', '-qmp', 'stdio', '-blockdev', JSON.stringify(opts)],
    { input: qmp.map((c) => JSON.stringify(c)).join('\n'), encoding: 'utf8', timeout: 30_000 },
  );
  for (const line of out.split('\n')) {
    if (!line.includes('"return": [')) continue;
    const nodes = (JSON.parse(line) as { return: Array<{ drv: string; file: string }> }).return;
    return nodes.filter((n) => n.drv === 'file').map((n) => n.file);
  }
  throw new Error(`no answer from QEMU: ${out}`);
}

before(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'xn-blockdev-')));
  good = join(dir, 'good.raw');
  evil = join(dir, 'evil.raw');
  writeFileSync(good, Buffer.concat([Buffer.from('GOOD'), Buffer.alloc(2 ** 20 - 4)]));
  writeFileSync(evil, Buffer.concat([Buffer.from('EVIL'), Buffer.alloc(2 ** 20 - 4)]));
  top = join(dir, 'top.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', evil, '-F', 'raw', top, '1M']);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('a pinned disk chain in the -blockdev', () => {
  it('renders the chain as nested nodes: data file, read-only backing, and no backing at its end', () => {
    const chain: PinnedImage[] = [
      { path: '/p/a/top', format: 'qcow2', dataFile: '/p/a/data' },
      { path: '/p/a/mid', format: 'qcow2' },
      { path: '/p/a/base', format: 'raw' },
    ];
    const o = blockdevOptions(placed('/p/a/top', chain), DEFAULT_DISK_IO) as unknown as Node;
    assert.equal(o['node-name'], 'xvbd51728-fmt');
    assert.equal(o.file.filename, '/p/a/top');
    assert.equal(o['read-only'], false);
    assert.deepEqual([o['data-file']?.filename, o['data-file']?.['read-only']], ['/p/a/data', false]);
    const mid = o.backing as Node;
    assert.deepEqual(
      [mid.driver, mid.file.filename, mid['read-only'], mid.file['read-only']],
      ['qcow2', '/p/a/mid', true, true],
    );
    assert.equal(mid['node-name'], undefined);
    const base = mid.backing as Node;
    assert.strictEqual(base.backing, undefined, 'a raw node has no backing option');
    assert.deepEqual([base.driver, base.file.filename], ['raw', '/p/a/base']);
    // The end of a qcow2 chain is stated, not left to the header.
    const alone = blockdevOptions(placed('/p/a/top', [{ path: '/p/a/top', format: 'qcow2' }]), DEFAULT_DISK_IO);
    assert.strictEqual(alone?.backing, null);
    assert.ok(!('data-file' in (alone ?? {})));
    // Without a chain (the admin's disks) nothing changes: QEMU follows the header as before.
    assert.ok(!('backing' in (blockdevOptions(placed('/p/a/top'), DEFAULT_DISK_IO) ?? {})));
    assert.throws(() => blockdevOptions(placed('/p/a/other', chain), DEFAULT_DISK_IO), /does not start at its image/);
  });

  it('QEMU reads the pinned backing file, not the one the header names', () => {
    assert.equal(guestReads(blockdevOptions(placed(top, undefined, 'ro'), DEFAULT_DISK_IO)), 'EVIL');
    const pinned = [
      { path: top, format: 'qcow2' as const },
      { path: good, format: 'raw' as const },
    ];
    assert.equal(guestReads(blockdevOptions(placed(top, pinned, 'ro'), DEFAULT_DISK_IO)), 'GOOD');
    // A chain that ends at the top: the header's backing name is not opened at all.
    assert.equal(
      guestReads(blockdevOptions(placed(top, [pinned[0] as PinnedImage], 'ro'), DEFAULT_DISK_IO)),
      '\0\0\0\0',
    );
  });

  it('qemu-system takes the rendered -blockdev and opens only the pinned files', () => {
    const pinned: PinnedImage[] = [
      { path: top, format: 'qcow2' },
      { path: good, format: 'raw' },
    ];
    assert.deepEqual(filesOpened(blockdevOptions(placed(top, pinned), DEFAULT_DISK_IO)).sort(), [good, top].sort());
    assert.deepEqual(filesOpened(blockdevOptions(placed(top, pinned.slice(0, 1)), DEFAULT_DISK_IO)), [top]);
  });
});
