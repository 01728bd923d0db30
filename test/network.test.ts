// Issue: networks for domains. Real guests on Xenode's switch (a process of its
// own), the host port (a TAP), sponsor isolation, switch restart, NIC hotplug,
// a vif on a Linux bridge, and the errors a user can cause.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { createConnection } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { NetStatus, VifView } from '../src/features/network/manager.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

// A host port and subnets of this test's own, so a default xn0 elsewhere is never disturbed.
const TAG = String(process.pid % 100000);
const HOST_TAP = `xnt${TAG}`;
const NET = '10.231.0';
const BRIDGE = `xnbr${TAG}`;
const BR_NET = '10.232.0';
const root = process.getuid?.() === 0;

let host: TestHost;
const cons = new Map<string, ConsoleSession>();

function api<T>(path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: host.socket, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(JSON.parse(body) as T));
    });
    req.on('error', reject);
    req.end();
  });
}

async function vifs(dom: string): Promise<VifView[]> {
  return (await api<{ vifs: VifView[] }>(`/v1/domains/${dom}/net`)).vifs;
}

async function boot(name: string, extra: string): Promise<void> {
  const cfg = host.writeConfig(`${name}.cfg`, `name = "${name}"\nmemory = 256\n${extra}\n`);
  const r = await host.xl(['create', cfg]);
  assert.equal(r.code, 0, r.stderr);
}

async function ready(name: string): Promise<ConsoleSession> {
  const c = await host.console(name);
  await c.expect(/XENODE-READY/, 120_000);
  await c.expect(new RegExp(`${name}:/# `), 60_000);
  cons.set(name, c);
  return c;
}

function con(name: string): ConsoleSession {
  const c = cons.get(name);
  assert.ok(c, `no console for ${name}`);
  return c;
}

/** Received count of `ping -c N` (busybox: "N packets transmitted, M packets received"). */
async function ping(from: string, to: string, count = 3, iface = ''): Promise<number> {
  const out = await con(from).run(`ping -c ${count} -W 2 ${iface ? `-I ${iface} ` : ''}${to}`, 60_000);
  const m = /(\d+) packets received/.exec(out);
  assert.ok(m, out);
  return Number(m[1]);
}

/** Wait in the guest until something listens on TCP `port`. */
function listening(port: number): string {
  return `for i in $(seq 100); do netstat -ltn | grep -q ":${port} " && break; sleep 0.1; done`;
}

function oneLine(stderr: string): string {
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('Parsing config') && !l.startsWith('xenoded was not running'));
  assert.equal(lines.length, 1, `expected one line, got: ${stderr}`);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
  return lines[0] as string;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost({ XENODE_NET_HOSTPORT: `${HOST_TAP},${NET}.1/24` });
  // Sponsor a: a1 and a2; sponsor b: b1. All three boot at once.
  await boot('a1', `sponsor = "a"\nvif = ['ip=${NET}.11']`);
  await boot('a2', `sponsor = "a"\nvif = ['ip=${NET}.12']`);
  await boot('b1', `sponsor = "b"\nrng = 1\nvif = ['ip=${NET}.21']`);
  await Promise.all(['a1', 'a2', 'b1'].map(ready));
});

after(async () => {
  for (const c of cons.values()) c.close();
  // Destroy through the daemon so bridge TAPs go too; then the harness kills what is left.
  for (const d of ['a1', 'a2', 'b1']) await host.xl(['destroy', d]);
  await host.cleanup();
  if (root) {
    try {
      execFileSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
    } catch {
      /* not created */
    }
  }
});

describe('domains on the switch', () => {
  it('two domains ping each other', async () => {
    assert.ok((await ping('a1', `${NET}.12`)) >= 1);
    assert.ok((await ping('a2', `${NET}.11`)) >= 1);
  });

  it('moves a file over TCP with busybox nc, checksums matching', async () => {
    const sum = await con('a2').run('dd if=/dev/urandom of=/tmp/f bs=1k count=768 2>/dev/null; md5sum < /tmp/f');
    await con('a1').run(`nc -l -p 7000 > /tmp/r & ${listening(7000)}`);
    await con('a2').run(`nc ${NET}.11 7000 < /tmp/f`, 120_000);
    const got = await con('a1').run('wait; md5sum < /tmp/r; wc -c < /tmp/r', 120_000);
    assert.equal(got.split('\n')[0], sum);
    assert.equal(got.split('\n')[1]?.trim(), String(768 * 1024));
  });

  it('counts traffic per vif, from the guest side', async () => {
    const [v] = await vifs('a1');
    assert.ok(v);
    assert.equal(v.link, 'up');
    assert.equal(v.backend, 'switch');
    assert.ok((v.counters?.rx_bytes ?? 0) > 768 * 1024, `a1 received the file: ${JSON.stringify(v.counters)}`);
    assert.ok((v.counters?.tx_packets ?? 0) > 10);
    const list = await host.ok(['network-list', 'a1']);
    assert.match(list, /^Idx BE Mac Addr\. +handle state evt-ch +tx-\/rx-ring-ref BE-path/);
    assert.match(list, new RegExp(`^0 +0 +${v.mac} +0 +4 +-1 +-1/-1 +/local/domain/0/backend/vif/\\d+/0`, 'm'));
    const domid = (await host.ok(['domid', 'a1'])).trim();
    assert.equal((await host.ok(['store', 'read', `/local/domain/0/backend/vif/${domid}/0/mac`])).trim(), v.mac);
    assert.equal((await host.ok(['store', 'read', `/local/domain/${domid}/device/vif/0/state`])).trim(), '4');
  });
});

