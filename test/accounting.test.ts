// Accounting against real guests: CPU seconds against QEMU's own /proc time,
// disk and network bytes against the guest's own counters, a daemon killed in
// the middle of a busy guest, a destroyed domain, and what each sponsor's token
// sees of account, bill and /metrics.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { ensureDefaultGuest } from '../guest/build.ts';
import type { BillReport } from '../src/features/accounting/report.ts';
import type { AccountReport, DomainAccount } from '../src/features/accounting/store.ts';
import { cgroupTopName } from '../src/toolstack/cgroups.ts';
import { launchChromium, login } from './helpers/browser.ts';
import { type ConsoleSession, TestHost } from './helpers/host.ts';

const TAG = String(process.pid % 100000);
const HOST_TAP = `xna${TAG}`;
const NET = '10.233.0';
const PORT = 7411;
const UP = 2 * 1024 * 1024;
const DOWN = 1024 * 1024;

let host: TestHost;
let admin: string;
let alice: string;
let bob: string;
let server: Server;
const cons = new Map<string, ConsoleSession>();

interface Reply {
  status: number;
  text: string;
  type: string;
}

/** An API request over TCP with a token (or none), or over the Unix socket as the admin. */
function http(
  path: string,
  opts: { token?: string; local?: boolean; method?: string; body?: unknown } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    if (payload) headers['content-type'] = 'application/json';
    const target = opts.local ? { socketPath: host.socket } : { host: '127.0.0.1', port: host.tcpPort() };
    const req = request({ ...target, path, method: opts.method ?? 'GET', headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function account(q = '', token?: string): Promise<AccountReport> {
  const r = await http(`/v1/account${q}`, token ? { token } : { local: true });
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.text) as AccountReport;
}

async function row(name: string): Promise<DomainAccount> {
  const r = (await account()).domains.find((d) => d.name === name && d.destroyed === null);
  assert.ok(r, `no account row for ${name}`);
  return r;
}

/** The domain's account once it has been sampled after `t` (ms). */
async function sampledAfter(name: string, t: number, timeoutMs = 30_000): Promise<DomainAccount> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await row(name);
    if ((r.lastSample ?? 0) > t) return r;
    if (Date.now() > deadline) throw new Error(`${name} not sampled after ${t}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function boot(name: string, extra: string): Promise<void> {
  const cfg = host.writeConfig(`${name}.cfg`, `name = "${name}"\nmemory = 256\n${extra}\n`);
  const r = await host.xl(['create', cfg]);
  assert.equal(r.code, 0, r.stderr);
}

async function ready(name: string): Promise<ConsoleSession> {
  const c = await host.console(name);
  await c.expect(new RegExp(`${name}:/# `), 180_000);
  cons.set(name, c);
  return c;
}

function con(name: string): ConsoleSession {
  const c = cons.get(name);
  assert.ok(c, `no console for ${name}`);
  return c;
}

async function domid(name: string): Promise<number> {
  return Number((await host.ok(['domid', name])).trim());
}

async function qemuPid(name: string): Promise<number> {
  return Number(readFileSync(join(host.dir, 'domains', String(await domid(name)), 'qemu.pid'), 'utf8'));
}

/** QEMU's own CPU time: utime + stime of the whole process, seconds. */
function procCpu(pid: number): number {
  const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** The cumulative CPU counter accounting reads: the domain's cgroup, else /proc. */
async function cumulativeCpu(name: string, sponsor: string): Promise<number> {
  const file = `/sys/fs/cgroup/cpuacct/${cgroupTopName(host.dir)}/${sponsor}/dom${await domid(name)}/cpuacct.usage`;
  try {
    return Number(readFileSync(file, 'utf8')) / 1e9;
  } catch {
    return procCpu(await qemuPid(name));
  }
}

function within(actual: number, expected: number, frac: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= frac * Math.abs(expected),
    `${what}: accounted ${actual}, measured ${expected} (more than ${frac * 100}% apart)`,
  );
}

async function pause(name: string): Promise<number> {
  await host.ok(['pause', name]);
  return Date.now();
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost({ XENODE_NET_HOSTPORT: `${HOST_TAP},${NET}.1/24` });
  await host.ok(['list']);
  admin = (await host.ok(['token', 'create', 'root', '--admin'])).trim();
  alice = (await host.ok(['token', 'create', 'alice'])).trim();
  bob = (await host.ok(['token', 'create', 'bob'])).trim();
  const img = join(host.dir, 'a1.img');
  execFileSync('truncate', ['-s', '64M', img]);
  await boot('a1', `sponsor = "alice"\nvif = ['ip=${NET}.11']\ndisk = [ "${img},raw,xvdb,rw" ]`);
  await boot('b1', `sponsor = "bob"\nvif = ['ip=${NET}.21']`);
  await Promise.all(['a1', 'b1'].map(ready));
  // The guest uploads UP bytes; then the host sends DOWN bytes back and closes.
  server = createServer((s) => {
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= UP) s.end(Buffer.alloc(DOWN, 7));
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((res) => server.listen(PORT, `${NET}.1`, res));
});

after(async () => {
  for (const c of cons.values()) c.close();
  server?.close();
  for (const d of ['a1', 'b1']) await host?.xl(['destroy', d]);
  await host?.cleanup();
});

describe('accounting against real guests', () => {
  it('/metrics needs a token, parses as Prometheus text and carries the numbers of xenode account', async () => {
    assert.equal((await http('/metrics')).status, 401);
    assert.equal((await http('/metrics', { token: 'xn_00000000_nope' })).status, 401);
    await sampledAfter('b1', Date.now());
    // Taken until one sample's numbers are seen by all three answers.
    for (let attempt = 0; ; attempt++) {
      const m1 = await http('/metrics', { token: admin });
      const json = await host.ok(['account', '--json']);
      const m2 = await http('/metrics', { token: admin });
      assert.equal(m1.status, 200, m1.text);
      assert.match(m1.type, /^text\/plain/);
      const acct = JSON.parse(json) as AccountReport;
      const at = (text: string) =>
        parsePrometheusTextFormat(text).find((f) => f.name === 'xenode_account_sampled_at_seconds')?.metrics[0]?.value;
      const stamp = String((acct.sampledAt ?? 0) / 1000);
      if ((at(m1.text) !== stamp || at(m2.text) !== stamp) && attempt < 20) continue;
      assert.equal(at(m1.text), stamp, 'one sample');
      const fams = parsePrometheusTextFormat(m1.text);
      const value = (name: string, labels: Record<string, string>) => {
        const f = fams.find((x) => x.name === name);
        assert.ok(f, `no family ${name}`);
        assert.equal(f.type, 'COUNTER');
        const s = f.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
        assert.ok(s, `no ${name}${JSON.stringify(labels)}`);
        return Number(s.value);
      };
      for (const d of acct.domains.filter((x) => x.destroyed === null)) {
        const labels = { domain: d.name, domid: String(d.domid), sponsor: d.sponsor };
        assert.equal(value('xenode_domain_cpu_seconds_total', labels), d.usage.cpuSeconds);
        assert.equal(value('xenode_domain_memory_target_mib_seconds_total', labels), d.usage.memTargetMiBSeconds);
        assert.equal(value('xenode_domain_memory_resident_mib_seconds_total', labels), d.usage.memRssMiBSeconds);
        assert.equal(value('xenode_domain_disk_read_bytes_total', labels), d.usage.diskReadBytes);
        assert.equal(value('xenode_domain_disk_write_ops_total', labels), d.usage.diskWriteOps);
        assert.equal(value('xenode_domain_net_rx_bytes_total', labels), d.usage.netRxBytes);
        assert.equal(value('xenode_domain_net_tx_packets_total', labels), d.usage.netTxPackets);
      }
      for (const s of acct.sponsors) {
        assert.equal(value('xenode_sponsor_cpu_seconds_total', { sponsor: s.sponsor }), s.usage.cpuSeconds);
        assert.equal(value('xenode_sponsor_net_tx_bytes_total', { sponsor: s.sponsor }), s.usage.netTxBytes);
      }
      assert.ok(acct.domains.some((d) => d.name === 'a1') && acct.domains.some((d) => d.name === 'b1'));
      break;
    }
  });

  it("CPU seconds agree within 5% with QEMU's own /proc CPU time over the same interval", async (t) => {
    const pid = await qemuPid('a1');
    const a0 = await sampledAfter('a1', await pause('a1'));
    const p0 = procCpu(pid);
    await host.ok(['unpause', 'a1']);
    // About 8 s of a busy vCPU.
    await con('a1').run('end=$(($(date +%s)+8)); while [ $(date +%s) -lt $end ]; do :; done', 60_000);
    const a1 = await sampledAfter('a1', await pause('a1'));
    const p1 = procCpu(pid);
    await host.ok(['unpause', 'a1']);
    assert.ok(p1 - p0 > 2, `the guest was busy: ${p1 - p0} s`);
    t.diagnostic(
      `CPU: accounted ${(a1.usage.cpuSeconds - a0.usage.cpuSeconds).toFixed(3)} s, /proc ${(p1 - p0).toFixed(2)} s`,
    );
    within(a1.usage.cpuSeconds - a0.usage.cpuSeconds, p1 - p0, 0.05, 'CPU seconds');
  });

  it("disk bytes and operations agree within 5% with the guest's /sys/block/vda/stat after dd", async (t) => {
    const c = con('a1');
    // A bulk read and write for the bytes; many small synced writes, so one request more or less is not 5%.
    await c.run(
      'dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null; dd if=/dev/zero of=/dev/vda bs=64k count=256 conv=fsync 2>/dev/null; for i in $(seq 100); do dd if=/dev/urandom of=/dev/vda bs=4k count=1 seek=$((i*64)) conv=fsync 2>/dev/null; done',
      120_000,
    );
    const stat = (await c.run('cat /sys/block/vda/stat')).trim().split(/\s+/).map(Number);
    const [rdIos = 0, , rdSectors = 0, , wrIos = 0, , wrSectors = 0] = stat;
    // Linux (5.5 on) counts each fsync's empty pre-flush write among the writes and again among
    // the flushes (field 16); QEMU's wr_operations, what is accounted, counts the data writes.
    const flushIos = stat[15] ?? 0;
    const a = await sampledAfter('a1', Date.now());
    assert.ok(rdSectors * 512 >= 64 * 1024 * 1024, `the guest read the disk: ${stat.join(' ')}`);
    t.diagnostic(
      `disk: accounted rd ${a.usage.diskReadBytes} B / ${a.usage.diskReadOps} ops, wr ${a.usage.diskWriteBytes} B / ${a.usage.diskWriteOps} ops; guest rd ${rdSectors * 512} B / ${rdIos}, wr ${wrSectors * 512} B / ${wrIos - flushIos}`,
    );
    within(a.usage.diskReadBytes, rdSectors * 512, 0.05, 'disk read bytes');
    within(a.usage.diskWriteBytes, wrSectors * 512, 0.05, 'disk write bytes');
    within(a.usage.diskReadOps, rdIos, 0.05, 'disk read operations');
    within(a.usage.diskWriteOps, wrIos - flushIos, 0.05, 'disk write operations');
  });

  it("network bytes and packets agree within 5% with the guest's eth0 counters after a transfer", async (t) => {
    const c = con('a1');
    const got = await c.run(
      `dd if=/dev/urandom of=/tmp/up bs=1k count=${UP / 1024} 2>/dev/null; nc ${NET}.1 ${PORT} < /tmp/up > /tmp/down; wc -c < /tmp/down`,
      120_000,
    );
    assert.equal(got.trim(), String(DOWN));
    const n = (await c.run('cd /sys/class/net/eth0/statistics; cat tx_bytes rx_bytes tx_packets rx_packets'))
      .split('\n')
      .map(Number);
    const [tx = 0, rx = 0, txp = 0, rxp = 0] = n;
    const a = await sampledAfter('a1', Date.now());
    assert.ok(tx > UP && rx > DOWN, `the guest moved the data: ${n.join(' ')}`);
    t.diagnostic(
      `net: accounted tx ${a.usage.netTxBytes} B / ${a.usage.netTxPackets} pkts, rx ${a.usage.netRxBytes} B / ${a.usage.netRxPackets}; guest tx ${tx} / ${txp}, rx ${rx} / ${rxp}`,
    );
    within(a.usage.netTxBytes, tx, 0.05, 'network bytes sent');
    within(a.usage.netRxBytes, rx, 0.05, 'network bytes received');
    within(a.usage.netTxPackets, txp, 0.05, 'packets sent');
    within(a.usage.netRxPackets, rxp, 0.05, 'packets received');
  });

  it('a daemon kill -9 in the middle of a busy guest loses no accounted interval', async (t) => {
    const c = con('a1');
    const before = await sampledAfter('a1', Date.now());
    // Busy for 10 s, then read the whole disk again (caches dropped), while the daemon is away.
    // Started after the sample, and the kill comes once it runs: a slow sample on a loaded
    // host must not let the busy part end before the daemon is gone.
    c.send(
      '(echo JOB""START9; end=$(($(date +%s)+10)); while [ $(date +%s) -lt $end ]; do :; done; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null; echo JOB""DONE9) &\n',
    );
    await c.expect(/JOBSTART9/, 60_000);
    const pid = await qemuPid('a1');
    const cpuAtKill = procCpu(pid);
    host.killDaemon('SIGKILL');
    c.close();
    cons.delete('a1');
    // The guest works on while no daemon runs: wait until QEMU has used 4 more CPU seconds.
    const deadline = Date.now() + 120_000;
    while (procCpu(pid) < cpuAtKill + 4) {
      assert.ok(Date.now() < deadline, 'the guest kept running');
      await new Promise((r) => setTimeout(r, 200));
    }
    await host.ok(['list']); // a new daemon
    const c2 = await host.console('a1');
    cons.set('a1', c2);
    await c2.expect(/JOBDONE9/, 120_000);
    const a = await sampledAfter('a1', await pause('a1'));
    const cum = await cumulativeCpu('a1', 'alice');
    const disk = JSON.parse((await http('/v1/domains/a1/block/stats', { local: true })).text) as {
      disk: Array<{ rdBytes: number; wrBytes: number; rdOps: number }>;
    };
    const vif = JSON.parse((await http('/v1/domains/a1/net', { local: true })).text) as {
      vifs: Array<{ counters?: { tx_bytes: number; rx_bytes: number } }>;
    };
    await host.ok(['unpause', 'a1']);
    t.diagnostic(
      `kill -9: CPU accounted ${a.usage.cpuSeconds.toFixed(3)} s (${(a.usage.cpuSeconds - before.usage.cpuSeconds).toFixed(2)} s across the outage), cumulative ${cum.toFixed(3)} s`,
    );
    assert.ok(a.usage.cpuSeconds - before.usage.cpuSeconds >= 4, 'the outage is in the account');
    // Before + after the restart = the cumulative counters (CPU: within the sampling interval of a paused guest).
    within(a.usage.cpuSeconds, cum, 0.01, 'CPU seconds against the cumulative counter');
    assert.equal(
      a.usage.diskReadBytes,
      disk.disk.reduce((s, d) => s + d.rdBytes, 0),
      'disk read bytes',
    );
    assert.equal(
      a.usage.diskWriteBytes,
      disk.disk.reduce((s, d) => s + d.wrBytes, 0),
      'disk write bytes',
    );
    assert.equal(
      a.usage.diskReadOps,
      disk.disk.reduce((s, d) => s + d.rdOps, 0),
      'disk read operations',
    );
    within(a.usage.netTxBytes, vif.vifs[0]?.counters?.tx_bytes ?? 0, 0.01, 'network bytes sent');
    assert.ok(a.usage.diskReadBytes >= before.usage.diskReadBytes + 64 * 1024 * 1024, 'the dd while away counts');
  });

  it('a sponsor sees only its own rows in account, bill and /metrics', async () => {
    await host.ok(['price-set', 'cpu=0.02/h', 'memory=0.005/GiB-h', 'disk=0.01/GiB', 'net=0.05/GiB', 'currency=EUR']);
    const mine = await account('', alice);
    assert.deepEqual([...new Set(mine.domains.map((d) => d.sponsor))], ['alice']);
    assert.deepEqual(
      mine.sponsors.map((s) => s.sponsor),
      ['alice'],
    );
    const bill = JSON.parse((await http('/v1/bill', { token: alice })).text) as BillReport;
    assert.deepEqual(
      bill.sponsors.map((s) => s.sponsor),
      ['alice'],
    );
    assert.equal(bill.currency, 'EUR');
    assert.ok((bill.sponsors[0]?.total ?? 0) > 0);
    const metrics = await http('/metrics', { token: alice });
    assert.equal(metrics.status, 200);
    assert.doesNotMatch(metrics.text, /bob|b1/);
    assert.match(metrics.text, /xenode_domain_cpu_seconds_total\{domain="a1",domid="\d+",sponsor="alice"\}/);
    // Another sponsor's account is refused; another's domain reads like none at all.
    const other = await http('/v1/account?sponsor=bob', { token: alice });
    assert.equal(other.status, 403);
    assert.doesNotMatch(other.text, /b1/);
    assert.equal((await http('/v1/bill?sponsor=bob', { token: alice })).status, 403);
    const b1 = await http('/v1/account?domain=b1', { token: alice });
    const none = await http('/v1/account?domain=nosuch', { token: alice });
    assert.equal(b1.status, 404);
    assert.equal(b1.text.replace('b1', 'X'), none.text.replace('nosuch', 'X'));
    const bid = String(await domid('b1'));
    assert.equal((await http(`/v1/account?domain=${bid}`, { token: alice })).status, 404);
    // The CLI as alice: the same.
    const cli = new TestHost({ XENODE_URL: `http://127.0.0.1:${host.tcpPort()}`, XENODE_TOKEN: alice });
    const out = await cli.ok(['account']);
    assert.match(out, /^a1 /m);
    assert.doesNotMatch(out, /b1|bob/);
    assert.doesNotMatch(await cli.ok(['bill']), /bob/);
    const refused = await cli.xl(['account', '--sponsor', 'bob']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /sees only its own account/);
    assert.equal((await cli.xl(['price-set', 'cpu=0/h'])).code, 1, 'only the admin sets prices');
    await cli.cleanup();
    // The admin sees both.
    const all = await account('', admin);
    assert.deepEqual(
      all.sponsors.map((s) => s.sponsor),
      ['alice', 'bob'],
    );
  });

  it('refuses malformed and oversized questions with 400 and a hint', async () => {
    for (const q of [
      '?since=yesterday',
      '?until=-1h&since=now',
      '?since=-1h&since=-2h',
      '?bogus=1',
      `?domain=${'x'.repeat(300)}`,
      '?since=',
    ]) {
      const r = await http(`/v1/account${q}`, { token: alice });
      assert.equal(r.status, 400, `${q}: ${r.text}`);
      assert.ok((JSON.parse(r.text) as { error: { message: string } }).error.message.length < 200);
    }
    assert.equal((await http('/metrics?x=1', { token: alice })).status, 400);
    for (const body of [{ prices: { cpu: '1' } }, { prices: { gpu: '1/h' } }, { prices: [] }, { nope: 1 }, 'text']) {
      const r = await http('/v1/prices', { token: admin, method: 'PUT', body });
      assert.equal(r.status, 400, JSON.stringify(body));
    }
    assert.equal(
      (await http('/v1/prices', { token: alice, method: 'PUT', body: { prices: { cpu: '0/h' } } })).status,
      403,
    );
  });

  it("the web UI's usage page shows a sponsor its own limits and usage, the admin every sponsor's", async () => {
    await host.ok(['quota-set', 'alice', 'domains=4', 'memory=2G']);
    const browser = await launchChromium();
    try {
      const base = `http://127.0.0.1:${host.tcpPort()}`;
      const seen = async (token: string) => {
        const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
        const page = await ctx.newPage();
        await login(page, base, token);
        await page.click('a[href="/usage"]');
        await page.waitForSelector('tr[data-usage="a1"], section[data-sponsor="bob"]');
        const sponsors = await page.$$eval('section[data-sponsor]', (els) =>
          els.map((e) => e.getAttribute('data-sponsor')),
        );
        const rows = await page.$$eval('tr[data-usage]', (els) => els.map((e) => e.getAttribute('data-usage')));
        const domainsLimit = await page.textContent('section[data-sponsor="alice"] [data-limit="Domains"]');
        await ctx.close();
        return { sponsors, rows, domainsLimit };
      };
      const a = await seen(alice);
      assert.deepEqual(a.sponsors, ['alice']);
      assert.ok(a.rows.includes('a1') && !a.rows.includes('b1'), a.rows.join());
      assert.match(a.domainsLimit ?? '', /1\s*\/\s*4/);
      const all = await seen(admin);
      assert.deepEqual(all.sponsors, ['alice', 'bob']);
      assert.ok(all.rows.includes('a1') && all.rows.includes('b1'));
    } finally {
      await browser.close();
    }
  });

  it("a destroyed domain's usage stays in the account (its sponsor's and the admin's)", async () => {
    const last = await sampledAfter('b1', await pause('b1'));
    await host.ok(['destroy', 'b1']);
    const after = (await account('', bob)).domains.find((d) => d.name === 'b1');
    assert.ok(after, "b1 is still in bob's account");
    assert.notEqual(after.destroyed, null);
    assert.ok(after.usage.cpuSeconds >= last.usage.cpuSeconds);
    assert.equal(after.usage.netTxBytes, last.usage.netTxBytes);
    const text = await host.ok(['account', '--sponsor', 'bob']);
    assert.match(text, /^b1 \(destroyed\) /m);
    const sums = (await account('?sponsor=bob', admin)).sponsors[0];
    assert.equal(sums?.usage.cpuSeconds, after.usage.cpuSeconds);
  });
});
