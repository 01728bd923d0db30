// The API's JSON bodies, as a sponsor sends them over TCP with a token: every
// route (core, store, every feature's) of the real fastify app with the real
// toolstack and store, through inject (no QEMU: its binary does not exist, so a
// create that gets that far fails as a user error). One app per worker: state
// carries over between inputs, as it does in a daemon.
// Input: [method][route][query length][query][body]; a method byte with bit 7
// set opens a WebSocket instead (see webSocket). Invariants: no 500 (an
// exception that was not a user error), no other sponsor's token in a reply,
// a JSON reply parses.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../src/api/context.ts';
import { buildApi } from '../../src/api/server.ts';
import { xenodeDirs } from '../../src/toolstack/dirs.ts';
import { DomainTable } from '../../src/toolstack/domain-table.ts';
import { DaemonLog } from '../../src/toolstack/log.ts';
import { createPlugins } from '../../src/toolstack/plugins.ts';
import { SponsorPolicy } from '../../src/toolstack/sponsors.ts';
import { controlStoreFactory } from '../../src/toolstack/store-factory.ts';
import { TokenStore } from '../../src/toolstack/tokens.ts';
import { Toolstack } from '../../src/toolstack/toolstack.ts';
import { type FuzzTarget, invariant } from '../target.ts';

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
export const ROUTES = [
  '/v1/domains',
  '/v1/domains/web1',
  '/v1/domains/1',
  '/v1/domains/web1/block',
  '/v1/domains/web1/block/stats',
  '/v1/domains/web1/block/throttle',
  '/v1/domains/web1/memory',
  '/v1/domains/web1/metrics',
  '/v1/domains/web1/net',
  '/v1/domains/web1/net/0',
  '/v1/domains/web1/net/0/rate',
  '/v1/domains/web1/sched',
  '/v1/domains/web1/vcpus',
  '/v1/domains/web1/block-attach',
  '/v1/domains/web1/block-detach',
  '/v1/domains/web1/cd-eject',
  '/v1/domains/web1/cd-insert',
  '/v1/domains/web1/dump-core',
  '/v1/domains/web1/monitor',
  '/v1/domains/web1/sysrq',
  '/v1/domains/web1/trigger',
  '/v1/domains/web1/pause',
  '/v1/domains/web1/unpause',
  '/v1/domains/web1/shutdown',
  '/v1/domains/web1/destroy',
  '/v1/domains/web1/save',
  '/v1/domains/web1/mem-set',
  '/v1/domains/web1/migrate',
  '/v1/restore',
  '/v1/account',
  '/v1/audit/events',
  '/v1/audit/rules',
  '/v1/bill',
  '/v1/events',
  '/v1/flows',
  '/v1/flows/verify',
  '/v1/flows/rotate',
  '/v1/info',
  '/v1/log',
  '/v1/net',
  '/v1/net/policy',
  '/v1/net/start',
  '/v1/pool',
  '/v1/pool/domains',
  '/v1/pool/create',
  '/v1/pool/join',
  '/v1/pool/leave',
  '/v1/pool/refresh',
  '/v1/pool/domains/web1/migrate',
  '/v1/prices',
  '/v1/quotas',
  '/v1/quotas/alice',
  '/v1/sched',
  '/v1/shm',
  '/v1/shm/grants',
  '/v1/storage',
  '/v1/storage/default',
  '/v1/storage/default/sponsors/alice',
  '/v1/store',
  '/v1/store/ls',
  '/v1/store/perms',
  '/v1/store/read',
  '/v1/store/watch',
  '/v1/store/write',
  '/v1/store/transaction',
  '/v1/tokens',
  '/v1/tokens/1',
  '/v1/volumes',
  '/v1/volumes/default/v1',
  '/v1/whoami',
  '/v1/login',
  '/v1/logout',
  '/metrics',
  '/login',
  '/',
  '/assets/x.js',
  '/v1/migrate/incoming',
];

export const WS_ROUTES = [
  '/v1/store/watch',
  '/v1/events',
  '/v1/domains/web1/console',
  '/v1/domains/1/console',
  '/v1/migrate/incoming',
];

/**
 * WebSocket mode (method byte with bit 7): upgrade on a WebSocket route with the
 * query, send the body as up to four messages (split at newlines), close.
 * A refused upgrade must be a 4xx; nothing sent back may carry bob's token.
 */
async function webSocket(app: FastifyInstance, data: Buffer, alice: string, bob: string): Promise<void> {
  const route = WS_ROUTES[(data[1] as number) % WS_ROUTES.length] as string;
  const qlen = data[2] as number;
  const query = data.subarray(3, 3 + qlen).toString('latin1');
  const url = query ? `${route}?${encodeURI(query)}` : route;
  const got: string[] = [];
  let ws: Awaited<ReturnType<FastifyInstance['injectWS']>>;
  try {
    // A socket the server closes at once may never report 'open' to inject's client: give up on it then.
    let timer: NodeJS.Timeout | undefined;
    const opened = await Promise.race([
      app.injectWS(url, { headers: { authorization: `Bearer ${alice}` } }),
      new Promise<undefined>((r) => {
        timer = setTimeout(() => r(undefined), 300);
      }),
    ]).finally(() => clearTimeout(timer));
    if (!opened) return;
    ws = opened;
  } catch (e) {
    const m = /Unexpected server response: (\d+)/.exec(e instanceof Error ? e.message : '');
    invariant(m && Number(m[1]) !== 500, `upgrade on ${route}: ${e instanceof Error ? e.message : String(e)}`);
    return;
  }
  ws.on('message', (d: Buffer) => got.push(d.toString('latin1')));
  const closed = new Promise<void>((r) => ws.once('close', () => r()));
  for (const m of data
    .subarray(3 + qlen)
    .toString('latin1')
    .split('\n')
    .slice(0, 4)) {
    if (ws.readyState === ws.OPEN) ws.send(m);
  }
  await new Promise((r) => setImmediate(r));
  ws.terminate();
  await closed;
  invariant(!got.some((m) => m.includes(bob)), `${route} sent bob's token over the WebSocket`);
}