describe('rng = 1', () => {
  it('gives the domain a virtio RNG', async () => {
    assert.equal(await con('b1').run('cat /sys/class/misc/hw_random/rng_current'), 'virtio_rng.0');
  });
  it('is off by default', async () => {
    assert.equal(await con('a1').run('cat /sys/class/misc/hw_random/rng_current'), 'none');
  });
});

describe('host port', { skip: !root && 'needs root for the TAP' }, () => {
  it('the host and a domain reach each other over the TAP', async () => {
    const st = await api<NetStatus>('/v1/net');
    assert.equal(st.host_port?.name, HOST_TAP);
    assert.equal(st.host_port?.up, true, st.host_port?.error);
    // Guest → host (the host's own stack answers ICMP).
    assert.ok((await ping('b1', `${NET}.1`)) >= 1);
    // Host → guest over TCP.
    await con('b1').run(`nc -l -p 7001 > /tmp/h & ${listening(7001)}`);
    await new Promise<void>((resolve, reject) => {
      const s = createConnection({ host: `${NET}.21`, port: 7001 }, () => s.end('hello from the host\n'));
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    assert.equal(await con('b1').run('wait; cat /tmp/h'), 'hello from the host');
  });
});

describe('sponsor isolation', () => {
  it('domains of different sponsors cannot reach each other', async () => {
    assert.equal(await ping('a1', `${NET}.21`, 2), 0);
    const [v] = await vifs('a1');
    assert.ok((v?.counters?.tx_policy_dropped ?? 0) > 0, 'the drops are counted');
  });

  it('network-allow lets them, network-deny isolates them again', async () => {
    assert.match(await host.ok(['network-allow', 'a', 'b']), /^a <-> b$/m);
    assert.ok((await ping('a1', `${NET}.21`)) >= 1);
    assert.match(await host.ok(['network-policy']), /a <-> b/);
    assert.equal((await host.ok(['store', 'read', '/xenode/net/allow/a/b'])).trim(), '1', 'kept in the store');
    await host.ok(['network-deny', 'b', 'a']);
    assert.equal(await ping('a1', `${NET}.21`, 2), 0);
    assert.match(await host.ok(['network-policy']), /no pair is allowed/);
  });
});

describe('switch supervision', () => {
  it('a killed switch is restarted and the guests link up again', async () => {
    const before = await api<NetStatus>('/v1/net');
    assert.ok(before.switch.pid);
    process.kill(before.switch.pid, 'SIGKILL');
    // The daemon notices (control channel closed) and starts a new switch; wait for its log line.
    let after = before;
    for (let i = 0; i < 200 && (!after.switch.running || after.switch.pid === before.switch.pid); i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await api<NetStatus>('/v1/net');
    }
    assert.notEqual(after.switch.pid, before.switch.pid);
    assert.equal(after.switch.restarts, before.switch.restarts + 1);
    assert.match(await host.ok(['dmesg']), new RegExp(`switch \\(pid ${before.switch.pid}\\) exited; restarting`));
    assert.ok((await ping('a1', `${NET}.12`)) >= 1, 'domain-to-domain works again');
    if (root) assert.ok((await ping('a2', `${NET}.1`)) >= 1, 'the host port is back too');
  });

  it('the switch outlives a daemon crash and the restarted daemon adopts it', async () => {
    const before = await api<NetStatus>('/v1/net');
    host.killDaemon('SIGKILL');
    await host.ok(['list']); // starts a new daemon, which reattaches to the domains and the switch
    // Consoles went with the old daemon; the scroll-back holds the ready line and a prompt.
    for (const c of cons.values()) c.close();
    await Promise.all(['a1', 'a2', 'b1'].map(ready));
    const after = await api<NetStatus>('/v1/net');
    assert.equal(after.switch.pid, before.switch.pid);
    assert.deepEqual(
      after.ports.filter((p) => p.kind === 'vif').map((p) => [p.id, p.connected, p.connects]),
      before.ports.filter((p) => p.kind === 'vif').map((p) => [p.id, p.connected, p.connects]),
      'no link was dropped',
    );
    assert.ok((await ping('a2', `${NET}.11`)) >= 1);
  });
});

describe('hotplug', () => {
  it('network-attach shows a new eth1 in a running guest, network-detach removes it', async () => {
    const r = await host.xl(['network-attach', 'a1', `ip=${NET}.13`]);
    assert.equal(r.code, 0, r.stderr);
    const v = (await vifs('a1')).find((x) => x.devid === 1);
    assert.ok(v?.hotplugged);
    const mac = await con('a1').run(
      'for i in $(seq 100); do [ -e /sys/class/net/eth1 ] && break; sleep 0.1; done; cat /sys/class/net/eth1/address',
    );
    assert.equal(mac, v.mac);
    await con('a1').run(`ip link set eth1 up; ip addr add ${NET}.13/24 dev eth1`);
    assert.ok((await ping('a1', `${NET}.12`, 3, 'eth1')) >= 1, 'the new NIC is on the switch');
    await host.ok(['network-detach', 'a1', v.mac]);
    assert.equal(
      await con('a1').run(
        'for i in $(seq 100); do [ -e /sys/class/net/eth1 ] || break; sleep 0.1; done; ls -1 /sys/class/net',
      ),
      'eth0\nlo',
    );
    assert.deepEqual(
      (await vifs('a1')).map((x) => x.devid),
      [0],
    );
  });

  it('a vif on a Linux bridge goes through a TAP enslaved to it', { skip: !root && 'needs root' }, async () => {
    execFileSync('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    execFileSync('ip', ['addr', 'add', `${BR_NET}.1/24`, 'dev', BRIDGE]);
    execFileSync('ip', ['link', 'set', BRIDGE, 'up']);
    await host.ok(['network-attach', 'a2', `bridge=${BRIDGE}`]);
    const v = (await vifs('a2')).find((x) => x.devid === 1);
    assert.equal(v?.backend, 'bridge');
    const domid = (await host.ok(['domid', 'a2'])).trim();
    assert.equal(v?.ifname, `vif${domid}.1`);
    assert.match(
      execFileSync('ip', ['-o', 'link', 'show', `vif${domid}.1`]).toString(),
      new RegExp(`master ${BRIDGE}`),
    );
    await con('a2').run(
      `for i in $(seq 100); do [ -e /sys/class/net/eth1 ] && break; sleep 0.1; done; ip link set eth1 up; ip addr add ${BR_NET}.12/24 dev eth1`,
    );
    assert.ok((await ping('a2', `${BR_NET}.1`)) >= 1);
    await host.ok(['network-detach', 'a2', '1']);
    assert.throws(() => execFileSync('ip', ['link', 'show', `vif${domid}.1`], { stdio: 'ignore' }), 'TAP removed');
  });
});

describe('errors are one clear line, and change nothing', () => {
  it('a bad MAC', async () => {
    const r = await host.xl(['network-attach', 'a1', 'mac=00:16:3e:zz:00:01']);
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /invalid MAC address '00:16:3e:zz:00:01'/);
    const r2 = await host.xl(['network-attach', 'a1', 'mac=01:00:5e:00:00:01']);
    assert.match(oneLine(r2.stderr), /multicast/);
    assert.equal((await vifs('a1')).length, 1);
  });

  it('an unknown bridge, at attach and at create', async () => {
    const r = await host.xl(['network-attach', 'a1', 'bridge=nosuchbr0']);
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /bridge 'nosuchbr0' does not exist/);
    assert.equal((await vifs('a1')).length, 1);
    const pids = host.qemuPids().length;
    const cfg = host.writeConfig('nb.cfg', 'name = "nb"\nmemory = 256\nvif = [ "bridge=nosuchbr0" ]\n');
    const c = await host.xl(['create', cfg]);
    assert.equal(c.code, 1);
    assert.match(oneLine(c.stderr), /bridge 'nosuchbr0' does not exist/);
    assert.equal(host.qemuPids().length, pids, 'no stray QEMU');
    assert.doesNotMatch(await host.ok(['list']), /^nb /m);
  });

  it('more vifs than a q35 domain has NIC slots', async () => {
    const pids = host.qemuPids().length;
    const many = Array.from({ length: 32 }, () => '"ip="').join(', ');
    const cfg = host.writeConfig('many.cfg', `name = "many"\nmemory = 256\nvif = [ ${many} ]\n`);
    const c = await host.xl(['create', cfg]);
    assert.equal(c.code, 1);
    assert.match(oneLine(c.stderr), /32 vifs: a q35 domain has 31 NIC slots/);
    assert.equal(host.qemuPids().length, pids, 'no stray QEMU');
    assert.doesNotMatch(await host.ok(['list']), /^many /m);
  });

  it('detaching an unknown device', async () => {
    const r = await host.xl(['network-detach', 'a1', '9']);
    assert.equal(r.code, 1);
    assert.equal(oneLine(r.stderr), 'Unknown device 9.');
    const r2 = await host.xl(['network-detach', 'a1', '00:16:3e:00:00:99']);
    assert.equal(oneLine(r2.stderr), 'Unknown device 00:16:3e:00:00:99.');
  });

  it('a MAC another domain already uses', async () => {
    const [v] = await vifs('a2');
    const r = await host.xl(['network-attach', 'a1', `mac=${v?.mac}`]);
    assert.equal(r.code, 1);
    assert.match(oneLine(r.stderr), /already used by domain a2/);
  });
});
