// Issue 21: a pool of hosts on etcd. Three daemons on this machine (three
// XENODE_DIRs, no host port for their switches) and one etcd on loopback,
// started here with a temporary data dir and random ports. Domains are placed
// across the hosts, one moves by host name, a host is killed hard and its HA
// domains run again elsewhere, a host's daemon is paused past its lease (its
// QEMUs must be fenced before anyone starts them again), and etcd is killed and
// restarted under the running pool.
//
// XENODE_POOL_DOMAINS=10 places ten domains instead of four;
// XENODE_POOL_FAILOVERS=20 repeats the kill/pause failover that many times.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureDefaultGuest } from '../guest/build.ts';
import { TestHost } from './helpers/host.ts';

const TTL = Number(process.env.XENODE_POOL_TTL ?? 4);
const DOMAINS = Number(process.env.XENODE_POOL_DOMAINS ?? 4);
const FAILOVERS = Number(process.env.XENODE_POOL_FAILOVERS ?? 1);

const hosts = new Map<string, TestHost>();
const names = ['a', 'b', 'c'];
let etcd: ChildProcess | undefined;
let etcdDir = '';
let shared = '';
let clientPort = 0;
let peerPort = 0;
let secret = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function etcdUrl(): string {
  return `http://127.0.0.1:${clientPort}`;
}

async function startEtcd(): Promise<void> {
  const peer = `http://127.0.0.1:${peerPort}`;
  etcd = spawn(
    'etcd',
    [
      '--name',
      'xnpool',
      '--data-dir',
      etcdDir,
      '--listen-client-urls',
      etcdUrl(),
      '--advertise-client-urls',
      etcdUrl(),
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `xnpool=${peer}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  etcd.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${etcdUrl()}/health`);
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`etcd did not start: ${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every QEMU on this machine running the domain with this uuid. */
function qemusOf(uuid: string): number[] {
  const out: number[] = [];
  for (const ent of readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const st = readFileSync(`/proc/${ent}/stat`, 'utf8');
      // A zombie has exited: it runs nothing.
      if (/\) Z /.test(st)) continue;
      const args = readFileSync(`/proc/${ent}/cmdline`, 'utf8').split('\0');
      const i = args.indexOf('-uuid');
      if (args[0]?.includes('qemu-system') && i >= 0 && args[i + 1] === uuid) out.push(Number(ent));
    } catch {
      /* gone */
    }
  }
  return out;
}

interface PoolDomain {
  name: string;
  uuid: string;
  host: string;
  ha: boolean;
  state: string;
}

function live(): TestHost {
  for (const n of names) {
    const h = hosts.get(n) as TestHost;
    const pid = h.daemonPid();
    if (pid && alive(pid) && !stopped.has(n)) return h;
  }
  throw new Error('no live host');
}

const stopped = new Set<string>();
/** Each failover's phases, printed at the end of its test. */
const phases: string[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function poolDomains(via: TestHost = live()): Promise<PoolDomain[]> {
  return JSON.parse(await via.ok(['list', '--pool', '-l'])) as PoolDomain[];
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${String(lastErr ?? '')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The guest's shell prompt on its host's console. */
async function ready(hostName: string, dom: string, timeoutMs = 180_000): Promise<void> {
  const con = await (hosts.get(hostName) as TestHost).console(dom);
  try {
    await con.expect(new RegExp(`${dom}:/# `), timeoutMs);
  } finally {
    con.close();
  }
}

