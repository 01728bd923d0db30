// Host-wide routes: info, the daemon log (dmesg), tokens.

import type { FastifyInstance } from 'fastify';
import { XenodeError } from '../errors.ts';
import { publicPrincipal } from '../toolstack/principal.ts';
import type { ApiContext } from './context.ts';

function requireAdmin(admin: boolean): void {
  if (!admin) throw new XenodeError('permission', 'only the admin may do this');
}

export function registerHostRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/info', async () => ctx.hostInfo());

  app.get('/v1/whoami', async (req) => publicPrincipal(req.principal));

  // Reading never changes the log (a GET may be replayed or prefetched); DELETE clears it.
  app.get<{ Querystring: { clear?: string } }>('/v1/log', async (req) => {
    requireAdmin(req.principal.admin);
    if (req.query.clear !== undefined) {
      throw new XenodeError('usage', 'GET /v1/log does not clear the log', {
        hint: 'DELETE /v1/log reads and clears it (`xenode dmesg -c`)',
      });
    }
    return ctx.log.entries();
  });

  /** Read and clear, as `xl dmesg -c`: answers with the entries it removed. */
  app.delete('/v1/log', async (req) => {
    requireAdmin(req.principal.admin);
    const entries = ctx.log.entries();
    ctx.log.clear();
    return entries;
  });

  app.post<{ Body: { sponsor?: string; admin?: boolean; label?: string } }>('/v1/tokens', async (req) => {
    requireAdmin(req.principal.admin);
    const sponsor = req.body?.sponsor;
    if (!sponsor) throw new XenodeError('usage', 'sponsor is required');
    const r = ctx.tokens.create(sponsor, { admin: req.body.admin, label: req.body.label });
    ctx.log.info(`token ${r.info.id} created for sponsor ${sponsor}${r.info.admin ? ' (admin)' : ''}`, {
      sponsor,
    });
    return r;
  });

  app.get('/v1/tokens', async (req) => {
    requireAdmin(req.principal.admin);
    return ctx.tokens.list();
  });

  app.delete<{ Params: { id: string } }>('/v1/tokens/:id', async (req) => {
    requireAdmin(req.principal.admin);
    ctx.tokens.revoke(req.params.id);
    ctx.log.info(`token ${req.params.id} revoked`);
    return { ok: true };
  });
}
