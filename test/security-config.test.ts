// Issue 13, a sponsor's config: host binaries (finding 2), QEMU option injection
// through JSON configs (3), cross-sponsor static_shm (4), bridges (5), admission
// and quotas (9), and 403-vs-404 (11). Every request comes from a sponsor's
// token over the real TCP API; guests are real where the finding needs one.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { type ApiReply, type ConsoleSession, TestHost } from './helpers/host.ts';

let host: TestHost;

const http = (method: string, path: string, token?: string, body?: unknown) => host.api(method, path, token, body);
let alice: string;
let bob: string;

/** A create from xl.cfg text, as the web UI sends it, paused unless asked. */
function create(token: string, text: string, paused = true): Promise<ApiReply> {
  return http('POST', '/v1/domains', token, { configText: text, paused });
}

/** The typed config of an xl.cfg text, as `create -n` prints it (the JSON a client may send). */
async function configJson(text: string): Promise<Record<string, unknown>> {
  const file = host.writeConfig(`j${Date.now()}.cfg`, text);
  return JSON.parse(await host.ok(['create', '-n', file])) as Record<string, unknown>;
}

async function names(token: string): Promise<string[]> {
  return ((await http('GET', '/v1/domains', token)).json as unknown as Array<{ name: string }>).map((d) => d.name);
}

async function ready(name: string): Promise<ConsoleSession> {
  const con = await host.console(name);
  await con.expect(/XENODE-READY/, 120_000);
  await con.expect(new RegExp(`${name}:/# `), 60_000);
  return con;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  bob = (await host.ok(['token', 'create', 'bob'])).trim();
});
after(async () => {
  try {
    execFileSync('ip', ['link', 'del', 'xnsec0'], { stdio: 'ignore' });
  } catch {
    /* not made */
  }
  await host.cleanup();
});

describe('finding 2: a sponsor cannot make the daemon run a host binary', () => {
  it('device_model_override is refused for a sponsor, by the API and by the CLI, and never executed', async () => {
    const marker = join(host.dir, 'dm-ran');
    const dm = host.writeConfig('dm.sh', `#!/bin/sh\ntouch ${marker}\nexit 1\n`);
    chmodSync(dm, 0o755);
    const r = await create(alice, `name = "dm1"\nmemory = 128\ndevice_model_override = "${dm}"\n`);
    assert.equal(r.status, 403, JSON.stringify(r.json));
    assert.match(r.json.error?.message ?? '', /device_model_override names a host binary: only the admin may set it/);
    // The CLI, as the sponsor over TCP: one line, exit 1.
    const cfg = host.writeConfig('dm.cfg', `name = "dm2"\nmemory = 128\ndevice_model_override = "${dm}"\n`);
    const asAlice = new TestHost({ XENODE_URL: `http://127.0.0.1:${host.tcpPort()}`, XENODE_TOKEN: alice });
    const c = await asAlice.xl(['create', '-q', cfg]);
    await asAlice.cleanup();
    assert.equal(c.code, 1);
    assert.equal(c.stderr.trim().split('\n').length, 1, c.stderr);
    assert.match(c.stderr, /only the admin may set it/);
    assert.ok(!existsSync(marker), "the sponsor's binary ran");
    assert.deepEqual(await names(alice), []);
    // The admin keeps xl's freedom: its device model runs (and fails, being no QEMU).
    assert.equal((await host.xl(['create', '-q', cfg])).code, 1);
    assert.ok(existsSync(marker), "the admin's device model did not run");
  });
});

