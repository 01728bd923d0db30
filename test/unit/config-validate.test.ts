// Key semantics of validateConfig, the disk/vif/static_shm/cpus spec parsers,
// host file checks and loadConfigFile.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Value } from 'typebox/value';
import { expandCpuList, parseCpuList } from '../../src/config/cpulist.ts';
import { parseDiskSpec, vdevNumber } from '../../src/config/disk.ts';
import { renderKeyDocs } from '../../src/config/docs.ts';
import { DomainConfigSchema } from '../../src/config/domain-schema.ts';
import { loadConfigFile, loadConfigText } from '../../src/config/load.ts';
import { mergeConfigs, parseConfig, parseOverrides } from '../../src/config/parser.ts';
import { CONFIG_KEYS, keySpec } from '../../src/config/schema.ts';
import { parseStaticShmSpec } from '../../src/config/shm.ts';
import type { DiskSpec, DomainConfig, StaticShmSpec, VifSpec } from '../../src/config/types.ts';
import { configToJson, validateConfig } from '../../src/config/validate.ts';
import { parseMac, parseVifRate, parseVifSpec } from '../../src/config/vif.ts';
import { XenodeError } from '../../src/errors.ts';

interface Result {
  config: DomainConfig;
  warnings: string[];
}

/** Validates config text without touching the host's files. */
function check(text: string, overrides: string[] = []): Result {
  const warnings: string[] = [];
  const raw = mergeConfigs(parseConfig(text, 'vm.cfg'), parseOverrides(overrides));
  const config = validateConfig(raw, {
    file: 'vm.cfg',
    baseDir: '/etc/xen',
    checkFiles: false,
    cwd: '/home/user',
    warn: (m) => warnings.push(m),
  });
  return { config, warnings };
}

function configErrorOf(fn: () => unknown): XenodeError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof XenodeError, `expected a XenodeError, got ${String(e)}`);
    assert.equal(e.kind, 'config');
    return e;
  }
  assert.fail('expected a config error');
}

const N = 'name = "vm"\n';

describe('defaults and identity', () => {
  it('fills every default for a config that only has a name', () => {
    const { config, warnings } = check(N);
    assert.deepEqual(config, {
      name: 'vm',
      sponsor: 'admin',
      type: 'pvh',
      memory: 256,
      maxmem: 256,
      vcpus: 1,
      maxvcpus: 1,
      cmdline: '',
      on_poweroff: 'destroy',
      on_reboot: 'restart',
      on_crash: 'destroy',
      on_watchdog: 'destroy',
      accel: 'auto',
      machine: 'auto',
      cpu_weight: 256,
      cap: 0,
      disk: [],
      vif: [],
      static_shm: [],
      on_memory_noncompliance: 'report',
    });
    assert.deepEqual(warnings, []);
    assert.ok(Value.Check(DomainConfigSchema, config));
  });

  it('requires a name, naming the file', () => {
    const err = configErrorOf(() => check('memory = 512\n'));
    assert.equal(err.message, "missing mandatory key 'name'");
    assert.deepEqual(err.location, { file: 'vm.cfg' });
    assert.match(err.hint ?? '', /name = "web1"/);
  });

  const names: [string, boolean][] = [
    ['web1', true],
    ['a', true],
    ['Web-1.example_x', true],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['-web', false],
    ['my vm', false],
    ['web/1', false],
    ['', false],
    ['1234', false],
    ['Domain-0', false],
  ];
  for (const [name, ok] of names) {
    it(`${ok ? 'accepts' : 'refuses'} the name ${JSON.stringify(name)}`, () => {
      const text = `name = "${name}"\n`;
      if (ok) assert.equal(check(text).config.name, name);
      else assert.equal(configErrorOf(() => check(text)).location?.line, 1);
    });
  }

  it('normalises a uuid to lower case and refuses a malformed one', () => {
    assert.equal(
      check(`${N}uuid = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"\n`).config.uuid,
      '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
    );
    assert.match(configErrorOf(() => check(`${N}uuid = "3F2504E0-4F89-11D3-9A0C"\n`)).message, /invalid uuid/);
  });

  it('validates the sponsor', () => {
    assert.equal(check(`${N}sponsor = "team_a-1"\n`).config.sponsor, 'team_a-1');
    assert.equal(check(`${N}sponsor = 42\n`).config.sponsor, '42', 'a number is taken as its text for a string key');
    assert.match(configErrorOf(() => check(`${N}sponsor = "Alice"\n`)).message, /invalid sponsor 'Alice'/);
  });
});

