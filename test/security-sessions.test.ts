// Issue 13, finding 7 and the session items of finding 11: a revoked token's
// open WebSockets close within a second; the web login cookie is a session id
// of its own (never the token) that logout ends; GET /v1/log changes nothing;
// WebSocket messages are size-limited; a console client that never reads is
// dropped rather than buffered for without limit; failed logins are logged and
// rate-limited; a non-admin token for the sponsor `admin` is worth nothing.
// Driven over the real TCP API with real tokens, against a real guest.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, watch } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { ensureDefaultGuest } from '../guest/build.ts';
import { TestHost } from './helpers/host.ts';

let host: TestHost;
let port: number;
let admin: string;
let alice: string;
let aliceId: string;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function http(
  method: string,
  path: string,
  auth: { token?: string; cookie?: string } = {},
  body?: unknown,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (auth.token) headers.authorization = `Bearer ${auth.token}`;
    if (auth.cookie) headers.cookie = auth.cookie;
    if (payload) headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    if (payload) req.write(payload);
    req.end();
  });
}

/** A WebSocket on the TCP API; resolves once open. */
function wsOpen(path: string, auth: { token?: string; cookie?: string }): Promise<WebSocket> {
  const headers: Record<string, string> = {};
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.cookie) headers.cookie = auth.cookie;
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

interface Closed {
  code: number;
  reason: string;
  at: number;
}

function closed(ws: WebSocket): Promise<Closed> {
  return new Promise((resolve) => {
    if (ws.readyState === ws.CLOSED) resolve({ code: -1, reason: 'already closed', at: Date.now() });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() }));
  });
}

/** `p`, or undefined after `ms` (the deadline of an event that must happen). */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    void p.then((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

/** name=value of the session cookie a login answer sets. */
function sessionCookie(r: Reply): string {
  const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []);
  const c = set.find((s) => /^xenode_session=[^;]+/.test(s));
  assert.ok(c, `a session cookie is set: ${set.join(' | ')}`);
  return c.split(';')[0];
}

/** Log in as the web page does; name=value of the cookie it sets (whatever its name). */
async function login(token: string): Promise<string> {
  const r = await http('POST', '/v1/login', {}, { token });
  assert.equal(r.status, 200, r.text);
  const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []);
  assert.ok(set[0], 'a cookie is set');
  return set[0].split(';')[0];
}

/** Resolves with the first line of the daemon's log file that matches `re`. */
function logLine(re: RegExp): { line: Promise<string>; stop: () => void } {
  const file = join(host.dir, 'xenoded.log');
  let stop = () => {};
  const line = new Promise<string>((resolve) => {
    const check = () => {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        return;
      }
      const hit = text.split('\n').find((l) => re.test(l));
      if (hit) {
        w.close();
        resolve(hit);
      }
    };
    const w = watch(file, check);
    // A watcher whose line never came must not keep the test file's process alive.
    w.unref();
    stop = () => w.close();
    check();
  });
  return { line, stop };
}

function daemonRssKiB(): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${host.daemonPid()}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

before(async () => {
  await ensureDefaultGuest();
  host = new TestHost();
  await host.ok(['list']); // starts xenoded
  port = host.tcpPort();
  admin = (await host.ok(['token', 'create', 'root', '--admin'])).trim();
  const r = await host.xl(['token', 'create', 'alice']);
  assert.equal(r.code, 0, r.stderr);
  alice = r.stdout.trim();
  aliceId = /token ([0-9a-f]{8})/.exec(r.stderr)?.[1] ?? '';
  assert.ok(aliceId, r.stderr);
});

let s1: Promise<string> | undefined;
/** alice's guest for the console tests, created on first use (after item 2's daemon restart). */
function aliceGuest(): Promise<string> {
  s1 ??= host.ok(['create', host.writeConfig('s1.cfg', 'name = "s1"\nmemory = 256\nsponsor = "alice"\n')]);
  return s1;
}

after(async () => {
  await host?.cleanup();
});

