// /v1/flows (the flow log, a sponsor's own flows only), /v1/flows/verify and
// /v1/audit/rules (the admin's), /v1/audit/events (a sponsor's own).

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { XenodeError } from '../../errors.ts';
import type { FlowQuery } from './flow-log.ts';
import type { AuditService } from './service.ts';
import { parseFlowTime } from './time.ts';

type Query = Record<string, string | undefined>;

function adminOnly(req: FastifyRequest, what: string): void {
  if (!req.principal.admin) throw new XenodeError('permission', `only the admin may ${what}`);
}

function text(q: Query, k: string): string | undefined {
  const v = q[k];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > 64) throw new XenodeError('usage', `--${k} must be at most 64 characters`);
  return v;
}

function whole(q: Query, k: string, min: number, max: number): number | undefined {
  const v = q[k];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || !/^\d{1,7}$/.test(v) || Number(v) < min || Number(v) > max)
    throw new XenodeError('usage', `--${k} must be a number from ${min} to ${max}`);
  return Number(v);
}

export function flowQuery(q: Query, now: number): FlowQuery {
  const since = text(q, 'since');
  const until = text(q, 'until');
  return {
    sponsor: text(q, 'sponsor'),
    domain: text(q, 'domain'),
    port: whole(q, 'port', 0, 65535),
    since: since === undefined ? undefined : parseFlowTime(since, now, '--since'),
    until: until === undefined ? undefined : parseFlowTime(until, now, '--until'),
    limit: whole(q, 'limit', 1, 100_000) ?? 1000,
  };
}

export function registerAuditRoutes(app: FastifyInstance, _ctx: ApiContext, audit: AuditService): void {
  app.get<{ Querystring: Query }>('/v1/flows', async (req) => {
    const q = flowQuery(req.query ?? {}, Date.now());
    return { flows: await audit.query(req.principal, q), limit: q.limit };
  });

  app.get('/v1/flows/verify', async (req) => {
    adminOnly(req, 'verify the flow log');
    return audit.verify();
  });

  app.post('/v1/flows/rotate', async (req) => {
    adminOnly(req, 'rotate the flow log');
    return audit.rotate();
  });

  app.get<{ Querystring: Query }>('/v1/audit/events', async (req) => {
    const q = req.query ?? {};
    const limit = whole(q, 'limit', 1, 5000) ?? 100;
    // One domain's events (its page in the web UI); within what the caller may see anyway.
    const domid = whole(q, 'domid', 0, 9_999_999);
    return { events: audit.events(req.principal, limit, domid) };
  });

  app.get('/v1/audit/rules', async (req) => {
    adminOnly(req, 'read the audit rules');
    return { rules: audit.currentRules(), log: audit.stats() };
  });

  app.put<{ Body: { rules?: unknown } }>('/v1/audit/rules', async (req) => {
    adminOnly(req, 'set the audit rules');
    const b = req.body;
    if (typeof b !== 'object' || b === null || !('rules' in b))
      throw new XenodeError('usage', 'the body must be {"rules": {...}}');
    return { rules: await audit.setRules(b.rules) };
  });
}
