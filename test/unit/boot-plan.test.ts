// The boot plan's kernel command line: what Xenode adds for the default guest and
// for TCG, and that a user's own kernel gets only the accelerator's part.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { resolveBoot } from '../../src/toolstack/boot-plan.ts';

const config = (text: string) =>
  loadConfigText(`name = "bp"\nmemory = 256\n${text}`, { file: 'bp.cfg', baseDir: '/', checkFiles: false }).config;
const TCG = { accel: 'tcg' as const, reason: 'test' };
const KVM = { accel: 'kvm' as const, reason: 'test' };
const words = (cmdline: string) => cmdline.split(' ');

describe('boot plan command line', () => {
  it('default guest under TCG: self-tests skipped, LOCK prefixes kept, TSC rate given', async () => {
    const { plan } = await resolveBoot(config(''), TCG);
    const w = words(plan.cmdline);
    for (const x of ['console=ttyS0', 'xenode.name=bp', 'cryptomgr.notests', 'initcall_blacklist=crypto_kdf108_init']) {
      assert.ok(w.includes(x), `${x} in ${plan.cmdline}`);
    }
    assert.ok(w.includes('noreplace-smp'), plan.cmdline);
    assert.ok(w.includes('no_timer_check'), 'a late timer under load must not panic the boot');
    assert.match(plan.cmdline, /(^| )tsc_early_khz=\d+( |$)/);
    assert.equal(plan.cpu, 'Nehalem,+rdrand');
  });

  it('under KVM the TCG-only words are left out', async () => {
    const { plan } = await resolveBoot(config(''), KVM);
    assert.ok(!words(plan.cmdline).includes('noreplace-smp'), plan.cmdline);
    assert.ok(!words(plan.cmdline).includes('no_timer_check'), plan.cmdline);
    assert.doesNotMatch(plan.cmdline, /tsc_early_khz/);
    assert.ok(words(plan.cmdline).includes('cryptomgr.notests'), 'a property of the default guest, not of TCG');
  });

  it("a user's own kernel keeps its command line; only the accelerator's words are added", async () => {
    const { plan } = await resolveBoot(config('kernel = "/boot/vmlinuz"\nextra = "root=/dev/vda ro"\n'), TCG);
    const w = words(plan.cmdline);
    assert.ok(!w.includes('cryptomgr.notests') && !w.includes('initcall_blacklist=crypto_kdf108_init'), plan.cmdline);
    assert.ok(w.includes('noreplace-smp'));
    assert.equal(w.at(-2), 'root=/dev/vda');
    assert.equal(w.at(-1), 'ro', 'the config comes last, so it can override what Xenode adds');
  });
});
