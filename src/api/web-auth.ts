// Browser sessions on the TCP listener: the session cookie, the few routes a
// browser may reach before logging in, and refusal of cross-site requests.

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../toolstack/principal.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without a token (the login page, its assets, POST /v1/login). */
    public?: boolean;
  }
}

/** The web session cookie: a random session id, never the token it was opened with. */
export const SESSION_COOKIE = 'xenode_session';
/** A browser session lasts a working day; the token itself lives until revoked. */
export const SESSION_SECONDS = 12 * 3600;

export function isPublicRoute(req: FastifyRequest): boolean {
  return req.routeOptions.config?.public === true;
}

/** The caller, or undefined on a public route reached without a valid token. */
export function principalOf(req: FastifyRequest): Principal | undefined {
  return (req.principal as Principal | null) ?? undefined;
}

function secure(req: FastifyRequest): boolean {
  return req.protocol === 'https';
}

/** The session id in the request's cookie, if any. */
export function sessionIdOf(req: FastifyRequest): string | undefined {
  const cookie = req.headers.cookie;
  const m = cookie ? /(?:^|;\s*)xenode_session=([A-Za-z0-9_-]+)/.exec(cookie) : null;
  return m ? m[1] : undefined;
}

export function setSessionCookie(req: FastifyRequest, reply: FastifyReply, sessionId: string): void {
  // HttpOnly: page scripts never see the session id; Strict: no other site's page can send it.
  const attrs = [
    `${SESSION_COOKIE}=${sessionId}`,
    'Path=/',
    'HttpOnly',
    'SameSite=Strict',
    `Max-Age=${SESSION_SECONDS}`,
  ];
  if (secure(req)) attrs.push('Secure');
  void reply.header('set-cookie', attrs.join('; '));
}

export function clearSessionCookie(req: FastifyRequest, reply: FastifyReply): void {
  const attrs = [`${SESSION_COOKIE}=`, 'Path=/', 'HttpOnly', 'SameSite=Strict', 'Max-Age=0'];
  if (secure(req)) attrs.push('Secure');
  void reply.header('set-cookie', attrs.join('; '));
}

/**
 * A request authenticated by the cookie whose Origin is another site: refused,
 * so no page elsewhere can drive the API (WebSockets carry no CORS checks).
 */
export function crossSiteRefusal(req: FastifyRequest): string | undefined {
  if (req.headers.authorization) return undefined;
  const origin = req.headers.origin;
  if (!origin) return undefined;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return 'malformed Origin header';
  }
  return host === req.headers.host ? undefined : `cross-site request from ${origin} refused`;
}