describe('finding 3: no config string becomes a QEMU option', () => {
  const injected = { model: 'virtio-net-pci,romfile=/etc/hostname' };

  it('a JSON config with options in a NIC model is refused for a sponsor and for the admin; no QEMU starts', async () => {
    const base = await configJson('name = "inj"\nmemory = 128\n');
    const qemus = host.qemuPids().length;
    for (const token of [alice, undefined]) {
      const body = { config: { ...base, vif: [injected] }, paused: true };
      const r = token ? await http('POST', '/v1/domains', token, body) : undefined;
      if (r) {
        assert.equal(r.status, 400, JSON.stringify(r.json));
        assert.match(r.json.error?.message ?? '', /\/vif\/0\/model: unknown NIC model/);
      }
    }
    // The admin over the local socket, through the CLI's own path (a JSON config).
    const local = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          socketPath: host.socket,
          path: '/v1/domains',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ config: { ...base, vif: [injected] }, paused: true }));
    });
    assert.equal(local, 400);
    assert.equal(host.qemuPids().length, qemus, 'a QEMU was started');
    assert.ok(!(await names(alice)).includes('inj'));
  });

  it('other JSON values the xl.cfg path refuses are refused too (relative paths, bad vdev, bad MAC, duplicates)', async () => {
    const base = await configJson('name = "inj2"\nmemory = 128\n');
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ kernel: 'vmlinuz' }, /\/kernel: path 'vmlinuz' must be absolute/],
      [{ kernel: '/boot/../etc/shadow' }, /not in normal form/],
      [
        { disk: [{ target: '/x.img', format: 'raw', vdev: 'xvdb,file=/etc/shadow', access: 'ro', devtype: 'disk' }] },
        /\/disk\/0\/vdev: invalid vdev/,
      ],
      [{ vif: [{ mac: '01:00:00:00:00:01' }] }, /\/vif\/0\/mac: .*multicast/],
      [{ vif: [{ bridge: 'br0,id=x' }] }, /\/vif\/0\/bridge: invalid bridge name/],
      [{ vif: [{ ip: '10.0.0.1,10.0.0.2' }] }, /\/vif\/0\/ip: invalid address list/],
      [{ memory: 512, maxmem: 256 }, /\/maxmem: 256 MiB is less than memory/],
    ];
    for (const [patch, re] of bad) {
      const r = await http('POST', '/v1/domains', alice, { config: { ...base, ...patch }, paused: true });
      assert.equal(r.status, 400, `${JSON.stringify(patch)}: ${JSON.stringify(r.json)}`);
      assert.match(r.json.error?.message ?? '', re);
    }
    assert.deepEqual(await names(alice), []);
  });

  it('a model from the table still takes effect: the guest sees an e1000 NIC', async () => {
    const base = await configJson('name = "nic-e1000"\nmemory = 128\n');
    const r = await http('POST', '/v1/domains', alice, { config: { ...base, vif: [{ model: 'e1000' }] } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const con = await ready('nic-e1000');
    // Intel 82540EM: vendor 0x8086, device 0x100e.
    const ids = await con.run('cat /sys/bus/pci/devices/*/device | sort | tr "\\n" " "');
    assert.match(ids, /0x100e/);
    con.close();
    assert.equal((await http('POST', '/v1/domains/nic-e1000/destroy', alice)).status, 200);
  });
});

describe('finding 4: static_shm regions are per sponsor', () => {
  it("bob cannot borrow alice's region; his own id of the same name is a region of his own", async () => {
    const shm = (role: string) => `static_shm = ["id=r1, begin=0x100000, size=0x100000, role=${role}"]\n`;
    const a = await create(alice, `name = "shm-a"\nmemory = 128\n${shm('owner')}`, false);
    assert.equal(a.status, 200, JSON.stringify(a.json));
    const ca = await ready('shm-a');
    assert.equal(await ca.run("xenode-shm write r1 64 'alice-secret'; echo rc=$?"), 'rc=0');
    const steal = await create(bob, `name = "shm-b"\nmemory = 128\n${shm('borrower')}`, false);
    assert.notEqual(steal.status, 200, "bob borrowed alice's region");
    assert.match(steal.json.error?.message ?? '', /static_shm 'r1' has no owner/);
    const own = await create(bob, `name = "shm-b"\nmemory = 128\n${shm('owner')}`, false);
    assert.equal(own.status, 200, JSON.stringify(own.json));
    const cb = await ready('shm-b');
    assert.doesNotMatch(await cb.run('xenode-shm read r1 64 12'), /alice-secret/);
    const bobsView = (await http('GET', '/v1/shm', bob)).json as unknown as Array<{ sponsor: string }>;
    assert.deepEqual(
      bobsView.map((r) => r.sponsor),
      ['bob'],
    );
    ca.close();
    cb.close();
    await http('POST', '/v1/domains/shm-a/destroy', alice);
    await http('POST', '/v1/domains/shm-b/destroy', bob);
  });
});

