// xenoded's HTTP + WebSocket API. The same routes are served on the local Unix
// socket (caller = local admin) and on TCP, where every request needs a token
// or a web session; failed tokens are logged and rate-limited per address, and
// every WebSocket is tied to the credential that opened it.

import type { IncomingMessage } from 'node:http';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { type WireError, XenodeError } from '../errors.ts';
import { LOCAL_ADMIN, type Principal } from '../toolstack/principal.ts';
import { AuthLimiter, tooManyFailures } from './auth-limit.ts';
import type { ApiContext } from './context.ts';
import { registerOpenApiRoute, trackRoutes } from './openapi.ts';
import { registerDomainRoutes } from './routes-domains.ts';
import { registerHostRoutes } from './routes-host.ts';
import { registerOwnTokenRoutes } from './routes-own-tokens.ts';
import { registerQuotaRoutes } from './routes-quota.ts';
import { registerWebRoutes } from './routes-web.ts';
import { registerXlRoutes } from './routes-xl.ts';
import { SocketRegistry } from './socket-registry.ts';
import { crossSiteRefusal, isPublicRoute, sessionIdOf } from './web-auth.ts';

export function sendError(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof XenodeError) return reply.code(e.httpStatus).send({ error: e.toJSON() });
  const err: WireError = { kind: 'internal', message: e instanceof Error ? e.message : String(e) };
  return reply.code(500).send({ error: err });
}

function bearer(req: FastifyRequest): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

/** Largest WebSocket message any route accepts; ws closes the socket with 1009 past it. */
export const WS_MAX_PAYLOAD = 1024 * 1024;

/** ws reports a peer's protocol error (e.g. an oversize message) after sending its close frame. */
function wsProtocolError(e: Error): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('WS_ERR_');
}

export async function buildApi(ctx: ApiContext, mode: 'local' | 'tcp'): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  // Before any route: every route is recorded for /v1/openapi.json and the route check.
  const routes = trackRoutes(app);
  await app.register(websocket, {
    options: { maxPayload: WS_MAX_PAYLOAD },
    // The default handler terminates at once, losing the close frame (1009) ws just queued.
    errorHandler: (e, socket) => {
      if (wsProtocolError(e)) setTimeout(() => socket.terminate(), 1000).unref();
      else socket.terminate();
    },
  });
  const limiter = new AuthLimiter(ctx.log);
  // Which principal opened each WebSocket, so that revocation and logout can close it.
  const sockets = new SocketRegistry();
  const wsPrincipal = new WeakMap<IncomingMessage, Principal>();
  if (mode === 'tcp') {
    app.websocketServer.on('connection', (ws: WebSocket, raw: IncomingMessage) => {
      const p = wsPrincipal.get(raw);
      if (p?.tokenId) sockets.add(ws, p);
    });
    const unsubscribe = ctx.tokens.onRevoke((id) => {
      const n = sockets.closeToken(id, 'token revoked');
      if (n > 0) ctx.log.info(`closed ${n} WebSocket${n === 1 ? '' : 's'} of revoked token ${id}`);
    });
    app.addHook('onClose', async () => {
      unsubscribe();
    });
  }
  // Fastify forbids object defaults on requests; every request sets it in onRequest.
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (req, reply) => {
    if (mode === 'local') {
      req.principal = LOCAL_ADMIN;
      return;
    }
    // A token in the Authorization header (CLI, scripts), else the web session cookie.
    const token = bearer(req);
    const session = token === undefined ? sessionIdOf(req) : undefined;
    let p: Principal | undefined;
    if (token !== undefined) {
      p = ctx.tokens.authenticate(token);
      if (!p) {
        const retryAfter = limiter.fail(req.ip, `bad token on ${req.method} ${req.routeOptions.url ?? '(no route)'}`);
        if (retryAfter !== undefined) {
          await tooManyFailures(reply, req.ip, retryAfter);
          return;
        }
      }
    } else if (session !== undefined) p = ctx.tokens.authenticateSession(session);
    if (!p) {
      if (isPublicRoute(req)) return; // login page, its assets, POST /v1/login
      await reply.code(401).send({
        error: {
          kind: 'unauthorized',
          message: token ? 'invalid token' : session ? 'session ended' : 'missing token',
          hint: session && !token ? 'log in again' : 'send Authorization: Bearer <token>',
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
    wsPrincipal.set(req.raw, p);
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
  registerOwnTokenRoutes(app, ctx);
  registerDomainRoutes(app, ctx);
  registerXlRoutes(app, ctx);
  registerQuotaRoutes(app, ctx);
  if (mode === 'tcp') await registerWebRoutes(app, ctx, { limiter, sockets });
  for (const r of ctx.extraRoutes ?? []) r(app, ctx);
  registerOpenApiRoute(app, routes, mode, () => ctx.hostInfo().xenode_version);
  app.addHook('onReady', async () => {
    const undescribed = routes.undescribed();
    if (undescribed.length > 0)
      ctx.log.warn(`API routes without a schema (not in /v1/openapi.json): ${undescribed.join(', ')}`);
  });
  return app;
}
