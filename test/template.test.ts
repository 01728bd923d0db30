// Issue 22: templates. A booted guest saved once; creates of the same guest start
// from it instead of booting. Clones must be unique (random numbers, MACs, host
// names), share the template's memory copy-on-write, and stay a sponsor's own;
// a template whose guest's inputs changed is not used.

import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;
const consoles: ConsoleSession[] = [];

function cfg(name: string, extra = ''): string {
  return host.writeConfig(`${name}.cfg`, `name = "${name}"\nmemory = 128\nvif = ['']\n${extra}`);
}

async function storeRead(path: string): Promise<string | undefined> {
  const r = await host.xl(['store', 'read', path]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Until the guest's agent has registered (it offers control/feature-poweroff), through store watches. */
async function agentUp(dom: string): Promise<void> {
  const domid = (await host.ok(['domid', dom])).trim();
  const key = `/local/domain/${domid}/control/feature-poweroff`;
  const deadline = Date.now() + 120_000;
  while ((await storeRead(key)) !== '1') {
    if (Date.now() > deadline) throw new Error(`no agent in ${dom}\n${host.logTail()}`);
    await host.xl(['store', 'watch', '-n', '2', key], { timeoutMs: 5_000 });
  }
}

async function shell(dom: string): Promise<ConsoleSession> {
  const con = await host.console(dom);
  consoles.push(con);
  await con.expect(/XENODE-READY uptime=/, 120_000);
  return con;
}

/** Resident and proportional memory of a QEMU (smaps_rollup), MiB. */
function rssPss(pid: number): { rss: number; pss: number } {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(t)?.[1] ?? 0);
  return { rss: kb('Rss') / 1024, pss: kb('Pss') / 1024 };
}

function qemuPid(domid: string): number {
  return Number(readFileSync(join(host.dir, 'domains', domid, 'qemu.pid'), 'utf8').trim());
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  await host.ok(['create', cfg('src')]);
  await shell('src');
  await agentUp('src');
});

after(async () => {
  for (const c of consoles) c.close();
  await host?.cleanup();
});