describe('finding 5: bridge= needs the admin', () => {
  it("a sponsor's bridge= is refused with the same words whether the bridge exists or not, until the admin opens it", async () => {
    execFileSync('ip', ['link', 'add', 'xnsec0', 'type', 'bridge']);
    const there = await create(alice, 'name = "br1"\nmemory = 128\nvif = ["bridge=xnsec0"]\n');
    const absent = await create(alice, 'name = "br1"\nmemory = 128\nvif = ["bridge=xnnone9"]\n');
    assert.equal(there.status, 403, JSON.stringify(there.json));
    assert.equal(absent.status, 403, JSON.stringify(absent.json));
    assert.equal(
      there.json.error?.message?.replace('xnsec0', 'X'),
      absent.json.error?.message?.replace('xnnone9', 'X'),
    );
    // xl's usual bridge=xenbr0 puts a sponsor on Xenode's switch.
    const sw = await create(alice, 'name = "br2"\nmemory = 128\nvif = ["bridge=xenbr0"]\n');
    assert.equal(sw.status, 200, JSON.stringify(sw.json));
    const hot = await http('POST', '/v1/domains/br2/net', alice, { spec: 'bridge=xnsec0' });
    assert.equal(hot.status, 403, JSON.stringify(hot.json));
    await host.ok(['quota-set', 'alice', 'bridges=xnsec0']);
    const opened = await create(alice, 'name = "br1"\nmemory = 128\nvif = ["bridge=xnsec0"]\n');
    assert.equal(opened.status, 200, JSON.stringify(opened.json));
    assert.match(execFileSync('ip', ['-o', 'link', 'show', 'master', 'xnsec0'], { encoding: 'utf8' }), /vif\d+\.0/);
    const named = await create(bob, 'name = "br3"\nmemory = 128\nvif = ["vifname=eth0"]\n');
    assert.equal(named.status, 403);
    await http('POST', '/v1/domains/br1/destroy', alice);
    await http('POST', '/v1/domains/br2/destroy', alice);
    await host.ok(['quota-set', 'alice', 'bridges=none']);
  });
});

