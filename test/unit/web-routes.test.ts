// The web UI's routes on the TCP listener (fastify inject, real token store
// and toolstack, no QEMU): which requests need the session, what the login
// cookie looks like, and that the Unix socket serves no pages.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../src/api/context.ts';
import { buildApi } from '../../src/api/server.ts';
import { metricsPlugin } from '../../src/features/metrics/plugin.ts';
import { xenodeDirs } from '../../src/toolstack/dirs.ts';
import { DomainTable } from '../../src/toolstack/domain-table.ts';
import { DaemonLog } from '../../src/toolstack/log.ts';
import { SponsorPolicy } from '../../src/toolstack/sponsors.ts';
import { NULL_STORE_SINK } from '../../src/toolstack/store-sink.ts';
import { TokenStore } from '../../src/toolstack/tokens.ts';
import { Toolstack } from '../../src/toolstack/toolstack.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(ROOT, 'web/dist/.vite/manifest.json'), 'utf8')) as Record<
  string,
  { file: string; css?: string[] }
>;

let dir: string;
let tcp: FastifyInstance;
let local: FastifyInstance;
let tokens: TokenStore;
let table: DomainTable;
let log: DaemonLog;
let alice: string;
/** name=value of a web session opened with alice's token */
let session: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'xn-webroutes-'));
  const dirs = xenodeDirs(dir);
  table = new DomainTable(dirs.stateDb);
  tokens = new TokenStore(dirs.stateDb);
  log = new DaemonLog(undefined);
  const plugin = metricsPlugin();
  const toolstack = new Toolstack({
    dirs,
    table,
    log,
    store: NULL_STORE_SINK,
    hostAccel: { accel: 'tcg', reason: 'test' },
    qemuBinary: 'qemu-system-x86_64',
    plugins: [plugin],
  });
  const ctx: ApiContext = {
    toolstack,
    tokens,
    sponsors: new SponsorPolicy(dirs.stateDb),
    log,
    hostInfo: () => {
      throw new Error('not used');
    },
    extraRoutes: [(app, c) => plugin.routes?.(app, c)],
  };
  tcp = await buildApi(ctx, 'tcp');
  local = await buildApi(ctx, 'local');
  alice = tokens.create('alice').token;
  const r = await tcp.inject({ method: 'POST', url: '/v1/login', payload: { token: alice } });
  session = String(r.headers['set-cookie']).split(';')[0];
  await plugin.stop?.();
});

after(async () => {
  await tcp.close();
  await local.close();
  tokens.close();
  table.close();
  rmSync(dir, { recursive: true, force: true });
});

const cookie = () => session;