describe('templates', () => {
  it('template create DOMAIN makes one from a running domain, which keeps running', async () => {
    const r = await host.xl(['template', 'create', 'src', 'web']);
    assert.equal(r.code, 0, r.stderr + host.logTail());
    assert.match(r.stderr, /Template web made from domain src/);
    assert.doesNotMatch(r.stderr, /warning/);
    assert.match(await host.ok(['template', 'list']), /^web\s+admin\s+128\s+\d+\s+\S+\s+ready$/m);
    // Running (r) or idle (b), never paused.
    assert.match(await host.ok(['list', 'src']), /src\s+\d+\s+128\s+1\s+(r-----|-b----)/);
  });

  it('clones start from it, each with its own host name, MAC and random numbers, sharing memory', async () => {
    const seen: Array<{ host: string; mac: string; rand: string; storeMac?: string }> = [];
    for (const name of ['c1', 'c2']) {
      const r = await host.xl(['create', cfg(name)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`Domain ${name} \\(domid \\d+\\) started from template web \\(no boot\\)`));
      const con = await shell(name);
      // The ready line above is the clone's agent's, printed once it has taken the new identity.
      const domid = (await host.ok(['domid', name])).trim();
      seen.push({
        host: await con.run('cat /proc/sys/kernel/hostname'),
        mac: await con.run('cat /sys/class/net/eth0/address'),
        rand: await con.run('head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"'),
        storeMac: await storeRead(`/local/domain/${domid}/device/vif/0/mac`),
      });
    }
    const [a, b] = seen as [(typeof seen)[0], (typeof seen)[0]];
    assert.equal(a.host, 'c1');
    assert.equal(b.host, 'c2');
    // Each guest uses the MAC its domain's vif has (the switch forwards only that one).
    assert.equal(a.mac, a.storeMac);
    assert.equal(b.mac, b.storeMac);
    assert.notEqual(a.mac, b.mac);
    assert.match(a.rand, /^[0-9a-f]{32}$/);
    assert.notEqual(a.rand, b.rand);
    // Copy-on-write: the template's pages the clones only read are counted once for both.
    const [p1, p2] = [
      qemuPid((await host.ok(['domid', 'c1'])).trim()),
      qemuPid((await host.ok(['domid', 'c2'])).trim()),
    ];
    const m1 = rssPss(p1);
    const m2 = rssPss(p2);
    assert.ok(m1.pss < m1.rss - 8 && m2.pss < m2.rss - 8, `no pages shared: ${JSON.stringify({ m1, m2 })}`);
  });

  it("another sponsor neither sees nor uses nor deletes the admin's template", async () => {
    const alice = (await host.ok(['token', 'create', 'alice'])).trim();
    const list = await host.xlAs(alice, ['template', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.doesNotMatch(list.stdout, /web/);
    const del = await host.xlAs(alice, ['template', 'delete', 'web']);
    assert.notEqual(del.code, 0);
    assert.match(del.stderr, /template 'web' does not exist/);
    const adminRef = await host.xlAs(alice, ['template', 'delete', 'admin/web']);
    assert.notEqual(adminRef.code, 0);
    // The same guest, created by alice (paused: only how it starts matters), boots.
    const r = await host.xlAs(alice, ['create', '-p', cfg('a1')]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /template/);
    assert.match(r.stderr, /Domain a1 \(domid \d+\) started on/);
    await host.ok(['destroy', 'a1']);
    // And her own template of a domain of the admin's: that domain does not exist for her.
    const mk = await host.xlAs(alice, ['template', 'create', 'src', 'mine']);
    assert.notEqual(mk.code, 0);
    assert.match(mk.stderr, /invalid domain identifier/);
    assert.match(await host.ok(['template', 'list']), /^web\s/m);
  });

  it('refuses malformed and oversized template names', async () => {
    for (const bad of ['../x', '.hidden', 'a/b', 'x'.repeat(65), 'sp ace']) {
      const r = await host.xl(['template', 'create', 'src', bad]);
      assert.notEqual(r.code, 0, bad);
      assert.match(r.stderr, /invalid template name/, bad);
    }
    const api = await host.api('POST', '/v1/templates', undefined, { name: '../../etc', domain: 'src' });
    assert.equal(api.status, 401);
    const alice = (await host.ok(['token', 'create', 'alice2'])).trim();
    const viaApi = await host.api('POST', '/v1/templates', alice, { name: 'x'.repeat(10_000), domain: 'src' });
    assert.equal(viaApi.status, 400);
    const del = await host.xl(['template', 'delete', '..']);
    assert.notEqual(del.code, 0);
    assert.match(del.stderr, /invalid template name/);
  });

  it("a template from a config is not used once its guest's kernel changes, nor for another machine shape", async () => {
    const g = await ensureDefaultGuest();
    const kernel = join(host.dir, 'vmlinux');
    const initrd = join(host.dir, 'initrd.cpio');
    copyFileSync(g.vmlinux, kernel);
    copyFileSync(g.initrd, initrd);
    const own = `kernel = "${kernel}"\nramdisk = "${initrd}"\ncmdline = "quiet"\n`;
    const mk = await host.xl(['template', 'create', cfg('k0', own), 'kt'], { timeoutMs: 300_000 });
    assert.equal(mk.code, 0, mk.stderr + host.logTail());
    assert.match(mk.stderr, /Template kt made from config/);
    // Same guest: starts from it (paused, so nothing runs).
    const same = await host.xl(['create', '-p', cfg('k1', own)]);
    assert.match(same.stderr, /started from template kt/, same.stderr);
    await host.ok(['destroy', 'k1']);
    // More memory or vCPUs shape another machine: a boot.
    const bigger = await host.xl(['create', '-p', cfg('k2', `${own}vcpus = 2\n`)]);
    assert.match(bigger.stderr, /Domain k2 \(domid \d+\) started on/, bigger.stderr);
    await host.ok(['destroy', 'k2']);
    // A new kernel (here: a new modification time) invalidates it.
    utimesSync(kernel, new Date(), new Date(Date.now() + 5000));
    assert.match(await host.ok(['template', 'list']), /^kt\s.*stale/m);
    const after = await host.xl(['create', '-p', cfg('k3', own)]);
    assert.match(after.stderr, /Domain k3 \(domid \d+\) started on/, after.stderr);
    await host.ok(['destroy', 'k3']);
    await host.ok(['template', 'delete', 'kt']);
    assert.doesNotMatch(await host.ok(['template', 'list']), /^kt\s/m);
  });
});