describe('finding 9: admission and quotas', () => {
  it('the host refuses memory it cannot back, for the admin too; a sponsor gets no more vCPUs than the host has', async () => {
    const qemus = host.qemuPids().length;
    const big = await create(alice, 'name = "big"\nmemory = 400000\nvcpus = 64\n');
    assert.equal(big.status, 507, JSON.stringify(big.json));
    const mine = await host.xl(['create', '/dev/null', 'name="big"', 'memory=400000']);
    assert.equal(mine.code, 1);
    assert.match(mine.stderr, /this host cannot back 400000 MiB for domain big/);
    // Memory a domain grows into is host memory too: mem-set cannot promise what the host lacks.
    const grow = await create(alice, 'name = "grow"\nmemory = 128\nmaxmem = 400000\n', false);
    assert.equal(grow.status, 200, JSON.stringify(grow.json));
    const set = await http('POST', '/v1/domains/grow/mem-set', alice, { mib: 390000 });
    assert.equal(set.status, 507, JSON.stringify(set.json));
    assert.match(set.json.error?.message ?? '', /this host cannot back 389872 MiB more for domain grow/);
    await http('POST', '/v1/domains/grow/destroy', alice);
    // A static_shm region is host memory as well.
    const shm = await create(
      alice,
      'name = "shmbig"\nmemory = 128\nstatic_shm = ["id=big, begin=0x100000000, size=0x8000000000, role=owner"]\n',
    );
    assert.equal(shm.status, 507, JSON.stringify(shm.json));
    const cpus = await create(alice, 'name = "cpus"\nmemory = 128\nvcpus = 64\n');
    assert.equal(cpus.status, 507, JSON.stringify(cpus.json));
    assert.match(cpus.json.error?.message ?? '', /64 vCPUs are more than this host's \d+ CPUs/);
    assert.equal(host.qemuPids().length, qemus, 'a QEMU was started');
  });

  it('per-sponsor limits on domains, memory and vCPUs hold, also against racing creates and mem-max', async () => {
    await host.ok(['quota-set', 'bob', 'domains=2', 'memory=512', 'vcpus=2']);
    const racing = await Promise.all([1, 2, 3, 4, 5].map((i) => create(bob, `name = "q${i}"\nmemory = 128\n`)));
    assert.equal(racing.filter((r) => r.status === 200).length, 2, JSON.stringify(racing.map((r) => r.status)));
    const over = racing.find((r) => r.status !== 200);
    assert.equal(over?.status, 507);
    assert.match(over?.json.error?.message ?? '', /sponsor bob would hold 3 domains, over its limit of 2/);
    const up = (await names(bob))[0] as string;
    const memMax = await http('POST', `/v1/domains/${up}/mem-max`, bob, { mib: 1024 });
    assert.equal(memMax.status, 507, JSON.stringify(memMax.json));
    assert.match(memMax.json.error?.message ?? '', /MiB of memory, over its limit of 512/);
    const list = await host.ok(['quota-list']);
    assert.match(list, /^bob\s+2\/2\s+256\/512\s+2\/2\b/m);
    for (const n of await names(bob)) await http('POST', `/v1/domains/${n}/destroy`, bob);
    await host.ok(['quota-unset', 'bob']);
  });

  it('a sponsor reads only its own limits and cannot set any', async () => {
    const mine = (await http('GET', '/v1/quotas', alice)).json as unknown as Array<{ sponsor: string }>;
    assert.deepEqual(
      mine.map((q) => q.sponsor),
      ['alice'],
    );
    assert.equal((await http('PUT', '/v1/quotas/alice', alice, { domains: 100 })).status, 403);
  });
});

describe("finding 11: another sponsor's domain is answered as one that does not exist", () => {
  it('404 with the same words as a name nobody uses', async () => {
    const r = await create(alice, 'name = "hidden1"\nmemory = 128\n');
    assert.equal(r.status, 200, JSON.stringify(r.json));
    for (const [method, suffix] of [
      ['GET', ''],
      ['POST', '/destroy'],
      ['POST', '/pause'],
      ['GET', '/vcpus'],
    ] as const) {
      const theirs = await http(method, `/v1/domains/hidden1${suffix}`, bob);
      const nobody = await http(method, `/v1/domains/nosuch1${suffix}`, bob);
      assert.equal(theirs.status, 404, suffix);
      assert.equal(
        theirs.json.error?.message?.replace('hidden1', 'X'),
        nobody.json.error?.message?.replace('nosuch1', 'X'),
      );
    }
    // A MAC in use by another sponsor's domain: refused without naming that domain.
    const mac = await create(alice, 'name = "macowner"\nmemory = 128\nvif = ["mac=00:16:3e:11:22:33"]\n');
    assert.equal(mac.status, 200, JSON.stringify(mac.json));
    const clash = await create(bob, 'name = "macclash"\nmemory = 128\nvif = ["mac=00:16:3e:11:22:33"]\n');
    assert.equal(clash.status, 409, JSON.stringify(clash.json));
    assert.match(clash.json.error?.message ?? '', /already used on this host/);
    assert.doesNotMatch(JSON.stringify(clash.json), /macowner|alice/);
    await http('POST', '/v1/domains/macowner/destroy', alice);
    await http('POST', '/v1/domains/hidden1/destroy', alice);
  });
});

describe("a sponsor's host files without storage pools", () => {
  it('/etc/shadow as a disk or a kernel is refused before anything reads it', async () => {
    for (const line of ['disk = ["/etc/shadow,raw,xvdb,r"]', 'kernel = "/etc/shadow"', 'ramdisk = "/etc/shadow"']) {
      const r = await create(alice, `name = "sh"\nmemory = 128\n${line}\n`);
      assert.ok(r.status === 403 || r.status === 404, `${line}: ${JSON.stringify(r.json)}`);
      assert.doesNotMatch(JSON.stringify(r.json), /not a kernel|bzImage|ELF|does not exist|not found/);
    }
    assert.ok(existsSync('/etc/shadow') && readFileSync('/etc/hostname', 'utf8').length > 0);
    assert.deepEqual(await names(alice), []);
  });
});