describe('memory and CPUs', () => {
  it('refuses memory = 0 on its line, with a hint', () => {
    const err = configErrorOf(() => check(`${N}memory = 0\n`));
    assert.equal(err.message, 'memory must be at least 1 MiB, not 0');
    assert.deepEqual(err.location, { file: 'vm.cfg', line: 2, column: 10 });
    assert.match(err.hint ?? '', /memory = 512/);
  });

  it('derives memory and maxmem from each other', () => {
    assert.deepEqual(
      [check(`${N}memory = 512\n`).config.memory, check(`${N}memory = 512\n`).config.maxmem],
      [512, 512],
    );
    assert.deepEqual(
      [check(`${N}maxmem = 768\n`).config.memory, check(`${N}maxmem = 768\n`).config.maxmem],
      [768, 768],
    );
    const both = check(`${N}memory = 512\nmaxmem = 2048\n`).config;
    assert.deepEqual([both.memory, both.maxmem], [512, 2048]);
  });

  it('refuses maxmem below memory at the maxmem line', () => {
    const err = configErrorOf(() => check(`${N}maxmem = 256\nmemory = 512\n`));
    assert.equal(err.message, 'maxmem (256 MiB) is less than memory (512 MiB)');
    assert.equal(err.location?.line, 2);
  });

  it('reads integers written as strings like strtol(…, 0) and refuses other text', () => {
    assert.equal(check(`${N}memory = "512"\n`).config.memory, 512);
    assert.equal(check(`${N}memory = "0x400"\n`).config.memory, 1024);
    assert.equal(check(`${N}memory = "0100"\n`).config.memory, 64);
    assert.match(
      configErrorOf(() => check(`${N}memory = "512M"\n`)).message,
      /memory must be an integer number of MiB, not "512M"/,
    );
    assert.match(configErrorOf(() => check(`${N}memory = [512]\n`)).message, /not a list/);
    assert.match(configErrorOf(() => check(`${N}memory = "-5"\n`)).message, /at least 1 MiB, not -5/);
  });

  it('bounds vcpus, maxvcpus, cpu_weight and cap', () => {
    const c = check(`${N}vcpus = 2\nmaxvcpus = 8\ncpu_weight = 1024\ncap = 800\n`).config;
    assert.deepEqual([c.vcpus, c.maxvcpus, c.cpu_weight, c.cap], [2, 8, 1024, 800]);
    assert.equal(check(`${N}vcpus = 3\n`).config.maxvcpus, 3);
    assert.match(configErrorOf(() => check(`${N}vcpus = 0\n`)).message, /vcpus must be at least 1/);
    assert.match(
      configErrorOf(() => check(`${N}vcpus = 4\nmaxvcpus = 2\n`)).message,
      /maxvcpus \(2\) is less than vcpus \(4\)/,
    );
    assert.match(configErrorOf(() => check(`${N}cpu_weight = 0\n`)).message, /cpu_weight must be at least 1/);
    assert.match(configErrorOf(() => check(`${N}cpu_weight = 65536\n`)).message, /at most 65535/);
    assert.match(configErrorOf(() => check(`${N}cap = 101\n`)).message, /cap 101% is more than 1 vCPU/);
  });

  it('keeps a cpus string and turns a cpus list into per-vCPU pinning', () => {
    assert.equal(check(`${N}cpus = "0-3,^1"\n`).config.cpus, '0-3,^1');
    const perVcpu = check(`${N}vcpus = 2\ncpus = ["2", "3-8,^5"]\n`).config;
    assert.deepEqual(perVcpu.cpus_per_vcpu, ['2', '3-8,^5']);
    assert.equal(perVcpu.cpus, undefined);
    const extra = check(`${N}cpus = ["0", "1", "2"]\n`);
    assert.deepEqual(extra.config.cpus_per_vcpu, ['0']);
    assert.equal(extra.warnings.length, 1);
    assert.match(extra.warnings[0] ?? '', /vm\.cfg:2:8: cpus lists 3 entries but there are only 1 vCPUs/);
  });

  it('locates a bad entry of a cpus list at the entry', () => {
    const err = configErrorOf(() => check(`${N}cpus = [\n  "0",\n  "3-1",\n]\n`));
    assert.match(err.message, /invalid CPU range '3-1'/);
    assert.deepEqual(err.location, { file: 'vm.cfg', line: 4, column: 3 });
  });
});

