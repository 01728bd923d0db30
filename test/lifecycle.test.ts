// Issue: boot a real Linux guest from an xl.cfg file. Real QEMU (TCG here),
// real Debian kernel, driven through the xenode CLI and the console.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest, type GuestImage } from '../guest/build.ts';
import { TestHost } from './helpers/host.ts';

let host: TestHost;
let guest: GuestImage;

before(async () => {
  guest = await ensureDefaultGuest();
  host = new TestHost();
});
after(async () => {
  await host.cleanup();
});

function listNames(out: string): string[] {
  return out
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0]);
}

describe('boot and console', () => {
  it('boots the default guest with 2 vCPUs and answers on the console', async () => {
    const cfg = host.writeConfig('boot.cfg', 'name = "boot1"\nmemory = 256\nvcpus = 2\n');
    const r = await host.xl(['create', cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /tcg/i);
    const con = await host.console('boot1');
    const ready = await con.expect(/XENODE-READY uptime=([\d.]+)/);
    assert.ok(Number(ready[1]) > 0);
    await con.expect(/boot1:\/# /);
    assert.equal(await con.run('uname -r'), guest.kernelVersion);
    assert.equal(await con.run('nproc'), '2');
    const list = await host.ok(['list']);
    assert.ok(listNames(list).includes('boot1'));
    assert.match(list, /^boot1\s+\d+\s+256\s+2\s+[rb-]{2}----/m);
    con.close();
  });

  it('xenode info reports TCG and why', async () => {
    const info = await host.ok(['info']);
    assert.match(info, /^accel\s+: tcg$/m);
    // Why: this workplace's /dev/kvm is kvm_pvm, or there is none at all.
    assert.match(info, /^accel_reason\s+: .*(kvm_pvm|\/dev\/kvm does not exist)/m);
    assert.equal((await host.ok(['info', 'accel'])).trim(), 'tcg');
  });

  it('guest poweroff ends the domain', async () => {
    const con = await host.console('boot1');
    await con.expect(/boot1:\/# /);
    con.send('poweroff\n');
    // The console closes when the domain is destroyed (on_poweroff=destroy).
    for (let i = 0; i < 100 && !con.closed; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(con.closed, 'console should close when the domain goes away');
    assert.ok(!listNames(await host.ok(['list'])).includes('boot1'));
  });

  it('guest reboot with on_reboot="restart" boots it again', async () => {
    const cfg = host.writeConfig('reboot.cfg', 'name = "rb"\nmemory = 256\non_reboot = "restart"\n');
    await host.ok(['create', cfg]);
    const con = await host.console('rb');
    await con.expect(/XENODE-READY/);
    await con.expect(/rb:\/# /);
    const mark = con.output.length;
    con.send('reboot\n');
    await con.expect(/XENODE-READY uptime=/, 60_000, mark);
    const list = await host.ok(['list']);
    assert.ok(listNames(list).includes('rb'));
    const dmesg = await host.ok(['dmesg']);
    assert.match(dmesg, /guest rebooted/);
    assert.equal((dmesg.match(/guest rebooted/g) ?? []).length, 1, 'one reboot logged once');
    con.close();
  });

  it('shutdown -w powers the guest off, through its agent or else ACPI', async () => {
    const con = await host.console('rb');
    await con.expect(/rb:\/# /);
    con.close();
    const r = await host.xl(['shutdown', '-w', 'rb']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Shutting down domain \d+/);
    assert.ok(!listNames(await host.ok(['list'])).includes('rb'));
    // The default guest's agent takes it once it has registered (test/guest-channel.test.ts); ACPI before that.
    assert.match(
      await host.ok(['dmesg']),
      /(ACPI power button pressed|asked the guest's agent to poweroff)[\s\S]*guest powered off/,
    );
  });

  it('destroy kills QEMU and list no longer shows the domain', async () => {
    const cfg = host.writeConfig('d.cfg', 'name = "gone"\nmemory = 256\n');
    await host.ok(['create', cfg]);
    const pids = host.qemuPids();
    assert.equal(pids.length, 1);
    await host.ok(['destroy', 'gone']);
    assert.ok(!listNames(await host.ok(['list'])).includes('gone'));
    assert.throws(() => process.kill(pids[0], 0));
    const r = await host.xl(['destroy', 'gone']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gone is an invalid domain identifier/);
  });
});

describe('bad input gives one clear line and leaves nothing behind', () => {
  const cases: Array<{ name: string; cfg: () => string; re: RegExp }> = [
    {
      name: 'missing kernel file',
      cfg: () => 'name = "e1"\nkernel = "/nonexistent/vmlinuz"\n',
      re: /e\.cfg:2:\d+: .*kernel.*not found/,
    },
    {
      name: 'a file that is not a kernel',
      cfg: () => {
        const p = join(host.dir, 'notakernel');
        writeFileSync(p, 'hello, I am text\n'.repeat(100));
        return `name = "e2"\nkernel = "${p}"\n`;
      },
      re: /e\.cfg:2:\d+: .*not a Linux kernel/,
    },
    { name: 'memory=0', cfg: () => 'name = "e3"\nmemory = 0\n', re: /e\.cfg:2:\d+: .*memory/ },
    {
      name: 'an unknown key',
      cfg: () => 'name = "e4"\nmemroy = 256\n',
      re: /e\.cfg:2:1: unknown config key 'memroy'.*memory/,
    },
    { name: 'a syntax error', cfg: () => 'name = "e5"\nmemory = 256 +\n', re: /e\.cfg:2:\d+: / },
    {
      name: 'a missing QEMU binary',
      cfg: () => 'name = "e6"\ndevice_model_override = "/nonexistent/qemu-system-x86_64"\n',
      re: /(QEMU|device model).*not found/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const cfg = host.writeConfig('e.cfg', c.cfg());
      const before = host.daemonPid();
      const r = await host.xl(['create', cfg]);
      assert.notEqual(r.code, 0);
      const lines = r.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('Parsing config') && !l.startsWith('xenoded was not running'));
      assert.equal(lines.length, 1, `expected one line, got: ${r.stderr}`);
      assert.match(lines[0], c.re);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(host.qemuPids().length, 0, 'no stray QEMU');
      // The daemon is still alive and answering.
      if (before) assert.equal(host.daemonPid(), before);
      assert.equal((await host.xl(['list'])).code, 0);
    });
  }

  it('missing QEMU binary via the daemon environment is reported, no stray process', async () => {
    const h2 = new TestHost({ XENODE_QEMU: '/nonexistent/qemu' });
    try {
      const cfg = h2.writeConfig('q.cfg', 'name = "q"\nmemory = 256\n');
      const r = await h2.xl(['create', cfg]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /QEMU binary '\/nonexistent\/qemu' not found/);
      assert.equal((await h2.xl(['list'])).code, 0);
      assert.equal(h2.qemuPids().length, 0);
    } finally {
      await h2.cleanup();
    }
  });
});