export function apiInput(method: number, route: number, query: string, body: string): Uint8Array {
  const q = Buffer.from(query);
  return Uint8Array.from(Buffer.concat([Buffer.from([method, route, q.length]), q, Buffer.from(body)]));
}

export function target(): FuzzTarget {
  const dir = mkdtempSync(join(tmpdir(), 'xenode-fuzz-api-'));
  let app: FastifyInstance | undefined;
  let alice = '';
  let bob = '';
  let closeAll = async (): Promise<void> => {};
  const ready = (async () => {
    const dirs = xenodeDirs(dir);
    const table = new DomainTable(dirs.stateDb, { domainsDir: dirs.domainsDir });
    const tokens = new TokenStore(dirs.stateDb);
    const sponsors = new SponsorPolicy(dirs.stateDb);
    const log = new DaemonLog(undefined);
    const store = controlStoreFactory.open(dirs, log);
    const plugins = createPlugins();
    for (const p of plugins) await p.start?.({ dirs, log, store: store.sink, sponsors });
    const toolstack = new Toolstack({
      dirs,
      table,
      log,
      store: store.sink,
      hostAccel: { accel: 'tcg', reason: 'fuzz' },
      qemuBinary: '/nonexistent/qemu-system-x86_64',
      plugins,
      sponsors,
    });
    const extraRoutes: NonNullable<ApiContext['extraRoutes']> = [...(store.routes ?? [])];
    for (const p of plugins) if (p.routes) extraRoutes.push((a, c) => p.routes?.(a, c));
    const ctx: ApiContext = {
      toolstack,
      tokens,
      sponsors,
      log,
      hostInfo: () => ({ host: 'fuzz' }) as unknown as ReturnType<ApiContext['hostInfo']>,
      extraRoutes,
    };
    app = await buildApi(ctx, 'tcp');
    alice = tokens.create('alice').token;
    bob = tokens.create('bob').token;
    closeAll = async () => {
      await app?.close();
      for (const p of plugins) await p.stop?.();
      store.close();
      tokens.close();
      table.close();
    };
  })();
  return {
    name: 'api',
    about: 'JSON bodies on every route as sponsor alice: no 5xx, no other sponsor token leaked',
    files: ['src/api/', 'src/features/', 'src/toolstack/', 'src/config/'],
    maxLen: 4096,
    timeoutMs: 5000,
    ready,
    dict: [
      '{"config":"name = \'web1\'\\nmemory = 128\\n"}',
      '"name":"web1"',
      '"path":"/local/domain/1/x"',
      '"value":"v"',
      '"weight":256',
      '"cap":-1',
      '"rate":"10Mb/s"',
      '"target":"/etc/passwd"',
      '"sponsor":"bob"',
      '"perms":["n0"]',
      '"token":"',
      '"memory":',
      '"vdev":"xvdb"',
      '"pool":"default"',
      'path=/local/domain',
      'path=/',
      '&',
      '=',
      '%00',
      '..',
      '[]',
      '{}',
      'null',
      '-1',
      '1e309',
      '"__proto__"',
      '{"constructor":{"prototype":{}}}',
    ],
    generate: fc
      .record({
        m: fc.nat(4),
        r: fc.nat(ROUTES.length - 1),
        q: fc.constantFrom('', 'path=/local/domain/1', 'path=/tool', 'sponsor=bob', 'dom=1', 'since=0', 'n=999999999'),
        body: fc.oneof(
          fc.jsonValue().map((v) => JSON.stringify(v)),
          fc
            .dictionary(
              fc.constantFrom(
                'name',
                'config',
                'path',
                'value',
                'weight',
                'cap',
                'target',
                'vdev',
                'rate',
                'sponsor',
                'memory',
                'perms',
                'file',
                'token',
              ),
              fc.jsonValue(),
            )
            .map((v) => JSON.stringify(v)),
        ),
      })
      .map(({ m, r, q, body }) => apiInput(m, r, q, body)),
    async run(data) {
      await ready;
      if (!app || data.length < 3) return;
      if ((data[0] as number) & 0x80) {
        await webSocket(app, data, alice, bob);
        return;
      }
      const method = METHODS[(data[0] as number) % METHODS.length] as (typeof METHODS)[number];
      const route = ROUTES[(data[1] as number) % ROUTES.length] as string;
      const qlen = data[2] as number;
      const query = data.subarray(3, 3 + qlen).toString('latin1');
      const body = data.subarray(3 + qlen);
      const url = query ? `${route}?${encodeURI(query)}` : route;
      const withBody = method !== 'GET' && method !== 'DELETE';
      const r = await app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${alice}`, ...(withBody ? { 'content-type': 'application/json' } : {}) },
        ...(withBody ? { payload: body } : {}),
      });
      // A 5xx from a XenodeError is a chosen answer (quota: 507); one from anything else is a crash.
      invariant(
        r.statusCode !== 500 && !r.body.includes('"kind":"internal"'),
        `${method} ${route}: ${r.statusCode} ${r.body.slice(0, 200)}`,
      );
      invariant(!r.body.includes(bob), `${method} ${route} leaked bob's token`);
      if (String(r.headers['content-type'] ?? '').includes('application/json') && r.body) JSON.parse(r.body);
    },
    async close() {
      await ready;
      await closeAll();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
