// Disk limits (issue 16): the Xenode extension of the xl disk spec (QEMU's
// throttle names: bps, bps_rd, iops_wr, bps_max, bps_max_length, iops_size),
// its refusals with file:line, the JSON checks of save files and the API, and
// the QEMU objects the engine renders from it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configProblem } from '../../src/config/config-check.ts';
import { parseDiskSpec } from '../../src/config/disk.ts';
import {
  formatThrottle,
  parseThrottleWords,
  THROTTLE_KEYS,
  THROTTLE_VALUE_MAX,
} from '../../src/config/disk-throttle.ts';
import { mergeConfigs, parseConfig, parseOverrides } from '../../src/config/parser.ts';
import type { DiskSpec } from '../../src/config/types.ts';
import { configToJson, validateConfig } from '../../src/config/validate.ts';
import { deviceOptions, diskArgs, placeDisks } from '../../src/engine/disk-args.ts';
import { qemuThrottleLimits, throttleFromQemu } from '../../src/engine/disk-throttle.ts';
import { XenodeError } from '../../src/errors.ts';

const base = { baseDir: '/srv/vm' };
const M = 1024 * 1024;

function refusal(fn: () => unknown): XenodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof XenodeError, `not a XenodeError: ${String(e)}`);
    return e;
  }
  assert.fail('expected a refusal');
}

/** A config file's disk list through the whole config path (file:line errors). */
function load(diskLine: string) {
  const text = `name = "t"\nmemory = 128\n${diskLine}\n`;
  return validateConfig(mergeConfigs(parseConfig(text, 'vm.cfg'), parseOverrides([])), {
    file: 'vm.cfg',
    baseDir: '/etc/xen',
    checkFiles: false,
    cwd: '/',
  });
}