describe('type, boot and events', () => {
  it('defaults to pvh and accepts hvm', () => {
    assert.equal(check(N).config.type, 'pvh');
    assert.equal(check(`${N}type = "hvm"\n`).config.type, 'hvm');
  });

  it('runs type=pv as pvh, with a located warning', () => {
    const r = check(`${N}type = "pv"\n`);
    assert.equal(r.config.type, 'pvh');
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0] ?? '', /^vm\.cfg:2:8: type 'pv' runs as 'pvh'/);
  });

  it('maps the deprecated builder and refuses a contradiction with type', () => {
    const hvm = check(`${N}builder = "hvm"\n`);
    assert.equal(hvm.config.type, 'hvm');
    assert.ok(hvm.warnings.some((w) => w.includes("'builder' is deprecated")));
    const generic = check(`${N}builder = "generic"\n`);
    assert.equal(generic.config.type, 'pvh');
    assert.ok(generic.warnings.some((w) => w.includes("type 'pv' runs as 'pvh'")));
    assert.equal(check(`${N}type = "hvm"\nbuilder = "hvm"\n`).config.type, 'hvm');
    assert.match(
      configErrorOf(() => check(`${N}type = "pvh"\nbuilder = "hvm"\n`)).message,
      /contradicting 'builder' and 'type'/,
    );
  });

  it('suggests the closest value of an enumerated key', () => {
    const err = configErrorOf(() => check(`${N}type = "hmv"\n`));
    assert.match(err.hint ?? '', /did you mean 'hvm'\?/);
  });

  const cmdlines: [string, string, number][] = [
    ['cmdline = "console=hvc0"\n', 'console=hvc0', 0],
    ['root = "/dev/xvda1"\n', 'root=/dev/xvda1', 0],
    ['extra = "quiet"\n', 'quiet', 0],
    ['root = "/dev/xvda1"\nextra = "ro quiet"\n', 'root=/dev/xvda1 ro quiet', 0],
    ['extra = "  padded "\n', 'padded', 0],
    ['cmdline = "console=ttyS0"\nroot = "/dev/xvda"\nextra = "x"\n', 'console=ttyS0', 1],
    ['extra = "a"\nextra += " b"\n', 'a b', 0],
  ];
  for (const [text, want, nwarn] of cmdlines) {
    it(`builds the command line ${JSON.stringify(want)} from ${JSON.stringify(text)}`, () => {
      const r = check(N + text);
      assert.equal(r.config.cmdline, want);
      assert.equal(r.warnings.length, nwarn);
    });
  }

  it('resolves relative kernel and ramdisk paths against the config directory', () => {
    const c = check(`${N}kernel = "boot/vmlinuz"\nramdisk = "/abs/initrd"\n`).config;
    assert.equal(c.kernel, '/etc/xen/boot/vmlinuz');
    assert.equal(c.ramdisk, '/abs/initrd');
    assert.equal(
      check(N, ['kernel=bzImage']).config.kernel,
      '/home/user/bzImage',
      'command-line paths are relative to cwd',
    );
    assert.match(configErrorOf(() => check(`${N}kernel = ""\n`)).message, /kernel path is empty/);
  });

  it('accepts every on_* action and refuses unknown ones', () => {
    const c = check(
      `${N}on_poweroff = "preserve"\non_reboot = "rename-restart"\non_crash = "coredump-restart"\non_watchdog = "restart"\n`,
    ).config;
    assert.deepEqual(
      [c.on_poweroff, c.on_reboot, c.on_crash, c.on_watchdog],
      ['preserve', 'rename-restart', 'coredump-restart', 'restart'],
    );
    assert.match(configErrorOf(() => check(`${N}on_crash = "soft-reset"\n`)).message, /invalid on_crash 'soft-reset'/);
    assert.equal(check(`${N}on_soft_reset = "soft-reset"\n`).warnings.length, 1);
  });

  it('accepts the Xenode extensions', () => {
    const c = check(`${N}accel = "kvm"\nmachine = "microvm"\non_memory_noncompliance = "destroy"\n`).config;
    assert.deepEqual([c.accel, c.machine, c.on_memory_noncompliance], ['kvm', 'microvm', 'destroy']);
    assert.match(configErrorOf(() => check(`${N}accel = "hax"\n`)).message, /invalid accel 'hax'/);
  });

  it('accepts firmware=bios|uefi for hvm guests (issue 19), no other firmware', () => {
    assert.equal(check(`${N}type = "hvm"\nfirmware = "bios"\ndisk = ['/a,,hda']\n`).warnings.length, 0);
    assert.equal(check(`${N}type = "hvm"\nfirmware = "uefi"\ndisk = ['/a,,hda']\n`).config.firmware, 'ovmf');
    assert.match(configErrorOf(() => check(`${N}firmware = "uefi"\n`)).message, /applies to type="hvm"/);
    assert.match(
      configErrorOf(() => check(`${N}type = "hvm"\nfirmware = "pvgrub64"\n`)).message,
      /invalid firmware 'pvgrub64'/,
    );
  });

  it('warns that an hvm guest with no disk and no kernel has nothing to boot', () => {
    assert.ok(check(`${N}type = "hvm"\n`).warnings.some((w) => w.includes('nothing to boot')));
  });
});

