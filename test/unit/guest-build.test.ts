// The default guest image: built from Debian packages on first use (needs apt and the
// network once), then served from the cache. These tests read the artifacts with their
// own small ELF and cpio readers, independent of the builder's.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { kernelDependency, parseStanzas } from '../../guest/apt.ts';
import { cacheKey, ensureDefaultGuest, type GuestImage } from '../../guest/build.ts';
import { NewcWriter } from '../../guest/cpio.ts';

const haveApt = existsSync('/usr/bin/apt-get');
const BUILD_TIMEOUT = 300_000;

interface CpioEntry {
  name: string;
  mode: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

function readNewc(buf: Buffer): Map<string, CpioEntry> {
  const out = new Map<string, CpioEntry>();
  let p = 0;
  const align = (n: number) => (n + 3) & ~3;
  for (;;) {
    assert.equal(buf.toString('latin1', p, p + 6), '070701', `newc magic at ${p}`);
    const field = (i: number) => Number.parseInt(buf.toString('latin1', p + 6 + i * 8, p + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const namesize = field(11);
    const name = buf.toString('latin1', p + 110, p + 110 + namesize - 1);
    const dataStart = align(p + 110 + namesize);
    if (name === 'TRAILER!!!') return out;
    out.set(name, {
      name,
      mode,
      rdevMajor: field(9),
      rdevMinor: field(10),
      data: buf.subarray(dataStart, dataStart + size),
    });
    p = align(dataStart + size);
  }
}

/** Notes of an ELF64 LE executable, found through its PT_NOTE program headers. */
function elfNotes(buf: Buffer): Array<{ name: string; type: number; desc: Buffer }> {
  const notes: Array<{ name: string; type: number; desc: Buffer }> = [];
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  for (let i = 0; i < buf.readUInt16LE(0x38); i++) {
    const ph = phoff + i * phentsize;
    if (buf.readUInt32LE(ph) !== 4) continue; // PT_NOTE
    let p = Number(buf.readBigUInt64LE(ph + 8));
    const end = p + Number(buf.readBigUInt64LE(ph + 32));
    while (p + 12 <= end) {
      const [namesz, descsz, type] = [buf.readUInt32LE(p), buf.readUInt32LE(p + 4), buf.readUInt32LE(p + 8)];
      const name = buf.toString('latin1', p + 12, p + 12 + namesz).replace(/\0+$/, '');
      const descAt = p + 12 + ((namesz + 3) & ~3);
      notes.push({ name, type, desc: buf.subarray(descAt, descAt + descsz) });
      p = descAt + ((descsz + 3) & ~3);
    }
  }
  return notes;
}

describe('guest image', { skip: haveApt ? false : 'needs apt-get' }, () => {
  let first: GuestImage;

  it('builds (or finds) the default guest', { timeout: BUILD_TIMEOUT }, async () => {
    first = await ensureDefaultGuest();
    assert.equal(first.readyMarker, 'XENODE-READY');
    assert.match(first.kernelVersion, /^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
    for (const f of [first.kernel, first.vmlinux, first.initrd]) assert.ok(f.startsWith(first.dir), f);
  });

  it('keeps the bzImage as it is', async () => {
    const bz = await readFile(first.kernel);
    assert.equal(bz.toString('latin1', 0x202, 0x206), 'HdrS');
  });

  it('vmlinux is an ELF64 with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, 18)', async () => {
    const elf = await readFile(first.vmlinux);
    assert.deepEqual([...elf.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
    assert.equal(elf[4], 2, 'ELFCLASS64');
    const pvh = elfNotes(elf).find((n) => n.name === 'Xen' && n.type === 18);
    assert.ok(pvh, 'PVH note present');
    const entry = pvh.desc.readUInt32LE(0);
    // A physical address inside the kernel image, which loads at 16 MiB.
    assert.ok(entry >= 0x100000 && entry < 0x10000000, `entry 0x${entry.toString(16)}`);
  });

  it('initrd holds init, console node, busybox and every module it loads', async () => {
    const files = readNewc(await readFile(first.initrd));
    assert.ok(files.has('init'), '/init');
    const console = files.get('dev/console');
    assert.ok(console, '/dev/console');
    assert.equal(console.mode & 0o170000, 0o020000, 'character device');
    assert.deepEqual([console.rdevMajor, console.rdevMinor], [5, 1]);
    const busybox = files.get('bin/busybox');
    assert.ok(busybox && busybox.data.subarray(0, 4).toString('latin1') === '\x7fELF', '/bin/busybox is an ELF');
    for (const f of ['etc/inittab', 'etc/rc', 'etc/acpid.conf', 'etc/acpi/poweroff', 'sbin/acpid', 'bin/cttyhack']) {
      assert.ok(files.has(f), f);
    }
    assert.match(files.get('etc/rc')?.data.toString() ?? '', /XENODE-READY uptime=/);
    // The store channel's client, compiled static (guest/store-client.ts): an executable ELF, no interpreter.
    const client = files.get('bin/xenode-store');
    assert.ok(client && client.data.subarray(0, 4).toString('latin1') === '\x7fELF', '/bin/xenode-store is an ELF');
    assert.equal(client.mode & 0o111, 0o111, 'executable');
    assert.ok(!client.data.includes('/lib64/ld-linux'), 'static: no dynamic loader');
    const modules = (files.get('etc/modules')?.data.toString() ?? '').split('\n').filter((m) => m !== '');
    for (const m of ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_console', 'evdev', 'button']) {
      assert.ok(modules.includes(m), `${m} in /etc/modules`);
    }
    // Dependencies come first.
    assert.ok(modules.indexOf('virtio_ring') < modules.indexOf('virtio'));
    assert.ok(modules.indexOf('failover') < modules.indexOf('net_failover'));
    assert.ok(modules.indexOf('net_failover') < modules.indexOf('virtio_net'));
    for (const m of modules) {
      const ko = files.get(`lib/modules/${first.kernelVersion}/${m}.ko`);
      assert.ok(ko && ko.data.subarray(0, 4).toString('latin1') === '\x7fELF', `${m}.ko in the archive`);
    }
  });

  it('a second call is a fast cache hit with the same paths', async () => {
    const t = performance.now();
    const again = await ensureDefaultGuest();
    const ms = performance.now() - t;
    assert.deepEqual(again, first);
    assert.ok(ms < 500, `cache hit took ${ms.toFixed(0)} ms`);
  });

  it('two concurrent builds into an empty cache publish one complete entry', { timeout: BUILD_TIMEOUT }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'xenode-guest-'));
    try {
      // Reuse apt's answer and the downloads of the default cache: this tests the build
      // and publish, not apt.
      const cache = join(first.dir, '..');
      await mkdir(join(dir, 'downloads'));
      await copyFile(join(cache, 'resolved.json'), join(dir, 'resolved.json'));
      for (const deb of await readdir(join(cache, 'downloads'))) {
        if (deb.endsWith('.deb')) await copyFile(join(cache, 'downloads', deb), join(dir, 'downloads', deb));
      }
      const [a, b] = await Promise.all([ensureDefaultGuest({ cacheDir: dir }), ensureDefaultGuest({ cacheDir: dir })]);
      assert.deepEqual(a, b);
      const entries = (await readdir(dir)).filter((n) => n !== 'downloads' && n !== 'resolved.json');
      assert.deepEqual(entries, [a.dir.slice(dir.length + 1)], 'one entry, no temp dirs or locks left');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('guest builder pieces', () => {
  it('reads the kernel package out of the metapackage record', () => {
    const [meta] = parseStanzas(
      'Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n\n',
    );
    assert.ok(meta);
    assert.equal(kernelDependency(meta), 'linux-image-6.1.0-56-cloud-amd64');
  });

  it('cache key changes with the package versions', () => {
    const pkg = { name: 'busybox-static', version: '1', filename: 'pool/b.deb', sha256: 'aa', size: 1 };
    assert.equal(cacheKey([pkg]), cacheKey([{ ...pkg }]));
    assert.notEqual(cacheKey([pkg]), cacheKey([{ ...pkg, version: '2', sha256: 'bb' }]));
  });

  it('writes newc archives with parents first, device nodes and a trailer', () => {
    const w = new NewcWriter().file('a/b/c.txt', 'hi').charDevice('dev/console', 0o600, 5, 1).symlink('x', '/a');
    const files = readNewc(w.finish());
    assert.deepEqual([...files.keys()], ['a', 'a/b', 'a/b/c.txt', 'dev', 'dev/console', 'x']);
    assert.equal(files.get('a/b/c.txt')?.data.toString(), 'hi');
    assert.equal(files.get('x')?.data.toString(), '/a');
    assert.equal(files.get('dev/console')?.rdevMajor, 5);
  });
});
