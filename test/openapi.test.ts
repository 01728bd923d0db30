// Issue 23: the OpenAPI 3.1 document of the API, generated from the routes as a
// real daemon registers them, served at /v1/openapi.json on both listeners,
// valid by a maintained validator (@readme/openapi-parser); the route check:
// every registered route described, every description (ROUTE_DOCS) a route.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { validate } from '@readme/openapi-parser';
import Fastify from 'fastify';
import { openApiDocument, trackRoutes } from '../src/api/openapi.ts';
import { ROUTE_DOCS, routeKey } from '../src/api/route-docs.ts';
import { TestHost } from './helpers/host.ts';

interface Reply {
  status: number;
  text: string;
}

function get(target: { socketPath: string } | { port: number }, path: string, token?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...target, host: '127.0.0.1', path, method: 'GET', headers: token ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

type Doc = { openapi: string; paths: Record<string, Record<string, { 'x-xenode-undescribed'?: boolean }>> };

/** "METHOD /url" of every operation, in fastify's spelling (:param). */
function operations(doc: Doc): string[] {
  const out: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const m of Object.keys(ops)) {
      out.push(routeKey(m, path.replace(/\{wildcard\}$/, '*').replace(/\{([A-Za-z0-9_]+)\}/g, ':$1')));
    }
  }
  return out;
}

function undescribed(doc: Doc): string[] {
  const out: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) if (op['x-xenode-undescribed']) out.push(`${m.toUpperCase()} ${path}`);
  }
  return out;
}

describe('route check', () => {
  it('flags a route registered without a schema, and not one with a schema or a ROUTE_DOCS entry', async () => {
    const app = Fastify();
    const reg = trackRoutes(app);
    app.get('/v1/with-schema', { schema: { summary: 'has one', tags: ['host'] } }, async () => ({}));
    app.get('/v1/openapi.json', async () => ({})); // described in ROUTE_DOCS
    app.post('/v1/brand-new-route', async () => ({}));
    await app.ready();
    assert.deepEqual(reg.undescribed(), ['POST /v1/brand-new-route']);
    const doc = openApiDocument(reg, { version: '0', mode: 'local' }) as unknown as Doc;
    assert.deepEqual(undescribed(doc), ['POST /v1/brand-new-route']);
    // The document is still valid OpenAPI; the check, not the validator, catches the gap.
    const v = await validate(structuredClone(doc) as never);
    assert.equal(v.valid, true, JSON.stringify(v));
    await app.close();
  });
});

/** Request bodies that say nothing of what they hold: a bare {type: object}. */
function vagueBodies(doc: Doc): string[] {
  const out: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      const body = (op as { requestBody?: { content?: Record<string, { schema?: Record<string, unknown> }> } })
        .requestBody;
      const schema = body?.content?.['application/json']?.schema;
      if (!schema) continue;
      const says = ['properties', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', '$ref', 'items'].some(
        (k) => k in schema,
      );
      if (!says) out.push(`${m.toUpperCase()} ${path}`);
    }
  }
  return out;
}

describe('request bodies in ROUTE_DOCS', () => {
  it('name their fields: no body is a bare {type: object}', () => {
    const vague = Object.entries(ROUTE_DOCS)
      .filter(([, d]) => {
        const b = d.body as Record<string, unknown> | undefined;
        return b !== undefined && Object.keys(b).every((k) => k === 'type' || k === 'description');
      })
      .map(([k]) => k);
    assert.deepEqual(vague, []);
  });

  it('mark required what the handler requires, and leave what it refuses out', () => {
    const body = (k: string) => ROUTE_DOCS[k]?.body as { required?: string[]; additionalProperties?: unknown };
    assert.deepEqual(body('POST /v1/domains/:dom/block-attach').required, ['spec']);
    assert.deepEqual(body('POST /v1/domains/:dom/migrate').required, ['host', 'port']);
    assert.deepEqual(body('POST /v1/pool/join').required, ['pool', 'etcd']);
    // quota-set and prices refuse unknown keys: the schema says so.
    assert.equal(body('PUT /v1/quotas/:sponsor').additionalProperties, false);
    assert.equal(body('PUT /v1/prices').additionalProperties, false);
  });
});

describe('/v1/openapi.json from a real daemon', () => {
  let host: TestHost;
  let local: Doc;
  let tcp: Doc;
  let sponsor: string;

  before(async () => {
    host = new TestHost();
    await host.ok(['info']);
    sponsor = (await host.ok(['token', 'create', 'alice'])).trim().split('\n').at(-1) as string;
    const a = await get({ socketPath: `${host.dir}/xenoded.sock` }, '/v1/openapi.json');
    assert.equal(a.status, 200, a.text);
    local = JSON.parse(a.text) as Doc;
    const b = await get({ port: host.tcpPort() }, '/v1/openapi.json', sponsor);
    assert.equal(b.status, 200, b.text);
    tcp = JSON.parse(b.text) as Doc;
  });

  after(async () => {
    await host?.cleanup();
  });

  it('is an OpenAPI 3.1 document that @readme/openapi-parser validates, on both listeners', async () => {
    assert.equal(local.openapi, '3.1.0');
    const r1 = await validate(structuredClone(local) as never);
    const r2 = await validate(structuredClone(tcp) as never);
    assert.equal(r1.valid, true, JSON.stringify(r1));
    assert.equal(r2.valid, true, JSON.stringify(r2));
  });

  it('describes every route the daemon registered (route check)', () => {
    assert.deepEqual(undescribed(local), [], 'routes on the local socket without a schema or ROUTE_DOCS entry');
    assert.deepEqual(undescribed(tcp), [], 'routes on TCP without a schema or ROUTE_DOCS entry');
    // Core, feature and web routes are all there.
    const ops = new Set([...operations(local), ...operations(tcp)]);
    for (const k of ['POST /v1/domains', 'GET /v1/domains/:dom/console', 'GET /v1/store/read', 'POST /v1/login']) {
      assert.ok(ops.has(k), `${k} missing`);
    }
  });

  it('describes every JSON request body by its fields', () => {
    assert.deepEqual(vagueBodies(local), []);
    assert.deepEqual(vagueBodies(tcp), []);
  });

  it('has no description that is not a route (every ROUTE_DOCS entry registered)', () => {
    const ops = new Set([...operations(local), ...operations(tcp)]);
    const stale = Object.keys(ROUTE_DOCS).filter((k) => !ops.has(k));
    assert.deepEqual(stale, [], 'ROUTE_DOCS entries no listener registers');
  });

  it('needs a token on TCP like every route', async () => {
    const r = await get({ port: host.tcpPort() }, '/v1/openapi.json');
    assert.equal(r.status, 401);
    const bad = await get({ port: host.tcpPort() }, '/v1/openapi.json', 'xn_nope_nope');
    assert.equal(bad.status, 401);
    assert.doesNotMatch(bad.text, /openapi/);
  });
});
