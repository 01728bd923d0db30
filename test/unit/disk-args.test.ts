// QEMU arguments for disk=[...] and the vdev -> slot -> guest name mapping.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DiskSpec } from '../../src/config/types.ts';
import {
  blockdevOptions,
  CDROM_HBA_ID,
  DEFAULT_DISK_IO,
  DISK_BRIDGE_ID,
  DISK_SLOTS,
  deviceOptions,
  devnumOfDeviceId,
  diskArgs,
  diskIds,
  guestDeviceName,
  placeDisks,
} from '../../src/engine/disk-args.ts';
import { XenodeError } from '../../src/errors.ts';

const disk = (vdev: string, over: Partial<DiskSpec> = {}): DiskSpec => ({
  target: `/srv/${vdev}.img`,
  format: 'raw',
  vdev,
  access: 'rw',
  devtype: 'disk',
  ...over,
});
const IO = { direct: true, aio: 'io_uring' as const };

describe('placeDisks: Xen device number order gives slots and guest names', () => {
  it('sorts by device number whatever the config order', () => {
    const placed = placeDisks([
      disk('xvdc'),
      disk('xvda'),
      disk('hdc', { devtype: 'cdrom', access: 'ro' }),
      disk('xvdb'),
    ]);
    const blk = placed.filter((p) => p.kind === 'virtio-blk');
    assert.deepEqual(
      blk.map((p) => [p.spec.vdev, p.devnum, p.slot, guestDeviceName(p)]),
      [
        ['xvda', 51712, 1, '/dev/vda'],
        ['xvdb', 51728, 2, '/dev/vdb'],
        ['xvdc', 51744, 3, '/dev/vdc'],
      ],
    );
    const cd = placed.filter((p) => p.kind === 'scsi-cd');
    assert.deepEqual(
      cd.map((p) => [p.spec.vdev, p.slot, guestDeviceName(p)]),
      [['hdc', 0, '/dev/sr0']],
    );
  });

  it('orders every vdev form by its number (hd < sd < xvd; d0p0 = xvda, 51728 = xvdb)', () => {
    const placed = placeDisks([disk('51728'), disk('sda'), disk('d0p0'), disk('hda'), disk('xvdq')]);
    assert.deepEqual(
      placed.map((p) => p.spec.vdev),
      ['hda', 'sda', 'd0p0', '51728', 'xvdq'],
    );
    assert.deepEqual(
      placed.map((p) => p.devnum),
      [768, 2048, 51712, 51728, (1 << 28) | (16 << 8)],
    );
  });

  it('a lone xvdb is the guest first disk: vda (names follow order, not letters)', () => {
    const [p] = placeDisks([disk('xvdb')]);
    assert.ok(p);
    assert.equal(guestDeviceName(p), '/dev/vda');
  });

  it('names past z as Linux does: vdz, vdaa', () => {
    const many = Array.from({ length: 28 }, (_, i) => disk(String(51712 + i * 16)));
    const names = placeDisks(many).map(guestDeviceName);
    assert.equal(names[25], '/dev/vdz');
    assert.equal(names[26], '/dev/vdaa');
    assert.equal(names[27], '/dev/vdab');
  });

  it('refuses more disks than the bridge has slots', () => {
    const many = Array.from({ length: DISK_SLOTS + 1 }, (_, i) => disk(String(51712 + i * 16)));
    assert.throws(
      () => placeDisks(many),
      (e: unknown) => e instanceof XenodeError && e.kind === 'config' && /too many disks: 31/.test(e.message),
    );
    assert.equal(placeDisks(many.slice(0, DISK_SLOTS)).at(-1)?.slot, DISK_SLOTS);
  });
});