describe('key table', () => {
  it('refuses an unknown key at the key, suggesting the closest one', () => {
    const err = configErrorOf(() => check(`${N}memroy = 512\n`));
    assert.equal(err.message, "unknown config key 'memroy'");
    assert.deepEqual(err.location, { file: 'vm.cfg', line: 2, column: 1 });
    assert.equal(err.hint, "did you mean 'memory'?");
    assert.equal(configErrorOf(() => check(`${N}on_cash = "destroy"\n`)).hint, "did you mean 'on_crash'?");
    assert.match(configErrorOf(() => check(`${N}frobnicate = 1\n`)).hint ?? '', /docs\/config\.md/);
  });

  it('refuses unsupported keys by name with a hint', () => {
    for (const key of ['pci', 'usbctrl', 'vtpm', 'vfb', 'channel', 'p9', 'bootloader', 'dtdev', 'iomem', 'spice']) {
      const err = configErrorOf(() => check(`${N}${key} = "x"\n`));
      assert.equal(err.message, `config key '${key}' is not supported by Xenode`);
      assert.ok((err.hint ?? '').length > 10, `${key} has a hint`);
    }
  });

  it('accepts Xen-internal keys with one located warning each', () => {
    const r = check(`${N}hap = 1\nmax_grant_frames = 64\nviridian = ["base", "freq"]\n`);
    assert.equal(r.warnings.length, 3);
    assert.match(r.warnings[0] ?? '', /^vm\.cfg:2:1: 'hap' has no effect in Xenode/);
    assert.match(r.warnings[2] ?? '', /^vm\.cfg:4:1: 'viridian'/);
  });

  it("stays quiet about Xen-internal values that match what Xenode does (serial='pty', vnc=0)", () => {
    assert.deepEqual(check(`${N}serial = 'pty'\nvnc = 0\nsdl = 0\n`).warnings, []);
    assert.equal(check(`${N}serial = ['/dev/ttyS0']\n`).warnings.length, 1);
  });

  it('validates the syntax of accepted Xen-internal keys that have one', () => {
    assert.match(configErrorOf(() => check(`${N}boot = "x"\n`)).message, /invalid boot 'x'/);
    assert.match(configErrorOf(() => check(`${N}cpus_soft = "a-b"\n`)).message, /invalid CPU range/);
  });

  it('has unique names, a description for each key and the statuses the docs promise', () => {
    const names = CONFIG_KEYS.map((k) => k.name);
    assert.equal(new Set(names).size, names.length);
    for (const k of CONFIG_KEYS) {
      assert.ok(k.description.length > 5, k.name);
      assert.match(k.name, /^[a-z][._0-9a-z]*$/, `${k.name} must be lexable`);
      if (k.status !== 'supported') assert.ok(k.note, `${k.name} needs a note`);
    }
    assert.equal(keySpec('hap')?.status, 'xen-internal');
    assert.equal(keySpec('pci')?.status, 'unsupported');
    assert.equal(keySpec('memory')?.status, 'supported');
    assert.equal(keySpec('sponsor')?.extension, true);
  });

  it('renders docs listing every key', () => {
    const md = renderKeyDocs();
    for (const k of CONFIG_KEYS) assert.ok(md.includes(`| \`${k.name}\` |`), k.name);
    assert.match(md, /## Refused/);
    assert.match(md, /256 MiB/);
  });

  it('gives every supported DomainConfig field a key', () => {
    const { config } = check(N);
    for (const field of Object.keys(config)) {
      if (field === 'cpus_per_vcpu') continue;
      assert.ok(keySpec(field), `no key for ${field}`);
    }
  });
});

describe('disk specs', () => {
  const base = { baseDir: '/srv/vm' };
  const d = (target: string, vdev: string, extra: Partial<DiskSpec> = {}): DiskSpec => ({
    target,
    format: 'raw',
    vdev,
    access: 'rw',
    devtype: 'disk',
    ...extra,
  });
  const table: [string, DiskSpec][] = [
    ['/dev/vg/guest-volume,raw,xvda,rw', d('/dev/vg/guest-volume', 'xvda')],
    ['/dev/vg/guest-volume,,hda', d('/dev/vg/guest-volume', 'hda')],
    ['format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume', d('/dev/vg/guest-volume', 'hda')],
    ['/img.qcow2,qcow2,xvdb,ro', d('/img.qcow2', 'xvdb', { format: 'qcow2', access: 'ro' })],
    ['/img,raw,xvdb,r', d('/img', 'xvdb', { access: 'ro' })],
    ['/img,raw,xvdb,w', d('/img', 'xvdb')],
    ['file:/srv/a.img,xvda,w', d('/srv/a.img', 'xvda')],
    ['phy:/dev/sdb,xvda,w', d('/dev/sdb', 'xvda')],
    ['tap:aio:/srv/a.img,xvda,w', d('/srv/a.img', 'xvda')],
    ['tap:qcow2:/srv/a.qcow2,xvda,w', d('/srv/a.qcow2', 'xvda', { format: 'qcow2' })],
    ['raw:/srv/a.img,xvda,w', d('/srv/a.img', 'xvda')],
    ['file:/srv/cd.iso,hdc:cdrom,r', d('/srv/cd.iso', 'hdc', { access: 'ro', devtype: 'cdrom' })],
    [',,hdc:cdrom,r', d('', 'hdc', { access: 'ro', devtype: 'cdrom' })],
    ['vdev=xvdc, devtype=cdrom', d('', 'xvdc', { access: 'ro', devtype: 'cdrom' })],
    ['/srv/cd.iso,raw,hdc,ro,cdrom', d('/srv/cd.iso', 'hdc', { access: 'ro', devtype: 'cdrom' })],
    ['images/root.img,raw,xvda', d('/srv/vm/images/root.img', 'xvda')],
    ['../shared/x.img,raw,xvda', d('/srv/shared/x.img', 'xvda')],
    ['vdev=xvda, target=/srv/with,comma and space.img', d('/srv/with,comma and space.img', 'xvda')],
    ['vdev=xvda, target=/srv/trailing.img,', d('/srv/trailing.img', 'xvda')],
    ['  /srv/a.img , raw , xvda , w ', d('/srv/a.img', 'xvda')],
    ['/srv/a.img,raw,d0p1,w', d('/srv/a.img', 'd0p1')],
    ['/srv/a.img,raw,51712,w', d('/srv/a.img', '51712')],
    ['/srv/a.img,raw,xvda,w,discard', d('/srv/a.img', 'xvda')],
  ];
  for (const [spec, want] of table) {
    it(`parses ${JSON.stringify(spec)}`, () => {
      assert.deepEqual(parseDiskSpec(spec, base), want);
    });
  }

  const errors: [string, RegExp][] = [
    ['/srv/a.img', /no vdev/],
    ['/srv/a.img,raw', /no vdev/],
    [',raw,xvda,w', /no target/],
    ['/srv/a.vhd,vhd,xvda', /disk format 'vhd' is not supported/],
    ['/srv/a,qcow,xvda', /'qcow' is not supported/],
    ['/srv/a,qed,xvda', /'qed' is not supported/],
    ['/srv/a,vmdk,xvda', /unknown disk format 'vmdk'/],
    ['/srv/a,raw,vda', /invalid vdev 'vda'/],
    ['/srv/a,raw,xvda0', /invalid vdev 'xvda0'/],
    ['/srv/a,raw,sdq', /invalid vdev 'sdq'/],
    ['/srv/a,raw,xvda,rx', /unknown disk access 'rx'/],
    ['/srv/a,raw,xvda,w,extra', /too many positional parameters/],
    ['/srv/a,raw,xvda,w,colo', /COLO/],
    ['vdev=xvda, vdev=xvdb, target=/a', /vdev given twice/],
    ['format=raw, format=qcow2, vdev=xvda, target=/a', /disk format given twice/],
    ['/a,raw,xvda,devtype=floppy', /unknown disk devtype 'floppy'/],
    ['/a,raw,xvda,flavour=x', /unknown disk parameter 'flavour='/],
    ['iscsi:iqn.x,xvda', /needs a block script/],
    ['weird:/a,xvda', /unknown disk prefix 'weird:'/],
    ['/a,raw,hdc:floppy', /unknown disk type 'floppy'/],
    ['Bad=1,xvda', /bad disk syntax/],
    ['format=empty,vdev=xvda,target=/a', /format 'empty'/],
  ];
  for (const [spec, re] of errors) {
    it(`refuses ${JSON.stringify(spec)}`, () => {
      const err = configErrorOf(() => parseDiskSpec(spec, base));
      assert.match(err.message, re);
      assert.equal(err.location, undefined, 'spec parsers leave the location to the caller');
    });
  }

  it('warns about ignored parameters and about rw cdroms', () => {
    const warnings: string[] = [];
    parseDiskSpec('backendtype=phy, script=block-x, /a,raw,xvda,w', { ...base, warn: (m) => warnings.push(m) });
    parseDiskSpec('/cd.iso,raw,hdc,rw,cdrom', { ...base, warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 3);
    assert.match(warnings[2] ?? '', /cdrom hdc is read-only/);
  });

  const vdevs: [string, number | undefined][] = [
    ['xvda', 51712],
    ['xvdb', 51728],
    ['xvda1', 51713],
    ['xvdp15', (202 << 8) | (15 << 4) | 15],
    ['xvdq', ((1 << 28) | (16 << 8)) >>> 0],
    ['xvdaa', ((1 << 28) | (26 << 8)) >>> 0],
    ['d0p0', 51712],
    ['d16p2', ((1 << 28) | (16 << 8) | 2) >>> 0],
    ['hda', 768],
    ['hdb', 832],
    ['hdc', 5632],
    ['hdd1', 5697],
    ['sda', 2048],
    ['sdb2', 2066],
    ['51712', 51712],
    ['0x10', 16],
    ['xvd', undefined],
    ['xvda0', undefined],
    ['xvda256', undefined],
    ['hde', undefined],
    ['hda64', undefined],
    ['sdq', undefined],
    ['vda', undefined],
    ['', undefined],
    ['d1p256', undefined],
  ];
  for (const [vdev, num] of vdevs) {
    it(`vdev ${JSON.stringify(vdev)} is device ${num}`, () => {
      assert.equal(vdevNumber(vdev), num);
    });
  }

  it('refuses two disks on one device, even spelt differently', () => {
    assert.match(configErrorOf(() => check(`${N}disk = ['/a,,xvda', '/b,,xvda']\n`)).message, /duplicate vdev 'xvda'/);
    const err = configErrorOf(() => check(`${N}disk = ['/a,,xvda',\n  '/b,,d0p0']\n`));
    assert.match(err.message, /vdev 'd0p0' is the same device as 'xvda'/);
    assert.deepEqual(err.location, { file: 'vm.cfg', line: 3, column: 3 });
  });

  it('refuses a disk that is not a list, or a list entry that is a list', () => {
    assert.match(configErrorOf(() => check(`${N}disk = '/a,,xvda'\n`)).message, /disk must be a list/);
    assert.match(configErrorOf(() => check(`${N}disk = [['/a,,xvda']]\n`)).message, /entries must be strings/);
  });
});

describe('vif specs', () => {
  const table: [string, VifSpec][] = [
    ['', {}],
    ['bridge=xenbr0', { bridge: 'xenbr0' }],
    ['mac=00:16:3E:0A:0b:0c', { mac: '00:16:3e:0a:0b:0c' }],
    ['mac=0:16:3e:a:b:c', { mac: '00:16:3e:0a:0b:0c' }],
    ['mac=00-16-3e-00-00-01', { mac: '00:16:3e:00:00:01' }],
    ['ip=10.0.0.2', { ip: '10.0.0.2' }],
    ['ip=10.0.0.2 10.0.0.3/24 fe80::1', { ip: '10.0.0.2 10.0.0.3/24 fe80::1' }],
    ['model=e1000,rate=100Mb/s', { model: 'e1000', rate: '100Mb/s' }],
    ['vifname=web.0, mtu=1400', { vifname: 'web.0', mtu: 1400 }],
    ['bridge=, mac=', {}],
    [' bridge=br0 ,, model=virtio ,', { bridge: 'br0', model: 'virtio' }],
    ['script=vif-bridge,backend=0,type=ioemu,trusted', {}],
  ];
  for (const [spec, want] of table) {
    it(`parses ${JSON.stringify(spec)}`, () => {
      assert.deepEqual(parseVifSpec(spec), want);
    });
  }

  it('warns about every ignored parameter', () => {
    const warnings: string[] = [];
    parseVifSpec('script=vif-bridge,backend=0,type=ioemu,trusted,bridge=x', { warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 4);
  });

  const errors: [string, RegExp][] = [
    ['mac=01:00:5e:00:00:01', /multicast/],
    ['mac=00:00:00:00:00:00', /all zeros/],
    ['mac=00:16:3e:00:00', /invalid MAC address/],
    ['mac=00:16:3e:00:00:0g', /invalid MAC address/],
    ['mac=00:16:3e-00:00:01', /invalid MAC address/],
    ['brige=xenbr0', /unknown vif parameter 'brige'/],
    ['model=virtio-blk', /unknown NIC model/],
    ['rate=10MB', /invalid rate '10MB'/],
    ['rate=10MB/s@1h', /invalid replenishment interval '1h'/],
    ['mtu=9', /invalid mtu '9'/],
    ['mtu=70000', /invalid mtu/],
    ['ip=10.0.0.256', /invalid IP address/],
    ['ip=10.0.0.1/33', /invalid IP address/],
    ['vifname=this-name-is-too-long', /invalid vifname/],
    ['bridge=br 0', /invalid bridge name/],
    ['type=pv', /invalid vif type 'pv'/],
    ['bridge=a,bridge=b', /'bridge' given twice/],
    ['mac', /needs a value/],
    ['accel=x', /not supported/],
    ['colo_sock_mirror_id=1', /COLO/],
  ];
  for (const [spec, re] of errors) {
    it(`refuses ${JSON.stringify(spec)}`, () => {
      assert.match(configErrorOf(() => parseVifSpec(spec)).message, re);
    });
  }

  it('suggests the closest vif key', () => {
    assert.equal(configErrorOf(() => parseVifSpec('brige=x')).hint, "did you mean 'bridge'?");
  });

  const rates: [string, number, number, number][] = [
    ['10MB/s@20ms', 10_000_000, 20_000, 200_000],
    ['100Mb/s', 12_500_000, 50_000, 625_000],
    ['1Gb/s@1s', 125_000_000, 1_000_000, 125_000_000],
    ['1000B/s@2', 1000, 2_000_000, 2000],
    ['8Kb/s@500us', 1000, 500, 0],
    ['5KB/s@3m', 5000, 3000, 15],
  ];
  for (const [rate, bps, us, bpi] of rates) {
    it(`reads rate ${rate}`, () => {
      assert.deepEqual(parseVifRate(rate), { bytesPerSec: bps, intervalUs: us, bytesPerInterval: bpi });
    });
  }
  for (const bad of ['', '@20ms', '0MB/s', '10MB', '10mb/s', '10MB/s@', '10MB/s@0', '10MB/s@5000s', '99999999999B/s']) {
    it(`refuses rate ${JSON.stringify(bad)}`, () => {
      configErrorOf(() => parseVifRate(bad));
    });
  }

  it('canonicalises MACs', () => {
    assert.equal(parseMac('AA:bb:0:1:2:3'), 'aa:bb:00:01:02:03');
  });

  it('refuses two vifs with one MAC, at the second one', () => {
    const err = configErrorOf(() => check(`${N}vif = ['mac=00:16:3e:00:00:01',\n       'mac=00:16:3E:00:00:01']\n`));
    assert.match(err.message, /duplicate MAC address '00:16:3e:00:00:01'/);
    assert.equal(err.location?.line, 3);
  });

  it('locates a vif error at its list entry', () => {
    const err = configErrorOf(() => check(`${N}vif = [ 'bridge=xenbr0', 'mac=nope' ]\n`));
    assert.deepEqual(err.location, { file: 'vm.cfg', line: 2, column: 26 });
  });
});

describe('static_shm specs', () => {
  const table: [string, StaticShmSpec][] = [
    [
      'id=ID1, begin=0x100000, size=0x100000, role=owner, cache_policy=ARM_normal, prot=rw',
      { id: 'ID1', begin: 0x100000, size: 0x100000, offset: 0, role: 'owner', prot: 'rw', cachePolicy: 'ARM_normal' },
    ],
    [
      'id=ID2, offset=0x10000, begin=0x690000, size=0x110000, role=borrower',
      {
        id: 'ID2',
        begin: 0x690000,
        size: 0x110000,
        offset: 0x10000,
        role: 'borrower',
        prot: 'rw',
        cachePolicy: 'x86_normal',
      },
    ],
    [
      'id=a_1,begin=4096,size=8192',
      { id: 'a_1', begin: 4096, size: 8192, offset: 0, role: 'borrower', prot: 'rw', cachePolicy: 'x86_normal' },
    ],
    [
      'id=m, begin=0, size=0x1000, role=master',
      { id: 'm', begin: 0, size: 4096, offset: 0, role: 'owner', prot: 'rw', cachePolicy: 'x86_normal' },
    ],
  ];
  for (const [spec, want] of table) {
    it(`parses ${JSON.stringify(spec)}`, () => {
      assert.deepEqual(parseStaticShmSpec(spec), want);
    });
  }

  const errors: [string, RegExp][] = [
    ['begin=0x1000, size=0x1000', /has no id/],
    ['id=a, size=0x1000', /has no begin/],
    ['id=a, begin=0x1000', /has no size/],
    ['id=a, begin=0x1001, size=0x1000', /begin '0x1001' is not a multiple of 4 KiB/],
    ['id=a, begin=0x1000, size=100', /size '100' is not a multiple of 4 KiB/],
    ['id=a, begin=0x1000, size=0', /size 0/],
    ['id=a, begin=0x1000, size=0x1000, offset=0x10', /offset '0x10' is not a multiple/],
    ['id=a, begin=0x1000, size=0x1000, role=owner, offset=0x1000', /offset is for borrowers only/],
    ['id=a, begin=0x1000, size=0x1000, cache_policy=x86_normal', /cache_policy is for the owner only/],
    ['id=a, begin=0x1000, size=0x1000, role=owner, cache_policy=wc', /invalid static_shm cache_policy/],
    ['id=a, begin=0x1000, size=0x1000, prot=ro', /invalid static_shm prot 'ro'/],
    ['id=a, begin=0x1000, size=0x1000, role=leader', /invalid static_shm role/],
    ['id=a b, begin=0x1000, size=0x1000', /invalid static_shm id/],
    ['id=a, begin=0x1000, end=0x2000', /'end=' is not supported/],
    ['id=a, begin=0x1000, size=0x1000, sise=1', /unknown static_shm parameter 'sise'/],
    ['id=a, id=b, begin=0x1000, size=0x1000', /'id' given twice/],
    ['id=a, begin=one, size=0x1000', /is not a number/],
  ];
  for (const [spec, re] of errors) {
    it(`refuses ${JSON.stringify(spec)}`, () => {
      assert.match(configErrorOf(() => parseStaticShmSpec(spec)).message, re);
    });
  }

  it('refuses a region id used twice in one config', () => {
    const err = configErrorOf(() =>
      check(`${N}static_shm = ["id=r, begin=0x1000, size=0x1000", "id=r, begin=0x4000, size=0x1000"]\n`),
    );
    assert.match(err.message, /static_shm id 'r' appears twice/);
  });
});

describe('cpu lists', () => {
  const lists: [string, number[]][] = [
    ['all', [0, 1, 2, 3, 4, 5, 6, 7]],
    ['0-3', [0, 1, 2, 3]],
    ['0-3,5,^1', [0, 2, 3, 5]],
    ['all,^7', [0, 1, 2, 3, 4, 5, 6]],
    ['^1,1', [1]],
    ['6-12', [6, 7]],
    ['nodes:1', [4, 5, 6, 7]],
    ['all,^node:0', [4, 5, 6, 7]],
  ];
  for (const [spec, cpus] of lists) {
    it(`expands ${spec} on an 8-CPU, 2-node host`, () => {
      assert.deepEqual(
        expandCpuList(parseCpuList(spec), 8, (n) => [n * 4, n * 4 + 1, n * 4 + 2, n * 4 + 3]),
        cpus,
      );
    });
  }
  for (const bad of ['', ',', '^all', '3-1', 'a', '1-', '-1', '0-4096', 'node:', '1,,x']) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      configErrorOf(() => parseCpuList(bad));
    });
  }
});