describe('web routes', () => {
  it('pages without a session redirect to /login; the login page is served with a strict CSP', async () => {
    for (const url of ['/', '/create', '/domains/3', '/domains/web1/console']) {
      const r = await tcp.inject({ url });
      assert.equal(r.statusCode, 302, url);
      assert.equal(r.headers.location, '/login');
    }
    const r = await tcp.inject({ url: '/login' });
    assert.equal(r.statusCode, 200);
    assert.match(r.headers['content-type'] as string, /text\/html/);
    assert.match(r.headers['content-security-policy'] as string, /script-src 'self'/);
    assert.match(r.headers['content-security-policy'] as string, /frame-ancestors 'none'/);
    assert.match(r.body, /<form id="login"/);
  });

  it("only the login page's own assets are public", async () => {
    for (const f of [manifest['login.html'].file, ...(manifest['login.html'].css ?? [])]) {
      assert.equal((await tcp.inject({ url: `/${f}` })).statusCode, 200, f);
    }
    for (const f of [manifest['index.html'].file, ...(manifest['index.html'].css ?? [])]) {
      assert.equal((await tcp.inject({ url: `/${f}` })).statusCode, 401, f);
      const ok = await tcp.inject({ url: `/${f}`, headers: { cookie: cookie() } });
      assert.equal(ok.statusCode, 200, f);
      assert.match(ok.headers['cache-control'] as string, /immutable/);
    }
    assert.equal((await tcp.inject({ url: '/assets/nope.js', headers: { cookie: cookie() } })).statusCode, 404);
    const traversal = await tcp.inject({ url: '/assets/..%2f..%2fpackage.json', headers: { cookie: cookie() } });
    assert.equal(traversal.statusCode, 404);
  });

  it('every API route needs the session, except login and logout', async () => {
    for (const url of ['/v1/domains', '/v1/whoami', '/v1/info', '/v1/domains/1/metrics']) {
      const r = await tcp.inject({ url });
      assert.equal(r.statusCode, 401, url);
      assert.equal(r.json<{ error: { kind: string } }>().error.kind, 'unauthorized');
    }
    assert.equal((await tcp.inject({ url: '/v1/whoami', headers: { cookie: cookie() } })).statusCode, 200);
  });

  it('login checks the token and sets an HttpOnly SameSite=Strict session cookie; neither it nor the body holds the token', async () => {
    const bad = await tcp.inject({ method: 'POST', url: '/v1/login', payload: { token: 'xn_deadbeef_nope' } });
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.headers['set-cookie'], undefined);
    const empty = await tcp.inject({ method: 'POST', url: '/v1/login', payload: {} });
    assert.equal(empty.statusCode, 400);
    const r = await tcp.inject({ method: 'POST', url: '/v1/login', payload: { token: ` ${alice}\n` } });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(r.json(), { sponsor: 'alice', admin: false });
    assert.doesNotMatch(r.body, /xn_/);
    const set = String(r.headers['set-cookie']);
    assert.match(set, /^xenode_session=[A-Za-z0-9_-]{43};/);
    assert.ok(!set.includes(alice), 'the cookie is a session id, not the token');
    for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/']) assert.ok(set.includes(attr), attr);
    assert.ok(!log.entries().some((e) => e.msg.includes(alice)), 'token not logged');
    assert.ok(log.entries().some((e) => e.msg.includes('web login: sponsor alice')));
  });

  it('logout clears the cookie and ends the session', async () => {
    const login = await tcp.inject({ method: 'POST', url: '/v1/login', payload: { token: alice } });
    const other = String(login.headers['set-cookie']).split(';')[0];
    assert.equal((await tcp.inject({ url: '/v1/whoami', headers: { cookie: other } })).statusCode, 200);
    const r = await tcp.inject({ method: 'POST', url: '/v1/logout', headers: { cookie: other } });
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['set-cookie']), /^xenode_session=;.*Max-Age=0/);
    assert.equal((await tcp.inject({ url: '/v1/whoami', headers: { cookie: other } })).statusCode, 401);
    assert.equal((await tcp.inject({ url: '/v1/whoami', headers: { cookie: cookie() } })).statusCode, 200);
  });

  it('a cookie from another site is refused; the same origin and Bearer tokens pass', async () => {
    const evil = await tcp.inject({
      url: '/v1/domains',
      headers: { cookie: cookie(), origin: 'http://evil.example', host: '127.0.0.1:8080' },
    });
    assert.equal(evil.statusCode, 403);
    const same = await tcp.inject({
      url: '/v1/domains',
      headers: { cookie: cookie(), origin: 'http://127.0.0.1:8080', host: '127.0.0.1:8080' },
    });
    assert.equal(same.statusCode, 200);
    const cli = await tcp.inject({
      url: '/v1/domains',
      headers: { authorization: `Bearer ${alice}`, origin: 'http://evil.example' },
    });
    assert.equal(cli.statusCode, 200);
  });

  it('the Unix socket serves the API but no pages', async () => {
    assert.equal((await local.inject({ url: '/' })).statusCode, 404);
    assert.equal((await local.inject({ url: '/login' })).statusCode, 404);
    assert.equal((await local.inject({ url: '/v1/domains' })).statusCode, 200);
    const m = await local.inject({ url: '/v1/domains/7/metrics' });
    assert.equal(m.statusCode, 404);
  });
});