describe('blockdev and device options', () => {
  it('raw read-write: file node under a raw node, cache and aio as chosen, path untouched', () => {
    const [p] = placeDisks([disk('xvdb', { target: '/srv/a,b=c.img' })]);
    assert.ok(p);
    assert.deepEqual(blockdevOptions(p, IO), {
      driver: 'raw',
      'node-name': 'xvbd51728-fmt',
      'read-only': false,
      discard: 'unmap',
      cache: { direct: true, 'no-flush': false },
      file: {
        driver: 'file',
        filename: '/srv/a,b=c.img',
        'read-only': false,
        aio: 'io_uring',
        discard: 'unmap',
        cache: { direct: true, 'no-flush': false },
      },
    });
  });

  it('read-only and qcow2 are honoured on both nodes', () => {
    const [p] = placeDisks([disk('xvdc', { format: 'qcow2', access: 'ro' })]);
    assert.ok(p);
    const o = blockdevOptions(p, { direct: false, aio: 'threads' }) as Record<string, unknown>;
    assert.equal(o.driver, 'qcow2');
    assert.equal(o['read-only'], true);
    const file = o.file as Record<string, unknown>;
    assert.equal(file['read-only'], true);
    assert.equal(file.aio, 'threads');
    assert.deepEqual(file.cache, { direct: false, 'no-flush': false });
  });

  it('virtio-blk behind the bridge with the vdev as serial', () => {
    const [p] = placeDisks([disk('xvdb')]);
    assert.ok(p);
    assert.deepEqual(deviceOptions(p), {
      driver: 'virtio-blk-pci',
      id: 'xvbd51728',
      drive: 'xvbd51728-fmt',
      bus: DISK_BRIDGE_ID,
      addr: '0x1',
      serial: 'xvdb',
    });
  });

  it('an empty CD-ROM has no image and a drive-less scsi-cd', () => {
    const [p] = placeDisks([disk('hdc', { target: '', devtype: 'cdrom', access: 'ro' })]);
    assert.ok(p);
    assert.equal(blockdevOptions(p, IO), undefined);
    assert.deepEqual(deviceOptions(p), {
      driver: 'scsi-cd',
      id: 'xvbd5632',
      bus: `${CDROM_HBA_ID}.0`,
      'scsi-id': 0,
      lun: 0,
      serial: 'hdc',
    });
  });

  it('device ids map back to device numbers, and nothing else does', () => {
    assert.equal(devnumOfDeviceId(diskIds(51744).device), 51744);
    assert.equal(devnumOfDeviceId('xnblk'), undefined);
    assert.equal(devnumOfDeviceId('xvbd12x'), undefined);
  });
});

describe('diskArgs', () => {
  const parse = (args: string[]) => {
    const out: Array<[string, Record<string, unknown>]> = [];
    for (let i = 0; i < args.length; i += 2) out.push([args[i] as string, JSON.parse(args[i + 1] as string)]);
    return out;
  };

  it('always adds the disk bridge, so a domain without disks can take one later', () => {
    const a = parse(diskArgs([], () => IO));
    assert.equal(a.length, 1);
    assert.deepEqual(a[0], ['-device', { driver: 'pci-bridge', id: 'xnblk', chassis_nr: 30, addr: '0x1e' }]);
  });

  it('one -blockdev before each -device; the CD-ROM controller only with a CD-ROM', () => {
    const plain = parse(diskArgs(placeDisks([disk('xvda'), disk('xvdb')]), () => IO));
    assert.deepEqual(
      plain.map(([flag, o]) => `${flag} ${String(o.driver)}`),
      ['-device pci-bridge', '-blockdev raw', '-device virtio-blk-pci', '-blockdev raw', '-device virtio-blk-pci'],
    );
    const withCd = parse(
      diskArgs(placeDisks([disk('xvda'), disk('hdc', { target: '', devtype: 'cdrom', access: 'ro' })]), () => IO),
    );
    assert.deepEqual(
      withCd.map(([flag, o]) => `${flag} ${String(o.driver)}`),
      // hdc (5632) comes before xvda (51712).
      ['-device pci-bridge', '-device virtio-scsi-pci', '-device scsi-cd', '-blockdev raw', '-device virtio-blk-pci'],
    );
  });

  it('asks for I/O options per disk', () => {
    const seen: string[] = [];
    diskArgs(placeDisks([disk('xvda'), disk('xvdb')]), (p) => {
      seen.push(p.spec.vdev);
      return IO;
    });
    assert.deepEqual(seen, ['xvda', 'xvdb']);
  });
});

describe('DEFAULT_DISK_IO', () => {
  it('is the host page cache with the thread pool, flushes honoured', () => {
    assert.deepEqual({ ...DEFAULT_DISK_IO }, { direct: false, aio: 'threads' });
    const [p] = placeDisks([disk('xvda')]);
    assert.ok(p);
    const o = blockdevOptions(p, DEFAULT_DISK_IO) as { cache: unknown; file: { aio: string } };
    assert.deepEqual(o.cache, { direct: false, 'no-flush': false });
    assert.equal(o.file.aio, 'threads');
  });
});
