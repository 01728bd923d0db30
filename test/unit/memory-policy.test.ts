// Memory targets: how they split between balloon and virtio-mem, compliance
// tolerance, deadline syntax, and the device arguments.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { balloonArgs, hotplugArgs, hotplugRegionMiB } from '../../src/engine/memory-args.ts';
import { isValidBarSize, ivshmemArgs, shmSlot } from '../../src/engine/shm-args.ts';
import { verdictLine } from '../../src/features/memory/commands.ts';
import { complies, directionOf, parseDeadlineMs, planTarget, toleranceKiB } from '../../src/features/memory/policy.ts';

const MiB = 1024 * 1024;

describe('planTarget', () => {
  const layout = { bootMiB: 256, hotplugMiB: 768 };

  it('above boot size: balloon fully deflated, virtio-mem plugs the rest', () => {
    assert.deepEqual(planTarget(layout, 768), { balloonBytes: 256 * MiB, hotplugBytes: 512 * MiB });
    assert.deepEqual(planTarget(layout, 1024), { balloonBytes: 256 * MiB, hotplugBytes: 768 * MiB });
  });

  it('at or below boot size: virtio-mem unplugged, the balloon takes the rest', () => {
    assert.deepEqual(planTarget(layout, 256), { balloonBytes: 256 * MiB, hotplugBytes: 0 });
    assert.deepEqual(planTarget(layout, 128), { balloonBytes: 128 * MiB, hotplugBytes: 0 });
  });

  it('plugs whole 2 MiB blocks and never more than the region', () => {
    assert.equal(planTarget(layout, 257).hotplugBytes, 2 * MiB);
    assert.equal(planTarget(layout, 300).hotplugBytes, 44 * MiB);
    assert.equal(planTarget({ bootMiB: 256, hotplugMiB: 100 }, 1024).hotplugBytes, 100 * MiB);
  });

  it('without a hot-plug region, targets above boot stay at boot', () => {
    assert.deepEqual(planTarget({ bootMiB: 512, hotplugMiB: 0 }, 600), { balloonBytes: 512 * MiB, hotplugBytes: 0 });
  });
});

describe('compliance', () => {
  it('tolerance is 2 % of the target, at least 8 MiB', () => {
    assert.equal(toleranceKiB(64 * 1024), 8 * 1024);
    assert.equal(toleranceKiB(4096 * 1024), Math.ceil(4096 * 1024 * 0.02));
  });

  it('shrinking complies at or below target + tolerance; growing at or above target - tolerance', () => {
    const t = 128 * 1024;
    assert.equal(directionOf(t, 768 * 1024), 'down');
    assert.equal(directionOf(768 * 1024, t), 'up');
    assert.ok(complies('down', t, t + 8 * 1024));
    assert.ok(!complies('down', t, t + 8 * 1024 + 1));
    assert.ok(complies('down', t, 100 * 1024));
    assert.ok(complies('up', 768 * 1024, 760 * 1024));
    assert.ok(!complies('up', 768 * 1024, 700 * 1024));
  });
});

describe('parseDeadlineMs', () => {
  it('reads s, ms, m and bare seconds', () => {
    assert.equal(parseDeadlineMs('1s'), 1000);
    assert.equal(parseDeadlineMs('500ms'), 500);
    assert.equal(parseDeadlineMs('2.5s'), 2500);
    assert.equal(parseDeadlineMs('1m'), 60_000);
    assert.equal(parseDeadlineMs('3'), 3000);
  });
  it('refuses anything else', () => {
    for (const bad of ['', 'soon', '-1s', '1h', '0', '1 s s', '1e3'])
      assert.equal(parseDeadlineMs(bad), undefined, bad);
  });
});

describe('device arguments', () => {
  it('balloon with free page reporting, without deflate-on-oom', () => {
    assert.deepEqual(balloonArgs(), ['-device', 'virtio-balloon-pci,id=balloon0,free-page-reporting=on']);
  });

  it('virtio-mem gets its own shared memfd sized to whole blocks', () => {
    assert.equal(hotplugRegionMiB(256, 1024), 768);
    assert.equal(hotplugRegionMiB(256, 257), 0);
    assert.equal(hotplugRegionMiB(256, 259), 2);
    assert.equal(hotplugRegionMiB(512, 512), 0);
    assert.deepEqual(hotplugArgs(768), [
      '-object',
      'memory-backend-memfd,id=mem-hotplug,size=768M,share=on',
      '-device',
      'virtio-mem-pci,id=vmem0,memdev=mem-hotplug,requested-size=0',
    ]);
  });

  it('ivshmem-plain at a fixed slot, the path escaped for QEMU', () => {
    assert.equal(shmSlot(0), 0x10);
    assert.deepEqual(ivshmemArgs('a_1', '/dev/shm/x,y', 4096, shmSlot(2)), [
      '-object',
      'memory-backend-file,id=shm-a_1,mem-path=/dev/shm/x,,y,size=4096,share=on',
      '-device',
      'ivshmem-plain,id=ivshmem-a_1,memdev=shm-a_1,addr=0x12',
    ]);
  });

  it('BAR sizes are powers of two from 4 KiB', () => {
    for (const ok of [4096, 0x100000, 2 ** 33]) assert.ok(isValidBarSize(ok), String(ok));
    for (const bad of [0, 2048, 0x110000, 3 * 4096]) assert.ok(!isValidBarSize(bad), String(bad));
  });
});

describe('verdict lines', () => {
  const base = { targetKiB: 64 * 1024, toleranceKiB: 8192, deadlineMs: 2000, elapsedMs: 2003 };
  it('says what happened, in MiB and seconds', () => {
    assert.equal(
      verdictLine(5, { ...base, complied: false, actualKiB: 569 * 1024, action: 'pause' }),
      'Domain 5 missed its 2 s memory deadline: 569 MiB, target 64 MiB (tolerance 8 MiB); on_memory_noncompliance=pause',
    );
    assert.equal(
      verdictLine(5, { ...base, complied: true, actualKiB: 66 * 1024, action: 'none', elapsedMs: 420 }),
      'Domain 5: memory at 66 MiB (target 64 MiB) after 0.42 s, within its 2 s deadline',
    );
  });
});
