// xenoded's HTTP + WebSocket API. The same routes are served on the local Unix
// socket (caller = local admin) and on TCP, where every request needs a token.

import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type WireError, XenodeError } from '../errors.ts';
import type { DaemonLog } from '../toolstack/log.ts';
import { LOCAL_ADMIN, type Principal } from '../toolstack/principal.ts';
import type { TokenStore } from '../toolstack/tokens.ts';
import type { Toolstack } from '../toolstack/toolstack.ts';
import { registerDomainRoutes } from './routes-domains.ts';
import { registerHostRoutes } from './routes-host.ts';
import { registerWebRoutes } from './routes-web.ts';
import type { HostInfo } from './views.ts';
import { crossSiteRefusal, isPublicRoute } from './web-auth.ts';

export interface ApiContext {
  toolstack: Toolstack;
  tokens: TokenStore;
  log: DaemonLog;
  hostInfo: () => HostInfo;
  /** Extra route groups (store, ...) registered by the daemon. */
  extraRoutes?: Array<(app: FastifyInstance, ctx: ApiContext) => void>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

export function sendError(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof XenodeError) return reply.code(e.httpStatus).send({ error: e.toJSON() });
  const err: WireError = { kind: 'internal', message: e instanceof Error ? e.message : String(e) };
  return reply.code(500).send({ error: err });
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim();
  const cookie = req.headers.cookie;
  const m = cookie ? /(?:^|;\s*)xenode_token=([^;]+)/.exec(cookie) : null;
  return m ? decodeURIComponent(m[1]) : undefined;
}

export async function buildApi(ctx: ApiContext, mode: 'local' | 'tcp'): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  await app.register(websocket);
  // Fastify forbids object defaults on requests; every request sets it in onRequest.
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (req, reply) => {
    if (mode === 'local') {
      req.principal = LOCAL_ADMIN;
      return;
    }
    const token = bearer(req);
    const p = token ? ctx.tokens.authenticate(token) : undefined;
    if (!p) {
      if (isPublicRoute(req)) return; // login page, its assets, POST /v1/login
      await reply.code(401).send({
        error: {
          kind: 'unauthorized',
          message: token ? 'invalid token' : 'missing token',
          hint: 'send Authorization: Bearer <token>',
        },
      });
      return;
    }
    const crossSite = crossSiteRefusal(req);
    if (crossSite) {
      await reply.code(403).send({ error: { kind: 'permission', message: crossSite } });
      return;
    }
    req.principal = p;
  });
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof XenodeError) return sendError(reply, err);
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status < 500) {
      return reply.code(status).send({ error: { kind: 'usage', message: (err as Error).message } });
    }
    ctx.log.error(`API error: ${(err as Error).message}`);
    return sendError(reply, err);
  });
  registerHostRoutes(app, ctx);
  registerDomainRoutes(app, ctx);
  if (mode === 'tcp') await registerWebRoutes(app, ctx);
  for (const r of ctx.extraRoutes ?? []) r(app, ctx);
  return app;
}
