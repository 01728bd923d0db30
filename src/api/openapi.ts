// The OpenAPI 3.1 document of xenoded's API, generated from the routes as they
// are registered: each route's own fastify `schema` (summary, tags, body,
// querystring, params, response), or else its entry in ROUTE_DOCS. A route
// with neither is "undescribed": the daemon logs it and the route check
// (test/openapi.test.ts) fails, so the document cannot fall behind the routes.

import type { FastifyInstance, RouteOptions } from 'fastify';
import { ROUTE_DOCS, type RouteDoc, routeKey } from './route-docs.ts';

declare module 'fastify' {
  /** What a route's schema may say about it for the document (as @fastify/swagger reads it). */
  interface FastifySchema {
    summary?: string;
    description?: string;
    tags?: readonly string[];
  }
}

/** The schema part of a route the generator reads (fastify's own keys). */
interface RouteSchema {
  summary?: string;
  description?: string;
  tags?: readonly string[];
  body?: unknown;
  querystring?: unknown;
  params?: unknown;
  response?: Record<string, unknown>;
}

export interface RegisteredRoute {
  method: string;
  url: string;
  websocket: boolean;
  /** From the route's own schema, else ROUTE_DOCS; undefined = undescribed. */
  doc?: RouteDoc;
}

/** Every route registered on one listener, as the onRoute hook saw it. */
export class RouteRegistry {
  readonly routes: RegisteredRoute[] = [];

  /** Routes registered without a schema and without a ROUTE_DOCS entry. */
  undescribed(): string[] {
    return this.routes.filter((r) => !r.doc).map((r) => routeKey(r.method, r.url));
  }
}

function docFromSchema(s: RouteSchema): RouteDoc | undefined {
  if (!s.summary && !s.description) return undefined;
  return {
    summary: s.summary ?? s.description ?? '',
    description: s.summary ? s.description : undefined,
    tags: s.tags,
    body: s.body,
    query: s.querystring,
    response: s.response?.['200'],
  };
}

/**
 * Record every route registered on `app` from now on (install before any route).
 * A route described only in ROUTE_DOCS gets its summary and tags as its fastify
 * schema too; bodies stay in the document (the handlers check them).
 */
export function trackRoutes(app: FastifyInstance): RouteRegistry {
  const reg = new RouteRegistry();
  app.addHook('onRoute', (opts: RouteOptions) => {
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    for (const m of methods) {
      // fastify adds a HEAD twin beside every GET by itself; Xenode registers no HEAD of its own.
      if (m === 'HEAD') continue;
      const own = opts.schema ? docFromSchema(opts.schema as RouteSchema) : undefined;
      const doc = own ?? ROUTE_DOCS[routeKey(m, opts.url)];
      if (!own && doc) opts.schema = { ...(opts.schema ?? {}), summary: doc.summary, tags: doc.tags };
      reg.routes.push({ method: m, url: opts.url, websocket: opts.websocket === true, doc });
    }
  });
  return reg;
}

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['kind', 'message'],
      properties: {
        kind: {
          type: 'string',
          description: 'config, usage, not-found, permission, conflict, state, engine, internal, ...',
        },
        message: { type: 'string' },
        hint: { type: 'string' },
      },
    },
  },
} as const;

/** Plain JSON Schema from a TypeBox schema or object literal (TypeBox's symbols dropped). */
function plain(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema ?? {})) as Record<string, unknown>;
}

function tagOf(url: string): string {
  const parts = url.split('/').filter((p) => p !== '');
  if (parts[0] !== 'v1') return 'web';
  if (parts[1] === 'domains' && parts.length > 3) return 'domains';
  return parts[1] ?? 'host';
}

export interface OpenApiInfo {
  version: string;
  /** Listener the document describes: the local socket or TCP. */
  mode: 'local' | 'tcp';
}

/** The OpenAPI 3.1 document of the routes in `reg`. */
export function openApiDocument(reg: RouteRegistry, info: OpenApiInfo): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const tags = new Set<string>();
  for (const r of reg.routes) {
    const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{wildcard}');
    const params = [...path.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const doc = r.doc;
    const tag = doc?.tags?.[0] ?? tagOf(r.url);
    tags.add(tag);
    const op: Record<string, unknown> = {
      operationId: `${r.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      summary: doc?.summary ?? 'undescribed route',
      tags: [tag],
    };
    if (doc?.description) op.description = doc.description;
    if (!doc) op['x-xenode-undescribed'] = true;
    const query = doc?.query ? plain(doc.query) : undefined;
    const queryParams = Object.entries((query?.properties as Record<string, unknown> | undefined) ?? {}).map(
      ([name, s]) => ({
        name,
        in: 'query',
        required: Array.isArray(query?.required) && (query.required as string[]).includes(name),
        schema: s,
      }),
    );
    if (params.length + queryParams.length > 0) op.parameters = [...params, ...queryParams];
    if (doc?.body !== undefined) {
      op.requestBody = {
        required: doc.bodyRequired !== false,
        content: { 'application/json': { schema: plain(doc.body) } },
      };
    }
    if (r.websocket) {
      op['x-websocket'] = true;
      op.responses = {
        '101': { description: 'Switching Protocols: a WebSocket (see the summary for its messages)' },
        default: {
          description: 'refused before the upgrade',
          content: { 'application/json': { schema: ERROR_SCHEMA } },
        },
      };
    } else {
      op.responses = {
        '200': {
          description: doc?.responseDescription ?? 'success',
          content: { [doc?.contentType ?? 'application/json']: { schema: doc?.response ? plain(doc.response) : {} } },
        },
        default: { description: 'error', content: { 'application/json': { schema: ERROR_SCHEMA } } },
      };
    }
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'xenoded API',
      version: info.version,
      description:
        info.mode === 'local'
          ? 'The local admin socket ($XENODE_DIR/xenoded.sock): every request acts as the admin.'
          : 'The TCP listener: every request needs Authorization: Bearer <token> (or a web session cookie).',
    },
    ...(info.mode === 'tcp'
      ? {
          components: { securitySchemes: { token: { type: 'http', scheme: 'bearer' } } },
          security: [{ token: [] }],
        }
      : {}),
    tags: [...tags].sort().map((name) => ({ name })),
    paths,
  };
}

/** GET /v1/openapi.json, itself described. The document is built once, on first request. */
export function registerOpenApiRoute(
  app: FastifyInstance,
  reg: RouteRegistry,
  mode: OpenApiInfo['mode'],
  version: () => string,
): void {
  let doc: Record<string, unknown> | undefined;
  app.get('/v1/openapi.json', async () => {
    doc ??= openApiDocument(reg, { mode, version: version() });
    return doc;
  });
}