function killHostHard(n: string): void {
  const h = hosts.get(n) as TestHost;
  h.killDaemon('SIGKILL');
  for (const pid of h.qemuPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/**
 * Sample QEMU processes and the index until stopped: a failover domain must
 * never have two QEMUs, nor run on a host other than the index's.
 */
function watchNeverTwice(uuids: Map<string, string>): { stop: () => Promise<string[]> } {
  const problems: string[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      for (const [name, uuid] of uuids) {
        const q = qemusOf(uuid);
        if (q.length > 1) problems.push(`${name} ran in ${q.length} QEMUs at once (${q.join(', ')})`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      return problems;
    },
  };
}

before(async () => {
  await ensureDefaultGuest();
  etcdDir = mkdtempSync('/tmp/xn-etcd-');
  shared = mkdtempSync('/tmp/xn-shared-');
  clientPort = await freePort();
  peerPort = await freePort();
  await startEtcd();
  for (const n of names) hosts.set(n, new TestHost({ XENODE_NET_HOSTPORT: 'none' }));
});

after(async () => {
  for (const n of names) {
    const h = hosts.get(n);
    const pid = h?.daemonPid();
    if (pid && stopped.has(n)) process.kill(pid, 'SIGCONT');
    await h?.cleanup();
  }
  etcd?.kill('SIGKILL');
  rmSync(etcdDir, { recursive: true, force: true });
  rmSync(shared, { recursive: true, force: true });
});

describe('pool membership', () => {
  it('pool create prints the pool secret; join takes it; a wrong secret is refused', async () => {
    const a = hosts.get('a') as TestHost;
    const out = await a.ok([
      'pool',
      'create',
      'tp',
      '--etcd',
      etcdUrl(),
      '--host',
      'a',
      '--ttl',
      String(TTL),
      '--shared',
      shared,
    ]);
    secret = out.trim().split('\n').pop() as string;
    assert.match(secret, /^xnpool_[0-9a-f]{64}$/);
    const b = hosts.get('b') as TestHost;
    const bad = await b.xl([
      'pool',
      'join',
      'tp',
      '--etcd',
      etcdUrl(),
      '--host',
      'b',
      '--secret',
      `xnpool_${'0'.repeat(64)}`,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /secret/);
    for (const n of ['b', 'c'])
      await (hosts.get(n) as TestHost).ok(['pool', 'join', 'tp', '--etcd', etcdUrl(), '--host', n, '--secret', secret]);
    // A name already in the pool is refused.
    const dup = await new TestHost({ XENODE_NET_HOSTPORT: 'none' });
    try {
      const r = await dup.xl(['pool', 'join', 'tp', '--etcd', etcdUrl(), '--host', 'b', '--secret', secret]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /already/);
    } finally {
      await dup.cleanup();
    }
  });

  it('pool list shows every host with capacity, load, version and health', async () => {
    const out = await (hosts.get('c') as TestHost).ok(['pool', 'list']);
    const lines = out.trim().split('\n');
    assert.match(
      lines[0] as string,
      /^Host\s+Address\s+Memory\(MiB\)\s+Free\(MiB\)\s+Domains\s+Load\s+Version\s+Health/,
    );
    for (const n of names)
      assert.match(
        out,
        new RegExp(`^${n}\\s+127\\.0\\.0\\.1:\\d+\\s+\\d+\\s+\\d+\\s+0\\s+[\\d.]+\\s+\\S+\\s+ok$`, 'm'),
      );
  });

  it('a sponsor token can do nothing with the pool', async () => {
    const a = hosts.get('a') as TestHost;
    const tok = (await a.ok(['token', 'create', 'mallory'])).trim();
    for (const [method, path] of [
      ['GET', '/v1/pool'],
      ['GET', '/v1/pool/domains'],
      ['POST', '/v1/pool/leave'],
      ['POST', '/v1/pool/domains'],
    ]) {
      const r = await fetch(`http://127.0.0.1:${a.tcpPort()}${path}`, {
        method,
        headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
        body: method === 'POST' ? '{}' : undefined,
      });
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.doesNotMatch(await r.text(), /xnpool_|127\.0\.0\.1/);
    }
  });
});

/** A request on a host's Unix socket (its admin). */
function adminApi(h: TestHost, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: h.socket, path, method, headers: body === undefined ? {} : { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('pool API from the hostile side', () => {
  it('malformed requests are refused with a usage error; a forged peer token is 401', async () => {
    const a = hosts.get('a') as TestHost;
    for (const [path, body] of [
      ['/v1/pool/join', '{"pool":"tp","etcd":"http://x"}'],
      ['/v1/pool/join', '{"pool":"../x","etcd":["http://127.0.0.1:1"],"secret":"s"}'],
      ['/v1/pool/create', `{"pool":"${'x'.repeat(100)}","etcd":["http://127.0.0.1:1"]}`],
      ['/v1/pool/domains', '{"config":{"name":"x"}}'],
      ['/v1/pool/domains', '{"config":null,"antiAffinity":"a"}'],
      ['/v1/pool/domains/p0/migrate', '{"host":17}'],
      ['/v1/pool/domains/p0/migrate', '{"host":"../../etc"}'],
      ['/v1/pool/domains', '[1,2'],
    ] as const) {
      const r = await adminApi(a, 'POST', path, body);
      assert.ok(r.status >= 400 && r.status < 500, `${path} ${body}: ${r.status} ${r.text}`);
      assert.doesNotMatch(r.text, /xnpool_[0-9a-f]{8}|\n\s+at /);
    }
    // Already a member: a second create or join is refused.
    const again = await adminApi(a, 'POST', '/v1/pool/create', JSON.stringify({ pool: 'tq', etcd: [etcdUrl()] }));
    assert.equal(again.status, 409, again.text);
    const forged = await fetch(`http://127.0.0.1:${a.tcpPort()}/v1/pool/refresh`, {
      method: 'POST',
      headers: { authorization: `Bearer xn_00000000_${'A'.repeat(32)}` },
    });
    assert.equal(forged.status, 401);
  });
});

const created: string[] = [];
const uuidOf = new Map<string, string>();

describe('placement and identity', () => {
  it('create --pool spreads domains over the hosts and says why', async () => {
    const a = hosts.get('a') as TestHost;
    for (let i = 0; i < DOMAINS; i++) {
      const ha = i % 2 === 1;
      const name = ha ? `h${i}` : `p${i}`;
      let text = `name = "${name}"\nmemory = 192\non_crash = "restart"\n`;
      if (ha) {
        const disk = join(shared, `${name}.img`);
        writeFileSync(disk, Buffer.alloc(1024 * 1024));
        text += `ha = 1\ndisk = ['${disk},raw,xvda,rw']\n`;
      }
      const cfg = a.writeConfig(`${name}.cfg`, text);
      const r = await a.xl(['create', '--pool', cfg]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /placed on host [abc]: /);
      created.push(name);
    }
    const doms = await poolDomains();
    const byHost = new Map<string, number>();
    for (const d of doms) {
      byHost.set(d.host, (byHost.get(d.host) ?? 0) + 1);
      uuidOf.set(d.name, d.uuid);
    }
    assert.deepEqual(doms.map((d) => d.name).sort(), [...created].sort());
    // Spread: no host has two more than another.
    const counts = names.map((n) => byHost.get(n) ?? 0);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, JSON.stringify(counts));
    for (const d of doms) await ready(d.host, d.name);
  });

  it('list --pool shows every domain with its host, the same as each host lists', async () => {
    const out = await (hosts.get('b') as TestHost).ok(['list', '--pool']);
    const doms = await poolDomains();
    for (const d of doms) {
      assert.match(out, new RegExp(`^${d.name}\\s+${d.host}\\s`, 'm'));
      const local = await (hosts.get(d.host) as TestHost).ok(['list']);
      assert.match(local, new RegExp(`^${d.name}\\s`, 'm'));
    }
  });

  it('a name or uuid used anywhere in the pool is refused on every host', async () => {
    const first = created[0] as string;
    const doms = await poolDomains();
    const owner = doms.find((d) => d.name === first) as PoolDomain;
    const other = names.find((n) => n !== owner.host) as string;
    const h = hosts.get(other) as TestHost;
    const r1 = await h.xl(['create', '--pool', `name=${first}`, 'memory=128']);
    assert.notEqual(r1.code, 0);
    assert.match(r1.stderr, /already/);
    const r2 = await h.xl(['create', `name=${first}`, 'memory=128']);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /already/);
    const r3 = await h.xl(['create', '--pool', 'name=fresh', 'memory=128', `uuid=${owner.uuid}`]);
    assert.notEqual(r3.code, 0);
    assert.match(r3.stderr, /uuid/i);
  });

  it('anti-affinity keeps a domain off the hosts of the ones named', async () => {
    const doms = await poolDomains();
    const avoid = doms.slice(0, 2);
    const a = hosts.get('a') as TestHost;
    const r = await a.xl([
      'create',
      '--pool',
      '--anti-affinity',
      avoid.map((d) => d.name).join(','),
      'name=aa',
      'memory=128',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const placed = (await poolDomains()).find((d) => d.name === 'aa') as PoolDomain;
    for (const d of avoid) if (new Set(avoid.map((x) => x.host)).size < 3) assert.notEqual(placed.host, d.host);
    await (hosts.get(placed.host) as TestHost).ok(['destroy', 'aa']);
    await waitFor('aa gone from the index', async () =>
      (await poolDomains()).some((d) => d.name === 'aa') ? undefined : true,
    );
    // Nowhere left: refused, with the reason.
    const all = await a.xl([
      'create',
      '--pool',
      '--anti-affinity',
      doms.map((d) => d.name).join(','),
      'name=ab',
      'memory=128',
    ]);
    if (new Set(doms.map((d) => d.host)).size === 3) {
      assert.notEqual(all.code, 0);
      assert.match(all.stderr, /anti-affinity/);
    }
  });
});

describe('migration by host name', () => {
  it('xenode migrate DOM HOSTNAME moves it; the index follows', async () => {
    const doms = await poolDomains();
    const d = doms.find((x) => !x.ha) as PoolDomain;
    const to = names.find((n) => n !== d.host) as string;
    const src = hosts.get(d.host) as TestHost;
    const r = await src.xl(['migrate', d.name, to]);
    assert.equal(r.code, 0, r.stderr + src.logTail());
    const after = (await poolDomains()).find((x) => x.name === d.name) as PoolDomain;
    assert.equal(after.host, to);
    assert.match(await (hosts.get(to) as TestHost).ok(['list']), new RegExp(`^${d.name}\\s`, 'm'));
    assert.doesNotMatch(await src.ok(['list']), new RegExp(`^${d.name}\\s`, 'm'));
    const con = await (hosts.get(to) as TestHost).console(d.name);
    try {
      assert.equal(await con.run('echo moved'), 'moved');
    } finally {
      con.close();
    }
    // An unknown host name is refused before anything moves.
    const bad = await (hosts.get(to) as TestHost).xl(['migrate', d.name, 'nosuchhost']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /nosuchhost/);
  });
});

/** Kill (or pause) the host of an HA domain; its HA domains must run elsewhere, never twice. */
async function failover(mode: 'kill' | 'stop', round: number): Promise<number[]> {
  const doms = await poolDomains();
  const ha = doms.filter((d) => d.ha && d.state === 'running');
  assert.ok(ha.length > 0, 'no running HA domain');
  const victim = (ha[round % ha.length] as PoolDomain).host;
  const moving = ha.filter((d) => d.host === victim);
  const watch = watchNeverTwice(new Map(ha.map((d) => [d.name, d.uuid])));
  const t0 = Date.now();
  if (mode === 'kill') killHostHard(victim);
  else {
    process.kill((hosts.get(victim) as TestHost).daemonPid() as number, 'SIGSTOP');
    stopped.add(victim);
  }
  const times: number[] = [];
  await Promise.all(
    moving.map(async (d) => {
      const now = await waitFor(`${d.name} to run off ${victim}`, async () => {
        const x = (await poolDomains()).find((y) => y.name === d.name);
        return x && x.host !== victim && x.state === 'running' ? x : undefined;
      });
      const indexed = Date.now() - t0;
      await ready(now.host, d.name, 180_000);
      times.push(Date.now() - t0);
      phases.push(
        `${d.name}: ${victim}->${now.host} running in the index at ${indexed} ms, prompt at ${Date.now() - t0} ms`,
      );
      console.log(`# round ${round} (${mode}) ${phases.at(-1)}`);
    }),
  );
  if (mode === 'stop') {
    process.kill((hosts.get(victim) as TestHost).daemonPid() as number, 'SIGCONT');
    stopped.delete(victim);
    // Back: it sees its lease gone, keeps nothing of the moved domains and rejoins.
    const v = hosts.get(victim) as TestHost;
    await waitFor(`${victim} to rejoin`, async () =>
      /ok$/m.test((await v.ok(['pool', 'list'])).split('\n').find((l) => l.startsWith(`${victim} `)) ?? '')
        ? true
        : undefined,
    );
    const local = await v.ok(['list']);
    for (const d of moving) assert.doesNotMatch(local, new RegExp(`^${d.name}\\s`, 'm'));
  } else {
    // Bring the killed host back empty, as a repaired machine would rejoin.
    const v = hosts.get(victim) as TestHost;
    await v.ok(['pool', 'list']).catch(() => '');
    await waitFor(`${victim} to rejoin`, async () =>
      /ok$/m.test((await v.ok(['pool', 'list'])).split('\n').find((l) => l.startsWith(`${victim} `)) ?? '')
        ? true
        : undefined,
    );
  }
  const problems = await watch.stop();
  assert.deepEqual(problems, []);
  // The index and the QEMUs agree: one QEMU per HA domain, on the host the index names.
  for (const d of (await poolDomains()).filter((x) => x.ha)) {
    const q = qemusOf(d.uuid);
    assert.equal(q.length, 1, `${d.name}: ${q.length} QEMUs`);
    const dir = (hosts.get(d.host) as TestHost).dir;
    assert.match(readFileSync(`/proc/${q[0]}/cmdline`, 'utf8'), new RegExp(dir));
  }
  return times;
}

describe('failover', () => {
  it('a host killed hard: its HA domains run again on the others', async () => {
    const all: number[] = [];
    for (let i = 0; i < FAILOVERS; i++) all.push(...(await failover('kill', i)));
    console.log(
      `# failover (SIGKILL) kill -> guest prompt elsewhere, ms: ${all.join(', ')}\n# ${phases.splice(0).join('\n# ')}`,
    );
  });

  it('a host paused past its lease (SIGSTOP, SIGCONT): fenced first, never two copies', async () => {
    const all: number[] = [];
    for (let i = 0; i < FAILOVERS; i++) all.push(...(await failover('stop', i)));
    console.log(
      `# failover (SIGSTOP) stop -> guest prompt elsewhere, ms: ${all.join(', ')}\n# ${phases.splice(0).join('\n# ')}`,
    );
  });
});

describe('etcd restarted', () => {
  it('etcd killed and restarted: domains keep running, nothing in the index is lost', async () => {
    const before = await poolDomains();
    const pids = new Map(before.map((d) => [d.name, qemusOf(d.uuid).join(',')]));
    etcd?.kill('SIGKILL');
    await new Promise<void>((r) => etcd?.once('exit', () => r()));
    await startEtcd();
    await waitFor('every host healthy again', async () => {
      const out = await live().ok(['pool', 'list']);
      return names.every((n) => new RegExp(`^${n}\\s.*ok$`, 'm').test(out)) ? true : undefined;
    });
    const after = await poolDomains();
    assert.deepEqual(
      after.map((d) => `${d.name}@${d.host}:${d.uuid}`).sort(),
      before.map((d) => `${d.name}@${d.host}:${d.uuid}`).sort(),
    );
    let fenced = 0;
    for (const d of after) {
      if (!d.ha) {
        assert.equal(qemusOf(d.uuid).join(','), pids.get(d.name), `${d.name} kept its QEMU`);
        continue;
      }
      // An HA domain runs on: the same QEMU, or (fenced because the outage outlasted TTL/2) a new one on the same host.
      const q = await waitFor(`${d.name} to run once`, async () => {
        const x = qemusOf(d.uuid);
        return x.length === 1 ? x : undefined;
      });
      assert.match(readFileSync(`/proc/${q[0]}/cmdline`, 'utf8'), new RegExp((hosts.get(d.host) as TestHost).dir));
      if (q.join(',') !== pids.get(d.name)) fenced++;
    }
    console.log(
      `# etcd restart: ${fenced} of ${after.filter((d) => d.ha).length} HA domains were fenced and restarted on their host`,
    );
  });
});
