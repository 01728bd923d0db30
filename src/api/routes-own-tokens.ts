// A sponsor's own API tokens: list them and revoke one (the web UI's Tokens
// page). Only tokens of the caller's sponsor that carry no admin rights are
// seen or touched; anyone else's id is "no token" (404), as for a missing one,
// so nothing tells a sponsor which ids exist. Creating tokens stays the
// admin's (POST /v1/tokens): a leaked sponsor token must not mint more.

import type { FastifyInstance } from 'fastify';
import { XenodeError } from '../errors.ts';
import type { Principal } from '../toolstack/principal.ts';
import type { TokenInfo } from '../toolstack/tokens.ts';
import type { ApiContext } from './context.ts';

function own(p: Principal, all: TokenInfo[]): TokenInfo[] {
  return all.filter((t) => t.sponsor === p.sponsor && (p.admin || !t.admin));
}

export function registerOwnTokenRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/whoami/tokens', async (req) =>
    own(req.principal, ctx.tokens.list()).map((t) => ({ ...t, current: t.id === req.principal.tokenId })),
  );

  app.delete<{ Params: { id: string } }>('/v1/whoami/tokens/:id', async (req) => {
    const id = req.params.id;
    if (!own(req.principal, ctx.tokens.list()).some((t) => t.id === id)) {
      throw new XenodeError('not-found', `no token with id '${id.slice(0, 40)}'`, {
        hint: 'your tokens are listed by GET /v1/whoami/tokens',
      });
    }
    ctx.tokens.revoke(id);
    ctx.log.info(`token ${id} revoked by sponsor ${req.principal.sponsor}`);
    return { ok: true };
  });
}