describe('disk spec throttle keys', () => {
  it('existing specs parse exactly as before: no throttle field at all', () => {
    for (const spec of [
      '/dev/vg/guest-volume,raw,xvda,rw',
      'format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume',
      'file:/srv/cd.iso,hdc:cdrom,r',
      ',,hdc:cdrom,r',
      'tap:qcow2:/srv/a.qcow2,xvda,w',
      '/srv/a.img,raw,xvda,w,discard',
      'vdev=xvda, target=/srv/with,comma and space.img',
    ]) {
      const d = parseDiskSpec(spec, base) as DiskSpec & Record<string, unknown>;
      assert.ok(!('throttle' in d), `${spec} grew a throttle field`);
      assert.deepEqual(Object.keys(d).sort(), ['access', 'devtype', 'format', 'target', 'vdev']);
    }
  });

  it('takes bytes/s with binary suffixes and operations/s, anywhere before target=', () => {
    const d = parseDiskSpec('/srv/a.img,raw,xvdb,rw,bps=10M,iops=500', base);
    assert.deepEqual(d.throttle, { bps: 10 * M, iops: 500 });
    const e = parseDiskSpec(
      'vdev=xvdb, bps_rd=1M/s, bps_wr=512K, iops=100, iops_max=200, iops_max_length=10, iops_size=4K, target=/srv/a,b.img',
      base,
    );
    assert.equal(e.target, '/srv/a,b.img');
    assert.deepEqual(e.throttle, {
      bps_rd: M,
      bps_wr: 512 * 1024,
      iops: 100,
      iops_max: 200,
      iops_max_length: 10,
      iops_size: 4096,
    });
    assert.deepEqual(parseDiskSpec('/a,raw,xvdb,bps=2G,bps_max=3G,bps_max_length=5s', base).throttle, {
      bps: 2 * 1024 * M,
      bps_max: 3 * 1024 * M,
      bps_max_length: 5,
    });
  });

  it('0 means no limit, as in QEMU: the key is left out', () => {
    const d = parseDiskSpec('/a,raw,xvdb,bps=0,iops=0', base);
    assert.ok(!('throttle' in d));
    assert.deepEqual(parseDiskSpec('/a,raw,xvdb,bps=0,iops=7', base).throttle, { iops: 7 });
  });

  it('a CD-ROM with an image may be limited; an empty one has nothing to limit', () => {
    assert.deepEqual(parseDiskSpec('/cd.iso,raw,hdc:cdrom,r,bps_rd=1M', base).throttle, { bps_rd: M });
    assert.match(refusal(() => parseDiskSpec(',,hdc:cdrom,r,bps=1M', base)).message, /empty CD-ROM/);
  });

  const bad: [string, RegExp][] = [
    ['bps=ten', /invalid bps 'ten'/],
    ['bps=-1', /invalid bps '-1'/],
    ['bps=1.5M', /invalid bps '1.5M'/],
    ['bps=10X', /invalid bps '10X'/],
    ['bps=', /invalid bps ''/],
    ['iops=10M', /invalid iops '10M'/],
    ['bps=1000000T', /bps .* over QEMU's limit of 1000000000000000/],
    ['iops=99999999999999999999', /iops .* over QEMU's limit/],
    [`bps=${'9'.repeat(400)}`, /invalid bps '9{20}/],
    ['bps=1M,bps_rd=1M', /bps and bps_rd cannot be used together/],
    ['iops_wr=5,iops=1', /iops and iops_wr cannot be used together/],
    ['bps_rd=1M,bps_rd_max=2M,bps=1M', /bps and bps_rd cannot be used together/],
    ['bps_max=2M', /bps_max needs bps/],
    ['bps=2M,bps_max=1M', /bps_max \(1M\) is lower than bps \(2M\)/],
    ['bps=1M,bps_max=2M,bps_max_length=0', /bps_max_length must be at least 1/],
    ['iops=1,iops_max_length=5', /iops_max_length needs iops_max/],
    ['bps=1G,bps_max=1T,bps_max_length=1000', /bps_max_length 1000 is too long for bps_max/],
    ['iops_size=4K', /iops_size needs iops, iops_rd or iops_wr/],
    ['bps=1M,bps=2M', /bps given twice/],
  ];
  for (const [keys, re] of bad) {
    it(`refuses ${JSON.stringify(keys.slice(0, 60))}`, () => {
      const e = refusal(() => parseDiskSpec(`/a,raw,xvdb,${keys}`, base));
      assert.equal(e.kind, 'config');
      assert.match(e.message, re);
      assert.ok(e.message.length < 300, 'the message stays short');
    });
  }

  it('names the file and line of the refused disk in a config file', () => {
    const e = refusal(() => load('disk = [ "/a,raw,xvda,rw",\n  "/b,raw,xvdb,rw,bps=4M,bps_wr=1M" ]'));
    assert.match(e.format(), /^vm\.cfg:4:\d+: .*bps and bps_wr cannot be used together/);
    const f = refusal(() => load('disk = [ "/b,raw,xvdb,rw,iops=lots" ]'));
    assert.match(f.format(), /^vm\.cfg:3:\d+: .*invalid iops 'lots'/);
  });

  it('the typed config keeps the limits; its JSON passes the API and save-file check', () => {
    const cfg = load('disk = [ "/b,raw,xvdb,rw,bps_wr=4M,iops=100" ]');
    assert.deepEqual(cfg.disk[0]?.throttle, { bps_wr: 4 * M, iops: 100 });
    const json = JSON.parse(configToJson(cfg));
    assert.equal(configProblem(json), undefined);
  });

  it('JSON that a config file could not produce is refused with its path', () => {
    const cfg = JSON.parse(configToJson(load('disk = [ "/b,raw,xvdb,rw" ]')));
    const withT = (t: unknown) => ({ ...cfg, disk: [{ ...cfg.disk[0], throttle: t }] });
    assert.match(configProblem(withT({ bps: 1, bps_rd: 2 })) ?? '', /\/disk\/0\/throttle.*cannot be used together/);
    assert.match(configProblem(withT({ bps: THROTTLE_VALUE_MAX + 1 })) ?? '', /\/disk\/0\/throttle/);
    assert.match(configProblem(withT({ bogus: 1 })) ?? '', /\/disk\/0\/throttle/);
    assert.match(configProblem(withT({ bps: 1.5 })) ?? '', /\/disk\/0\/throttle/);
    assert.match(configProblem(withT({ bps: -1 })) ?? '', /\/disk\/0\/throttle/);
    assert.match(configProblem(withT({ bps_max: 5 })) ?? '', /bps_max needs bps/);
    assert.equal(configProblem(withT({ bps: 5 })), undefined);
  });
});

describe('block-set-throttle words', () => {
  it('parses key=value words with the disk spec syntax; none clears', () => {
    assert.deepEqual(parseThrottleWords(['bps=4M', 'iops_wr=50']), { bps: 4 * M, iops_wr: 50 });
    assert.deepEqual(parseThrottleWords(['none']), {});
    assert.throws(() => parseThrottleWords([]), /give limits/);
    assert.throws(() => parseThrottleWords(['vdev=xvda']), /unknown limit 'vdev'/);
    assert.throws(() => parseThrottleWords(['bps']), /not key=value/);
    assert.throws(() => parseThrottleWords(['none', 'bps=1']), /none.*alone/);
    assert.throws(() => parseThrottleWords(['bps=1M', 'bps_rd=1']), /cannot be used together/);
  });

  it('formats limits back into the same words', () => {
    const t = { bps: 4 * M, bps_max: 6 * M + 1, bps_max_length: 3, iops: 100, iops_size: 4096 };
    assert.equal(formatThrottle(t), 'bps=4M,iops=100,bps_max=6291457,bps_max_length=3,iops_size=4K');
    assert.deepEqual(parseThrottleWords(formatThrottle(t).split(',')), t);
    assert.equal(formatThrottle({}), '-');
  });
});

describe('engine: throttle groups and filter nodes', () => {
  const spec = (vdev: string, throttle?: DiskSpec['throttle']): DiskSpec => ({
    target: `/srv/${vdev}.img`,
    format: 'raw',
    vdev,
    access: 'rw',
    devtype: 'disk',
    ...(throttle ? { throttle } : {}),
  });

  it('maps every key to QEMU ThrottleLimits, all fields given so nothing old survives a change', () => {
    const l = qemuThrottleLimits({ bps_rd: 5, iops_wr_max: 9, iops_wr: 3, iops_wr_max_length: 2 });
    assert.equal(Object.keys(l).length, THROTTLE_KEYS.length);
    assert.equal(l['bps-read'], 5);
    assert.equal(l['iops-write-max'], 9);
    assert.equal(l['iops-write-max-length'], 2);
    assert.equal(l['bps-total'], 0);
    assert.equal(l['bps-total-max-length'], 1);
    assert.deepEqual(throttleFromQemu(l), { bps_rd: 5, iops_wr: 3, iops_wr_max: 9, iops_wr_max_length: 2 });
  });

  it('each disk gets its own group and a sponsor-share group, stacked over the image', () => {
    const placed = placeDisks([spec('xvda', { bps: 4 * M }), spec('xvdb')]).map((p) => ({
      ...p,
      throttle: { own: p.spec.throttle ?? {}, share: p.devnum === 51712 ? { bps: 1000 } : {} },
    }));
    const args = diskArgs(placed, () => ({ direct: false, aio: 'threads' }));
    const objs = args.flatMap((a, i) => (args[i - 1] === '-object' ? [JSON.parse(a)] : []));
    assert.deepEqual(
      objs.map((o) => [o.id, o['qom-type'], o.limits['bps-total']]),
      [
        ['xvbd51712-lim', 'throttle-group', 4 * M],
        ['xvbd51712-shr', 'throttle-group', 1000],
        ['xvbd51728-lim', 'throttle-group', 0],
        ['xvbd51728-shr', 'throttle-group', 0],
      ],
    );
    const bd = JSON.parse(args[args.indexOf('-blockdev') + 1] as string);
    assert.deepEqual(
      [bd.driver, bd['node-name'], bd['throttle-group'], bd.discard],
      ['throttle', 'xvbd51712-lim', 'xvbd51712-lim', 'unmap'],
    );
    assert.deepEqual([bd.file.driver, bd.file['throttle-group']], ['throttle', 'xvbd51712-shr']);
    assert.deepEqual([bd.file.file.driver, bd.file.file['node-name']], ['raw', 'xvbd51712-fmt']);
    assert.equal(deviceOptions(placed[0] as (typeof placed)[0]).drive, 'xvbd51712-lim');
  });

  it('a disk placed without a plan renders as before, unless its spec has limits', () => {
    const [p] = placeDisks([spec('xvda')]);
    assert.ok(p);
    assert.equal(deviceOptions(p).drive, 'xvbd51712-fmt');
    assert.ok(!diskArgs([p], () => ({ direct: false, aio: 'threads' })).includes('-object'));
    const [q] = placeDisks([spec('xvda', { iops: 9 })]);
    assert.ok(q);
    assert.equal(deviceOptions(q).drive, 'xvbd51712-lim');
  });
});