describe('sessions and tokens (issue 13, findings 7 and 11)', () => {
  it('item 2: the web login sets a session id of its own, kept across a daemon restart and ended by logout', async () => {
    const r = await http('POST', '/v1/login', {}, { token: alice });
    assert.equal(r.status, 200, r.text);
    const cookie = sessionCookie(r);
    const value = cookie.slice(cookie.indexOf('=') + 1);
    assert.ok(!value.includes(alice) && !value.includes('xn_'), 'the token is not in the cookie');
    assert.ok(!([] as string[]).concat(r.headers['set-cookie'] ?? []).some((s) => s.includes(alice)));
    assert.ok(value.length >= 32, 'a long random session id');
    assert.equal((await http('GET', '/v1/whoami', { cookie })).status, 200);
    // A cookie carrying the raw token is no session.
    for (const name of ['xenode_session', 'xenode_token']) {
      assert.equal((await http('GET', '/v1/whoami', { cookie: `${name}=${alice}` })).status, 401, name);
    }
    // Sessions live next to the tokens: a daemon restart keeps the browser logged in.
    host.killDaemon('SIGKILL');
    await host.ok(['list']);
    port = host.tcpPort();
    const who = await http('GET', '/v1/whoami', { cookie });
    assert.equal(who.status, 200, who.text);
    assert.equal((JSON.parse(who.text) as { sponsor: string }).sponsor, 'alice');
    // Logout ends that session and what it opened, though the token itself still works.
    const events = await wsOpen('/v1/events', { cookie });
    const byToken = await wsOpen('/v1/events', { token: alice });
    const gone = closed(events);
    const out = await http('POST', '/v1/logout', { cookie });
    assert.equal(out.status, 200);
    const c = await within(gone, 1000);
    assert.equal(c?.code, 4001, "the session's event stream closed at logout");
    assert.equal(c?.reason, 'logged out');
    assert.equal(byToken.readyState, byToken.OPEN, 'a socket opened with the token itself stays');
    byToken.close();
    assert.equal((await http('GET', '/v1/whoami', { cookie })).status, 401, 'the session died with logout');
    assert.equal((await http('GET', '/v1/whoami', { token: alice })).status, 200);
  });

  it('item 3: GET /v1/log never clears; clearing is DELETE /v1/log, admin only (and `dmesg -c`)', async () => {
    const has = async (re: RegExp) => {
      const r = await http('GET', '/v1/log', { token: admin });
      assert.equal(r.status, 200, r.text);
      return (JSON.parse(r.text) as Array<{ msg: string }>).some((e) => re.test(e.msg));
    };
    const started = /xenoded .* started/;
    assert.ok(await has(started));
    const get = await http('GET', '/v1/log?clear=1', { token: admin });
    assert.ok(await has(started), 'a GET changed nothing');
    assert.equal(get.status, 400, get.text);
    assert.match(get.text, /DELETE \/v1\/log/);
    const sponsor = await http('DELETE', '/v1/log', { token: alice });
    assert.equal(sponsor.status, 403, sponsor.text);
    assert.ok(await has(started), 'a sponsor cannot clear the log');
    const del = await http('DELETE', '/v1/log', { token: admin });
    assert.equal(del.status, 200, del.text);
    assert.ok(
      (JSON.parse(del.text) as Array<{ msg: string }>).some((e) => started.test(e.msg)),
      'DELETE answers with what it cleared',
    );
    assert.equal(await has(started), false, 'DELETE cleared the log');
    // The CLI's `dmesg -c` reads and clears through DELETE.
    await host.ok(['token', 'list']);
    await host.ok(['token', 'create', 'marker', '--label', 'x']);
    assert.match(await host.ok(['dmesg', '-c']), /token [0-9a-f]{8} created for sponsor marker/);
    assert.doesNotMatch(await host.ok(['dmesg']), /created for sponsor marker/);
  });

  it('item 7: no non-admin token for the sponsor `admin`, and an existing one owns nothing', async () => {
    // A token made before this rule: written straight into the token table.
    await host.ok(['create', '-p', host.writeConfig('adm1.cfg', 'name = "adm1"\nmemory = 128\n')]);
    const id = randomBytes(4).toString('hex');
    const legacy = `xn_${id}_${randomBytes(24).toString('base64url')}`;
    const db = new Database(join(host.dir, 'domains.db'));
    db.prepare('INSERT INTO tokens (id, sponsor, admin, hash, created, label) VALUES (?, ?, 0, ?, ?, ?)').run(
      id,
      'admin',
      createHash('sha256').update(legacy).digest(),
      Date.now(),
      'legacy',
    );
    db.close();
    const list = await http('GET', '/v1/domains', { token: legacy });
    assert.ok(list.status === 401 || !list.text.includes('adm1'), `adm1 is not listed: ${list.status} ${list.text}`);
    const destroy = await http('POST', '/v1/domains/adm1/destroy', { token: legacy }, {});
    assert.notEqual(destroy.status, 200, destroy.text);
    assert.match(await host.ok(['list']), /^adm1\s/m, 'adm1 still there');
    const who = await http('GET', '/v1/whoami', { token: legacy });
    assert.ok(who.status === 401 || !(JSON.parse(who.text) as { admin: boolean }).admin);
    await host.ok(['destroy', 'adm1']);
    const r = await host.xl(['token', 'create', 'admin']);
    assert.notEqual(r.code, 0, 'refused');
    assert.match(r.stderr, /admin/);
    assert.match(r.stderr, /--admin/, 'the hint names --admin');
    assert.doesNotMatch(r.stdout, /xn_/);
    const ok = await host.xl(['token', 'create', 'admin', '--admin']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('item 4: WebSocket messages are size-limited (console 64 KiB, others 1 MiB): oversize closes with 1009', async () => {
    await aliceGuest();
    const events = await wsOpen('/v1/events', { token: alice });
    const ev = closed(events);
    events.send('x'.repeat(2 * 1024 * 1024));
    const e = await within(ev, 10_000);
    assert.equal(e?.code, 1009, 'events: a 2 MiB message closes the socket');
    const con = await wsOpen('/v1/domains/s1/console?scrollback=0', { token: alice });
    const cc = closed(con);
    con.send(Buffer.alloc(100 * 1024, 0x20));
    const c = await within(cc, 10_000);
    assert.equal(c?.code, 1009, 'console: a 100 KiB message closes the socket');
    // Messages under the limits are fine.
    const small = await wsOpen('/v1/events', { token: alice });
    small.send('x'.repeat(1000));
    assert.equal(await within(closed(small), 500), undefined, 'a small message keeps the socket open');
    small.close();
  });

  it('item 5: a console client that never reads is dropped; the daemon stays bounded and others keep working', async () => {
    await aliceGuest();
    // The normal client: reads everything, keeps only the tail.
    const normal = await wsOpen('/v1/domains/s1/console', { token: alice });
    let tail = '';
    let got = 0;
    const waiters: Array<() => void> = [];
    normal.on('message', (d: Buffer) => {
      got += d.length;
      tail = (tail + d.toString('latin1')).slice(-4096);
      for (const w of waiters.splice(0)) w();
    });
    const until = (re: RegExp, ms: number) =>
      within(
        new Promise<true>((resolve) => {
          const check = () => (re.test(tail) ? resolve(true) : waiters.push(check));
          check();
        }),
        ms,
      );
    assert.ok(await until(/XENODE-READY/, 180_000), `guest booted: ${tail}`);
    tail = '';
    normal.send('\n');
    assert.ok(await until(/s1:\/# /, 60_000), `guest shell ready: ${tail}`);

    // The slow client: a raw TCP WebSocket that upgrades and then never reads.
    const slow: Socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      slow.once('connect', resolve);
      slow.once('error', reject);
    });
    slow.write(
      'GET /v1/domains/s1/console?scrollback=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        `Authorization: Bearer ${alice}\r\n\r\n`,
    );
    const head = await new Promise<string>((resolve) => {
      let buf = '';
      const onData = (d: Buffer) => {
        buf += d.toString('latin1');
        if (buf.includes('\r\n\r\n')) {
          slow.off('data', onData);
          slow.pause();
          resolve(buf);
        }
      };
      slow.on('data', onData);
    });
    assert.match(head, /^HTTP\/1\.1 101/);

    const dropped = logLine(/console client .*dropped/);
    const baseline = daemonRssKiB();
    let peak = baseline;
    let lastSample = 0;
    normal.on('message', () => {
      if (got - lastSample > 256 * 1024) {
        lastSample = got;
        peak = Math.max(peak, daemonRssKiB());
      }
    });
    // As much output as the guest's serial line gives (~50 KB/s under TCG): 10 MB
    // unless interrupted, about twice what fills the kernel's socket buffers and
    // the daemon's limit for a client that never reads.
    normal.send(
      'yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz | head -c 10000000; echo FLOOD"-"END\n',
    );
    const first = await Promise.race([
      dropped.line.then(() => 'dropped'),
      until(/FLOOD-END/, 900_000).then((v) => (v ? 'flood ended' : 'timeout')),
    ]);
    dropped.stop();
    assert.equal(first, 'dropped', 'the reader that never reads was dropped before the flood ended');
    normal.send('\x03');
    tail = '';
    normal.send('echo "still""-here"\n');
    assert.ok(await until(/still-here/, 120_000), 'the normal client keeps working');
    assert.ok(peak - baseline < 128 * 1024, `daemon RSS grew by ${peak - baseline} KiB`);

    // What the slow client was sent is bounded, and its connection ends there.
    let pending = 0;
    slow.on('data', (d: Buffer) => {
      pending += d.length;
    });
    const ended = new Promise<true>((resolve) => slow.once('close', () => resolve(true)));
    slow.on('error', () => {}); // a reset is a disconnection too
    slow.resume();
    assert.equal(await within(ended, 60_000), true, 'the slow client was disconnected');
    assert.ok(pending < 12 * 1024 * 1024, `slow client was sent ${pending} bytes`);
    normal.close();
  });

  it('item 1: revoking a token closes its open WebSockets (console, events, store watch, web session) within a second', async () => {
    await aliceGuest();
    const domid = Number((await host.ok(['domid', 's1'])).trim());
    const cookie = await login(alice);
    const sockets: Record<string, WebSocket> = {
      console: await wsOpen('/v1/domains/s1/console?scrollback=0', { token: alice }),
      events: await wsOpen('/v1/events', { token: alice }),
      watch: await wsOpen(`/v1/store/watch?path=${encodeURIComponent(`/local/domain/${domid}`)}`, { token: alice }),
      'web events': await wsOpen('/v1/events', { cookie }),
      'web console': await wsOpen('/v1/domains/s1/console?scrollback=0', { cookie }),
    };
    const bystander = await wsOpen('/v1/events', { token: admin });
    const closes = Object.fromEntries(Object.entries(sockets).map(([k, ws]) => [k, closed(ws)]));
    await host.ok(['token', 'revoke', aliceId]);
    const revokedAt = Date.now();
    for (const [name, p] of Object.entries(closes)) {
      const c = await within(p, 1000 - (Date.now() - revokedAt));
      assert.ok(c, `${name}: closed within a second of the revoke`);
      assert.equal(c.code, 4001, `${name}: close code`);
      assert.match(c.reason, /revoked/, name);
    }
    assert.equal(bystander.readyState, bystander.OPEN, "another token's socket stays open");
    bystander.close();
    assert.equal((await http('GET', '/v1/whoami', { cookie })).status, 401, 'its web session died too');
    assert.equal((await http('GET', '/v1/whoami', { token: alice })).status, 401);
    await assert.rejects(wsOpen('/v1/events', { token: alice }), /401/);
  });

  it('item 6: failed logins are logged with the address (never the token) and rate-limited per address', async () => {
    // Earlier tests' refused tokens (the legacy and the revoked one) count too.
    const bad = (i: number) => `xn_0000000${i % 10}_guess${i}secretpart`;
    let r = await http('GET', '/v1/domains', { token: bad(0) });
    assert.equal(r.status, 401, 'the first failures are answered 401');
    let attempts = 1;
    while (r.status === 401 && attempts <= 10) r = await http('GET', '/v1/domains', { token: bad(attempts++) });
    assert.equal(r.status, 429, `refused after ${attempts} attempts: ${r.text}`);
    const retry = Number(r.headers['retry-after']);
    assert.ok(retry > 0 && retry <= 60, `Retry-After: ${r.headers['retry-after']}`);
    const web = await http('POST', '/v1/login', {}, { token: bad(99) });
    assert.equal(web.status, 429, 'the login page too');
    assert.ok(web.headers['retry-after']);
    // A valid token still works from that address.
    assert.equal((await http('GET', '/v1/domains', { token: admin })).status, 200);
    const dmesg = await host.ok(['dmesg']);
    assert.match(dmesg, /auth failed from 127\.0\.0\.1/);
    assert.match(dmesg, /127\.0\.0\.1 .*rate-limited|rate-limited.*127\.0\.0\.1/);
    assert.doesNotMatch(dmesg, /guess|secretpart/, 'no token text in the log');
  });
});
