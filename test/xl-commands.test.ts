// Issue 19: the xl commands an xl user scripts (trigger, button-press, sysrq,
// qemu-monitor-command, and the answer for commands Xenode does not have),
// against a real default guest.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;

const http = (method: string, path: string, token?: string, body?: unknown) => host.api(method, path, token, body);
let alice: string;
let admin: string;
let con: ConsoleSession;

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  admin = (await host.ok(['token', 'create', 'ops', '--admin'])).trim();
  await host.ok([
    'create',
    host.writeConfig(
      'xc1.cfg',
      'name = "xc1"\nmemory = 160\non_poweroff = "destroy"\ndisk = ["vdev=xvdc,devtype=cdrom,target="]\n',
    ),
  ]);
  con = await host.console('xc1');
  await con.expect(/XENODE-READY/);
  await con.expect(/xc1:\/# /);
});
after(async () => {
  con?.close();
  await host.cleanup();
});

describe('commands Xenode does not have', () => {
  it('says a hypervisor-only command needs Xen, and exits 1', async () => {
    for (const cmd of ['cpupool-list', 'tmem-list', 'psr-cmt-attach', 'pci-assignable-list', 'debug-keys']) {
      const r = await host.xl([cmd]);
      assert.equal(r.code, 1, cmd);
      assert.match(r.stderr, /Xen hypervisor/, cmd);
      assert.doesNotMatch(r.stderr, /unknown command/, cmd);
    }
  });

  it('says an xl command that could exist here is not there yet, and exits 1', async () => {
    const r = await host.xl(['pci-attach', 'xc1', '00:01.0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not implemented in Xenode yet/);
  });

  it('answers a name xl does not know as xl does: command not implemented', async () => {
    const r = await host.xl(['frobnicate']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^command not implemented/m);
  });
});

describe('create -n (dry run)', () => {
  it('needs no host file: missing files become warnings and the config is printed', async () => {
    const cfg = host.writeConfig(
      'dry.cfg',
      'name = "dry"\nmemory = 128\nkernel = "/nonexistent/vmlinuz"\nramdisk = "/nonexistent/initrd"\ndisk = ["/nonexistent/disk.img,raw,xvda,rw"]\n',
    );
    const r = await host.xl(['create', '-n', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { name: string; kernel: string };
    assert.equal(out.name, 'dry');
    assert.equal(out.kernel, '/nonexistent/vmlinuz');
    for (const f of ['vmlinuz', 'initrd', 'disk.img'])
      assert.match(r.stderr, new RegExp(`warning: .*/nonexistent/${f}`));
    assert.doesNotMatch(await host.ok(['list']), /^dry /m);
  });

  it('still refuses what is wrong in the config itself', async () => {
    const r = await host.xl(['create', '-n', host.writeConfig('bad.cfg', 'name = "bad"\nmemory = "lots"\n')]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, '');
  });
});

describe('Domain-0, answered as xl answers it', () => {
  it('domid Domain-0 is 0 and domname 0 is Domain-0', async () => {
    assert.equal((await host.ok(['domid', 'Domain-0'])).trim(), '0');
    assert.equal((await host.ok(['domname', '0'])).trim(), 'Domain-0');
  });

  it('list 0 and list Domain-0 show the Domain-0 row', async () => {
    for (const ref of ['0', 'Domain-0']) {
      const lines = (await host.ok(['list', ref])).trim().split('\n');
      assert.equal(lines.length, 2, ref);
      assert.match(lines[1], /^Domain-0\s+0\s+\d+\s+\d+\s+r-----/, ref);
    }
  });

  it('uptime lists Domain-0 first with the host uptime, and uptime 0 alone', async () => {
    const all = (await host.ok(['uptime'])).trim().split('\n');
    assert.match(all[0], /^Name\s+ID Uptime$/);
    // xl: "%-33s %4d %s" with the hour as %2d (space-padded), e.g. "Domain-0  0  3:04:05".
    assert.match(all[1], /^Domain-0 {29}0 (\d+ days?, )?[ \d]\d:\d\d:\d\d$/);
    assert.match(all.find((l) => l.startsWith('xc1')) ?? '', /^xc1 {30}\s*\d+ [ \d]\d:\d\d:\d\d$/);
    assert.doesNotMatch(all.join('\n'), / 0\d:\d\d:\d\d$/m);
    assert.ok(all.some((l) => /^xc1\s/.test(l)));
    const one = (await host.ok(['uptime', '0'])).trim().split('\n');
    assert.equal(one.length, 2);
    assert.match(one[1], /^Domain-0\s+0 /);
  });

  it('uptime -s prints xl short lines: time, up, name (id)', async () => {
    const lines = (await host.ok(['uptime', '-s'])).trimEnd().split('\n');
    assert.match(lines[0], /^ \d\d:\d\d:\d\d up (\d+ days?, )?[ \d]\d:\d\d, Domain-0 \(0\)$/);
    assert.ok(
      lines.some((l) => /^ \d\d:\d\d:\d\d up [ \d]\d:\d\d, xc1 \(\d+\)$/.test(l)),
      lines.join('\n'),
    );
  });

  it('list -v, -Z, -c and -n add the columns xl adds', async () => {
    const header = 'Name                                        ID   Mem VCPUs\tState\tTime(s)';
    let lines = (await host.ok(['list', '-v'])).split('\n');
    assert.equal(lines[0], `${header}   UUID                            Reason-Code\tSecurity Label`);
    assert.match(lines[1], /^Domain-0 .* 00000000-0000-0000-0000-000000000000 {8}- {16}-$/);
    const row = lines.find((l) => l.startsWith('xc1 ')) ?? '';
    assert.match(row, / [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} {8}- {16}-$/);
    lines = (await host.ok(['list', '-Z'])).split('\n');
    assert.equal(lines[0], `${header}   Security Label`);
    assert.match(lines.find((l) => l.startsWith('xc1 ')) ?? '', /\.\d {16}-$/);
    lines = (await host.ok(['list', '-c'])).split('\n');
    assert.equal(lines[0], `${header}         Cpupool`);
    assert.match(lines.find((l) => l.startsWith('xc1 ')) ?? '', /\.\d {10}Pool-0$/);
    lines = (await host.ok(['list', '-n'])).split('\n');
    assert.equal(lines[0], `${header} NODE Affinity`);
    assert.match(lines.find((l) => l.startsWith('xc1 ')) ?? '', /\.\d all$/);
  });

  it('Domain-0 is refused as a rename target, and cannot be renamed', async () => {
    let r = await host.xl(['rename', 'xc1', 'Domain-0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Domain-0/);
    r = await host.xl(['rename', '0', 'other']);
    assert.equal(r.code, 1);
    assert.equal((await host.ok(['domid', 'xc1'])).trim().length > 0, true);
    const h = await http('POST', '/v1/domains/xc1/rename', admin, { name: 'Domain-0' });
    assert.equal(h.status, 409);
  });
});

describe('sysrq, trigger, qemu-monitor-command on a real guest', () => {
  it('sysrq D h makes the guest kernel print its SysRq help', async () => {
    const from = con.output.length;
    const r = await host.xl(['sysrq', 'xc1', 'h']);
    assert.equal(r.code, 0, r.stderr);
    await con.expect(/sysrq: HELP :/, 30_000, from);
  });

  it('sysrq refuses anything but one letter or digit', async () => {
    for (const k of ['ab', '', '!', 'H\n']) {
      const r = await host.xl(['sysrq', 'xc1', k]);
      assert.equal(r.code, 2, `key ${JSON.stringify(k)}: ${r.stderr}`);
    }
    const h = await http('POST', '/v1/domains/xc1/sysrq', admin, { key: 'ctrl' });
    assert.equal(h.status, 400);
  });

  it('trigger D nmi shows the NMI in the guest dmesg', async () => {
    assert.doesNotMatch(await con.run('dmesg | grep -c "NMI received" || true'), /^[1-9]/);
    const r = await host.xl(['trigger', 'xc1', 'nmi']);
    assert.equal(r.code, 0, r.stderr);
    const deadline = Date.now() + 30_000;
    let out = '';
    while (Date.now() < deadline) {
      out = await con.run('dmesg | grep "NMI received" || true');
      if (/NMI received/.test(out)) break;
    }
    assert.match(out, /NMI received for unknown reason/);
  });

  it('trigger and button-press refuse what QEMU cannot do, and unknown kinds', async () => {
    let r = await host.xl(['trigger', 'xc1', 'sleep']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /sleep/);
    r = await host.xl(['button-press', 'xc1', 'sleep']);
    assert.equal(r.code, 1);
    r = await host.xl(['trigger', 'xc1', 'bogus']);
    assert.equal(r.code, 2);
    r = await host.xl(['button-press', 'xc1', 'reset']);
    assert.equal(r.code, 2);
  });

  it('qemu-monitor-command prints the HMP answer for the admin', async () => {
    const out = await host.ok(['qemu-monitor-command', 'xc1', 'info status']);
    assert.match(out, /VM status: running/);
  });

  it('a sponsor gets 403 for qemu-monitor-command and 404 for another sponsor domain', async () => {
    const asAlice = new TestHost({ XENODE_URL: `http://127.0.0.1:${host.tcpPort()}`, XENODE_TOKEN: alice });
    let h = await http('POST', '/v1/domains/xc1/monitor', alice, { command: 'info status' });
    assert.equal(h.status, 403);
    assert.doesNotMatch(h.text, /VM status/);
    const r = await asAlice.xl(['qemu-monitor-command', 'xc1', 'info status']);
    assert.equal(r.code, 1);
    assert.doesNotMatch(r.stdout, /VM status/);
    for (const [path, body] of [
      ['trigger', { kind: 'nmi' }],
      ['sysrq', { key: 'h' }],
      ['trigger', { kind: 'power' }],
    ] as const) {
      h = await http('POST', `/v1/domains/xc1/${path}`, alice, body);
      assert.equal(h.status, 404, `${path} ${JSON.stringify(body)}`);
      const missing = await http('POST', `/v1/domains/nosuchdom/${path}`, alice, body);
      assert.equal(missing.status, 404);
    }
    // Still running: none of alice's requests reached it.
    assert.match(await host.ok(['qemu-monitor-command', 'xc1', 'info status']), /VM status: running/);
  });

  it('qemu-monitor-command refuses an oversized or non-string command', async () => {
    let h = await http('POST', '/v1/domains/xc1/monitor', admin, { command: 'x'.repeat(5000) });
    assert.equal(h.status, 400);
    h = await http('POST', '/v1/domains/xc1/monitor', admin, { command: 42 });
    assert.equal(h.status, 400);
  });

  it('cd-insert and cd-eject change the medium QEMU gives the guest CD-ROM', async () => {
    const iso = host.writeConfig('disc.iso', 'XENODE-CD'.padEnd(4096, '.'));
    const blockOf = () => host.ok(['qemu-monitor-command', 'xc1', 'info block']);
    assert.doesNotMatch(await blockOf(), /disc\.iso/);
    let r = await host.xl(['cd-insert', 'xc1', 'xvdc', iso]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await blockOf(), /disc\.iso/);
    const cfg = JSON.parse(await host.ok(['list', '-l', 'xc1'])) as Array<{
      config: { disk: Array<{ target: string }> };
    }>;
    assert.equal(cfg[0].config.disk[0].target, iso);
    r = await host.xl(['cd-eject', 'xc1', 'xvdc']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(await blockOf(), /disc\.iso/);
    // Not a CD-ROM / no such vdev / no such file.
    assert.equal((await host.xl(['cd-insert', 'xc1', 'xvdz', iso])).code, 1);
    assert.equal((await host.xl(['cd-insert', 'xc1', 'xvdc', `${iso}.missing`])).code, 1);
  });

  it('a sponsor cannot put a host file into a CD-ROM, nor touch another sponsor domain', async () => {
    const iso = host.writeConfig('secret.iso', 'SECRET'.padEnd(4096, '.'));
    for (const path of ['cd-insert', 'cd-eject']) {
      const h = await http('POST', `/v1/domains/xc1/${path}`, alice, { vdev: 'xvdc', file: iso });
      assert.equal(h.status, 404, path);
    }
    assert.doesNotMatch(
      await host.ok(['qemu-monitor-command', 'xc1', 'info block']),
      /secret\.iso/,
      'the medium changed on a sponsor request',
    );
  });

  it('dump-core writes the guest memory as an ELF core for the admin; a sponsor gets 403', async () => {
    const core = join(host.dir, 'xc1.core');
    const h = await http('POST', '/v1/domains/xc1/dump-core', alice, { file: join(host.dir, 'alice.core') });
    assert.equal(h.status, 403);
    assert.equal(existsSync(join(host.dir, 'alice.core')), false);
    const r = await host.xl(['dump-core', 'xc1', core], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    const head = readFileSync(core).subarray(0, 4);
    assert.deepEqual([...head], [0x7f, 0x45, 0x4c, 0x46]);
    assert.ok(statSync(core).size > 100 * 1024 * 1024, 'the core holds the guest RAM');
    rmSync(core);
    assert.match(await host.ok(['qemu-monitor-command', 'xc1', 'info status']), /VM status: running/);
  });

  it("save D FILE CFG and restore CFG FILE (xl's order) refuse the config file and change nothing", async () => {
    const cfg = host.writeConfig('other.cfg', 'name = "other"\nmemory = 128\n');
    const file = join(host.dir, 'xc1.save');
    let r = await host.xl(['save', 'xc1', file, cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /save with a config file is not supported/);
    assert.equal(existsSync(file), false);
    assert.match(await host.ok(['qemu-monitor-command', 'xc1', 'info status']), /VM status: running/);
    r = await host.xl(['restore', cfg, file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /restore with a config file is not supported/);
  });

  it('trigger D reset resets the guest in place (it boots again)', async () => {
    const from = con.output.length;
    const r = await host.xl(['trigger', 'xc1', 'reset']);
    assert.equal(r.code, 0, r.stderr);
    await con.expect(/XENODE-READY/, 120_000, from);
    await con.expect(/xc1:\/# /, 60_000, from);
    assert.match(await host.ok(['list', 'xc1']), /xc1/);
  });

  it('trigger D power powers it off, and on_poweroff="destroy" removes it', async () => {
    const r = await host.xl(['trigger', 'xc1', 'power']);
    assert.equal(r.code, 0, r.stderr);
    // The daemon closes the console when the domain is destroyed.
    await assert.rejects(con.expect(/NEVER-PRINTED-xc1/, 120_000), /console closed/);
    const l = await host.xl(['list', 'xc1']);
    assert.equal(l.code, 1);
    assert.match(l.stderr, /invalid domain identifier/);
  });
});

describe("a sponsor's own domain", () => {
  it('takes trigger and sysrq from its sponsor, never a host file, the monitor or a core dump', async () => {
    const made = await http('POST', '/v1/domains', alice, {
      configText: 'name = "ac1"\nmemory = 160\ndisk = ["vdev=xvdc,devtype=cdrom,target="]\n',
    });
    assert.equal(made.status, 200, made.text);
    const ac = await host.console('ac1');
    await ac.expect(/XENODE-READY/, 120_000);
    await ac.expect(/ac1:\/# /, 60_000);
    let from = ac.output.length;
    assert.equal((await http('POST', '/v1/domains/ac1/sysrq', alice, { key: 'h' })).status, 200);
    await ac.expect(/sysrq: HELP :/, 30_000, from);
    assert.equal((await http('POST', '/v1/domains/ac1/trigger', alice, { kind: 'nmi' })).status, 200);
    assert.match(await ac.run('dmesg | grep "NMI received" | head -1'), /NMI received/);

    const hostFile = host.writeConfig('host-secret.iso', 'HOST'.padEnd(4096, '.'));
    const ins = await http('POST', '/v1/domains/ac1/cd-insert', alice, { vdev: 'xvdc', file: hostFile });
    // The storage gate's answer: the same for a host file as for a missing one.
    assert.equal(ins.status, 404, ins.text);
    assert.match(ins.text, /is not a volume of yours/);
    assert.doesNotMatch(await host.ok(['qemu-monitor-command', 'ac1', 'info block']), /host-secret/);
    const mon = await http('POST', '/v1/domains/ac1/monitor', alice, { command: 'info status' });
    assert.equal(mon.status, 403);
    const core = join(host.dir, 'ac1.core');
    assert.equal((await http('POST', '/v1/domains/ac1/dump-core', alice, { file: core })).status, 403);
    assert.equal(existsSync(core), false);

    // The worst moment: a trigger for a domain that is being destroyed is refused, never half done.
    from = ac.output.length;
    const [gone, late] = await Promise.all([
      http('POST', '/v1/domains/ac1/destroy', alice),
      http('POST', '/v1/domains/ac1/trigger', alice, { kind: 'nmi' }),
    ]);
    assert.equal(gone.status, 200);
    assert.ok([200, 404, 409].includes(late.status), `late trigger: ${late.status} ${late.text}`);
    ac.close();
    assert.equal((await http('POST', '/v1/domains/ac1/trigger', alice, { kind: 'nmi' })).status, 404);
  });
});
