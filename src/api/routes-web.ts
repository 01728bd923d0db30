// The browser UI on the TCP listener: the built pages from web/dist, login (a
// session of its own, bound to the token) and logout (which ends it). Only the
// login page and the files it loads are served without a session; the app, its
// assets and every API route need the session cookie.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { XenodeError } from '../errors.ts';
import { publicPrincipal } from '../toolstack/principal.ts';
import { type AuthLimiter, tooManyFailures } from './auth-limit.ts';
import type { ApiContext } from './context.ts';
import type { SocketRegistry } from './socket-registry.ts';
import {
  clearSessionCookie,
  crossSiteRefusal,
  principalOf,
  SESSION_SECONDS,
  sessionIdOf,
  setSessionCookie,
} from './web-auth.ts';

/** The app's own pages; each serves index.html and the client-side router takes over. */
const APP_PAGES = ['/', '/create', '/usage', '/audit', '/tokens', '/domains/*'];

// Scripts and styles only from this origin; inline styles are needed by xterm and uPlot.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

/** web/dist, found from the source file (tsx) or the bundle (dist/xenoded.mjs). */
export function findWebDist(): string | undefined {
  const env = process.env.XENODE_WEB_DIR;
  if (env) return existsSync(join(env, 'index.html')) ? env : undefined;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const cand = join(dir, 'web', 'dist');
    if (existsSync(join(cand, 'index.html')) && existsSync(join(cand, 'login.html'))) return cand;
    dir = dirname(dir);
  }
  return undefined;
}

interface ManifestChunk {
  file: string;
  css?: string[];
  assets?: string[];
  imports?: string[];
}

/** The asset files the login page loads, from Vite's build manifest. */
function loginAssets(dist: string): Set<string> {
  const out = new Set<string>();
  let manifest: Record<string, ManifestChunk>;
  try {
    manifest = JSON.parse(readFileSync(join(dist, '.vite', 'manifest.json'), 'utf8')) as Record<string, ManifestChunk>;
  } catch {
    return out;
  }
  const visit = (key: string) => {
    const c = manifest[key];
    if (!c || out.has(c.file)) return;
    for (const f of [c.file, ...(c.css ?? []), ...(c.assets ?? [])]) out.add(f.replace(/^assets\//, ''));
    for (const i of c.imports ?? []) visit(i);
  };
  visit('login.html');
  return out;
}

function pageHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache');
}

export interface WebAuth {
  limiter: AuthLimiter;
  sockets: SocketRegistry;
}

export async function registerWebRoutes(app: FastifyInstance, ctx: ApiContext, auth: WebAuth): Promise<void> {
  app.post<{ Body: { token?: unknown } }>('/v1/login', { config: { public: true } }, async (req, reply) => {
    const refused = crossSiteRefusal(req);
    if (refused) throw new XenodeError('permission', refused);
    const token = req.body?.token;
    if (typeof token !== 'string' || token.trim() === '') {
      throw new XenodeError('usage', 'token is required', { hint: 'create one with `xenode token create SPONSOR`' });
    }
    const p = ctx.tokens.authenticate(token.trim());
    if (!p?.tokenId) {
      const retryAfter = auth.limiter.fail(req.ip, 'bad token on web login');
      if (retryAfter !== undefined) return tooManyFailures(reply, req.ip, retryAfter);
      throw new XenodeError('unauthorized', 'invalid token', {
        hint: 'check the token, or create one with `xenode token create SPONSOR`',
      });
    }
    // The cookie carries a session id of its own: logout ends it without ending the token.
    setSessionCookie(req, reply, ctx.tokens.createSession(p.tokenId, SESSION_SECONDS * 1000));
    // The token id names the token in `token list`; the secret is never logged.
    ctx.log.info(`web login: sponsor ${p.sponsor}${p.admin ? ' (admin)' : ''}, token ${p.tokenId}`, {
      sponsor: p.sponsor,
    });
    return publicPrincipal(p);
  });

  app.post('/v1/logout', { config: { public: true } }, async (req, reply) => {
    const id = sessionIdOf(req);
    if (id) ctx.tokens.endSession(id);
    // What this session opened (consoles, event streams) ends with it.
    const p = principalOf(req);
    if (p?.sessionId) auth.sockets.closeSession(p.sessionId, 'logged out');
    clearSessionCookie(req, reply);
    return { ok: true };
  });

  const dist = findWebDist();
  if (!dist) {
    const missing = async (_req: FastifyRequest, reply: FastifyReply) =>
      reply
        .code(503)
        .type('text/plain')
        .send('The web UI is not built: run `npm run build:web` (it writes web/dist).\n');
    for (const p of [...APP_PAGES, '/login']) app.get(p, { config: { public: true } }, missing);
    return;
  }

  await app.register(fastifyStatic, { root: dist, serve: false });
  const assets = new Set(existsSync(join(dist, 'assets')) ? readdirSync(join(dist, 'assets')) : []);
  const publicAssets = loginAssets(dist);

  app.get('/login', { config: { public: true } }, async (req, reply) => {
    if (principalOf(req)) return reply.redirect('/');
    return pageHeaders(reply).sendFile('login.html', { cacheControl: false });
  });

  for (const page of APP_PAGES) {
    app.get(page, { config: { public: true } }, async (req, reply) => {
      // A browser without a session is sent to log in rather than shown JSON.
      if (!principalOf(req)) return reply.redirect('/login');
      return pageHeaders(reply).sendFile('index.html', { cacheControl: false });
    });
  }

  app.get<{ Params: { file: string } }>('/assets/:file', { config: { public: true } }, async (req, reply) => {
    const file = req.params.file;
    if (!assets.has(file)) throw new XenodeError('not-found', `no asset '${file}'`);
    if (!publicAssets.has(file) && !principalOf(req)) {
      throw new XenodeError('unauthorized', 'missing token', { hint: 'log in at /login' });
    }
    // File names carry a content hash, so they never change.
    return reply
      .header('x-content-type-options', 'nosniff')
      .sendFile(join('assets', file), { immutable: true, maxAge: '365d' });
  });

  app.get('/favicon.svg', { config: { public: true } }, async (_req, reply) =>
    reply.sendFile('favicon.svg', { maxAge: '1d' }),
  );
}