describe('host file checks', () => {
  let dir = '';
  let bzImage = '';
  let elf = '';
  let text = '';
  let image = '';

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenode-cfg-'));
    const bz = Buffer.alloc(0x400);
    bz.write('HdrS', 0x202, 'latin1');
    bzImage = path.join(dir, 'bzImage');
    fs.writeFileSync(bzImage, bz);
    elf = path.join(dir, 'vmlinux');
    fs.writeFileSync(elf, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(60)]));
    text = path.join(dir, 'notes.txt');
    fs.writeFileSync(text, 'this is not a kernel\n');
    image = path.join(dir, 'root.img');
    fs.writeFileSync(image, Buffer.alloc(4096));
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function load(cfg: string, overrides: string[] = []): Result {
    const file = path.join(dir, 'vm.cfg');
    fs.writeFileSync(file, cfg);
    return loadConfigFile(file, overrides, { cwd: dir });
  }

  it('accepts a bzImage and an ELF kernel, relative to the config file', () => {
    assert.equal(load(`${N}kernel = "bzImage"\n`).config.kernel, bzImage);
    assert.equal(load(`${N}kernel = "${elf}"\nramdisk = "notes.txt"\n`).config.ramdisk, text);
  });

  it("refuses a kernel that is not a kernel, at the kernel's value", () => {
    const err = configErrorOf(() => load(`${N}\nkernel = "${text}"\n`));
    assert.equal(err.message, `'${text}' is not a Linux kernel (no bzImage header or ELF magic)`);
    assert.equal(err.location?.line, 3);
    assert.equal(err.location?.column, 10);
  });

  it('refuses a kernel shorter than the bzImage header', () => {
    const short = path.join(dir, 'short');
    fs.writeFileSync(short, 'Hd');
    assert.match(configErrorOf(() => load(`${N}kernel = "${short}"\n`)).message, /is not a Linux kernel/);
  });

  it('refuses missing kernel, ramdisk and disk target files, and directories', () => {
    assert.equal(
      configErrorOf(() => load(`${N}kernel = "/nonexistent/vmlinuz"\n`)).message,
      "kernel file '/nonexistent/vmlinuz' not found",
    );
    assert.equal(
      configErrorOf(() => load(`${N}kernel = "bzImage"\nramdisk = "initrd.gz"\n`)).message,
      `ramdisk file '${path.join(dir, 'initrd.gz')}' not found`,
    );
    const disk = configErrorOf(() => load(`${N}disk = [ 'root.img,raw,xvda,w',\n  'missing.img,raw,xvdb,w' ]\n`));
    assert.equal(disk.message, `disk target '${path.join(dir, 'missing.img')}' not found`);
    assert.equal(disk.location?.line, 3);
    assert.match(configErrorOf(() => load(`${N}kernel = "."\n`)).message, /is a directory/);
  });

  it('accepts existing disk images and an empty cdrom', () => {
    const { config } = load(`${N}disk = [ 'root.img,raw,xvda,w', ',,hdc:cdrom,r' ]\n`);
    assert.deepEqual(
      config.disk.map((d) => d.target),
      [image, ''],
    );
  });

  it('requires an executable device_model_override', () => {
    assert.match(
      configErrorOf(() => load(`${N}device_model_override = "notes.txt"\n`)).message,
      /cannot execute device model/,
    );
    const qemu = path.join(dir, 'qemu');
    fs.writeFileSync(qemu, '#!/bin/sh\n', { mode: 0o755 });
    assert.equal(load(`${N}device_model_override = "qemu"\n`).config.device_model_override, qemu);
  });

  it('skips file checks when asked to', () => {
    const file = path.join(dir, 'nocheck.cfg');
    fs.writeFileSync(file, `${N}kernel = "/nonexistent"\n`);
    assert.equal(loadConfigFile(file, [], { checkFiles: false }).config.kernel, '/nonexistent');
  });
});

