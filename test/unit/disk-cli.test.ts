// block-list's xl columns, the CLI's canonical disk spec and the API's spec check.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseDiskSpec } from '../../src/config/disk.ts';
import type { DiskSpec } from '../../src/config/types.ts';
import { XenodeError } from '../../src/errors.ts';
import { blockListHeader, blockListRow, canonicalDiskSpec } from '../../src/features/disks/commands.ts';
import { parseApiDiskSpec } from '../../src/features/disks/routes.ts';
import type { BlockEntry } from '../../src/features/disks/views.ts';

describe('block-list output', () => {
  it('prints xl_block.c columns: "%-5s %-3s %-6s %-5s %-6s %-8s %-30s"', () => {
    assert.equal(blockListHeader(), 'Vdev  BE  handle state evt-ch ring-ref BE-path                       ');
    const e: BlockEntry = {
      vdev: 'xvdb',
      devid: 51728,
      backendId: 0,
      handle: 3,
      state: 4,
      evtch: -1,
      ringRef: -1,
      backendPath: '/local/domain/0/backend/vbd/3/51728',
      target: '/srv/a.img',
      format: 'raw',
      access: 'rw',
      devtype: 'disk',
    };
    assert.equal(blockListRow(e), '51728 0   3      4     -1     -1       /local/domain/0/backend/vbd/3/51728');
  });
});

describe('canonical disk spec', () => {
  const vdevs = ['xvda', 'xvdb', 'xvdaa', 'hdc', 'sdb', 'd0p1', '51728'];
  const spec = fc.record<DiskSpec>({
    // Paths with commas, equals signs and colons: target= takes the rest of the string.
    // (xl drops one trailing comma, so a name ending in one cannot be written.)
    target: fc
      .array(fc.constantFrom('a', 'b', ',', '=', ':', ' ', '-', 'x y', '.img'), { minLength: 1, maxLength: 12 })
      .map((parts) => `/srv/${parts.join('')}.img`),
    format: fc.constantFrom('raw', 'qcow2'),
    vdev: fc.constantFrom(...vdevs),
    access: fc.constantFrom('rw', 'ro'),
    devtype: fc.constant('disk'),
  });

  it('parses back to the same disk, whatever the path holds', () => {
    fc.assert(
      fc.property(spec, (d) => {
        assert.deepEqual(parseDiskSpec(canonicalDiskSpec(d), { baseDir: '/' }), { ...d });
      }),
      { numRuns: 300 },
    );
  });

  it('keeps an empty CD-ROM empty', () => {
    const cd: DiskSpec = { target: '', format: 'raw', vdev: 'hdc', access: 'ro', devtype: 'cdrom' };
    assert.deepEqual(parseDiskSpec(canonicalDiskSpec(cd), { baseDir: '/' }), cd);
  });
});

describe('API disk specs', () => {
  it('accepts an absolute target', () => {
    assert.equal(parseApiDiskSpec('/srv/d.img,raw,xvdc,rw', () => {}).target, '/srv/d.img');
  });

  it('refuses a relative target: the daemon has no current directory to resolve it', () => {
    assert.throws(
      () => parseApiDiskSpec('d.img,raw,xvdc,rw', () => {}),
      (e: unknown) => e instanceof XenodeError && /must be an absolute path/.test(e.message),
    );
  });

  it('passes on the parser errors (unknown format)', () => {
    assert.throws(
      () => parseApiDiskSpec('/srv/d.img,vmdk,xvdc,rw', () => {}),
      (e: unknown) => e instanceof XenodeError && e.kind === 'config' && /unknown disk format 'vmdk'/.test(e.message),
    );
  });
});