describe('loadConfigFile', () => {
  it('reports a missing file as not-found', () => {
    try {
      loadConfigFile('/nonexistent/vm.cfg', []);
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof XenodeError);
      assert.equal(e.kind, 'not-found');
      assert.equal(e.message, "config file '/nonexistent/vm.cfg' not found");
    }
  });

  it('refuses a directory', () => {
    assert.match(configErrorOf(() => loadConfigFile(os.tmpdir(), [])).message, /is a directory/);
  });

  it('builds a config from arguments alone with /dev/null, as xl does', () => {
    const { config, warnings } = loadConfigFile('/dev/null', ['name=web1', 'memory=512', 'hap=1'], {
      checkFiles: false,
    });
    assert.deepEqual([config.name, config.memory], ['web1', 512]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /^<command line>:3:1: 'hap' has no effect/);
  });

  it('applies overrides after the file and returns located warnings', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xenode-load-'));
    try {
      const file = path.join(dir, 'web.cfg');
      fs.writeFileSync(file, `name = "web1"\nmemory = 256\nvif = ['bridge=xenbr0']\nacpi = 1\n`);
      const { config, warnings } = loadConfigFile(file, ['memory=1024', "vif+=['bridge=xenbr1']"], {
        checkFiles: false,
      });
      assert.equal(config.memory, 1024);
      assert.deepEqual(
        config.vif.map((v) => v.bridge),
        ['xenbr0', 'xenbr1'],
      );
      assert.deepEqual(warnings, [
        `${file}:4:1: 'acpi' has no effect in Xenode: the QEMU machine type (machine=) decides ACPI`,
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads config text given directly (for the API)', () => {
    const { config } = loadConfigText('name = "api1"\nmemory = 300\n', {
      file: '<api>',
      baseDir: '/',
      overrides: ['vcpus=2'],
    });
    assert.deepEqual([config.name, config.memory, config.vcpus], ['api1', 300, 2]);
  });

  it('gives the same JSON for the same config', () => {
    const a = configToJson(check(`${N}memory = 512\n`).config);
    const b = configToJson(check(`memory = 512\n${N}`).config);
    assert.equal(a, b);
    assert.ok(a.startsWith('{\n  "name": "vm",\n  "sponsor": "admin",'));
  });
});
