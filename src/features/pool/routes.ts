// The pool's API, the host admin's only (a sponsor's token gets 403 and learns
// nothing of the pool): membership, the pool-wide domain list, placed creates
// and migration by host name. Other pool hosts call these with their peer token.

import type { FastifyInstance } from 'fastify';
import { configProblem } from '../../config/config-check.ts';
import type { DomainConfig } from '../../config/types.ts';
import { XenodeError } from '../../errors.ts';
import type { Principal } from '../../toolstack/principal.ts';
import type { JoinRequest, PoolService } from './service.ts';

function admin(p: Principal): void {
  if (!p.admin) throw new XenodeError('permission', 'only the admin may use the pool');
}

type Body = Record<string, unknown>;

function str(b: Body, k: string, required: boolean, max = 256): string | undefined {
  const v = b[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '' || v.length > max)
    throw new XenodeError('usage', `"${k}" must be a non-empty string`);
  return v;
}

function joinRequest(b: Body): JoinRequest {
  const etcd = b.etcd;
  if (!Array.isArray(etcd) || etcd.some((u) => typeof u !== 'string'))
    throw new XenodeError('usage', '"etcd" must be a list of URLs');
  const ttl = b.ttl;
  if (ttl !== undefined && typeof ttl !== 'number') throw new XenodeError('usage', '"ttl" must be a number');
  return {
    pool: str(b, 'pool', true, 64) as string,
    etcd: etcd as string[],
    host: str(b, 'host', false, 64),
    secret: str(b, 'secret', false, 128),
    address: str(b, 'address', false, 128),
    shared: str(b, 'shared', false, 1024),
    ttl,
  };
}

export function registerPoolRoutes(app: FastifyInstance, pool: PoolService): void {
  app.get('/v1/pool', async (req) => {
    admin(req.principal);
    return pool.hosts();
  });
  app.post<{ Body: Body }>('/v1/pool/create', async (req) => {
    admin(req.principal);
    return pool.create(joinRequest(req.body ?? {}));
  });
  app.post<{ Body: Body }>('/v1/pool/join', async (req) => {
    admin(req.principal);
    await pool.join(joinRequest(req.body ?? {}));
    return { ok: true };
  });
  app.post('/v1/pool/leave', async (req) => {
    admin(req.principal);
    await pool.leave();
    return { ok: true };
  });
  app.get('/v1/pool/domains', async (req) => {
    admin(req.principal);
    return pool.domains();
  });
  app.post<{ Body: Body }>('/v1/pool/domains', async (req) => {
    admin(req.principal);
    const b = req.body ?? {};
    // The chosen host checks it fully; here only what placement reads.
    const problem = configProblem(b.config);
    if (problem) throw new XenodeError('config', `invalid domain config: ${problem}`);
    const config = b.config as DomainConfig;
    const aa = b.antiAffinity;
    if (aa !== undefined && (!Array.isArray(aa) || aa.length > 64 || aa.some((x) => typeof x !== 'string')))
      throw new XenodeError('usage', '"antiAffinity" must be a list of domain names');
    return pool.createPlaced(config, (aa as string[] | undefined) ?? []);
  });
  app.post<{ Params: { dom: string }; Body: Body }>('/v1/pool/domains/:dom/migrate', async (req) => {
    admin(req.principal);
    const b = req.body ?? {};
    const host = str(b, 'host', true, 64) as string;
    const rest: Body = {};
    for (const k of ['downtimeMs', 'bandwidthMbps', 'paused']) if (b[k] !== undefined) rest[k] = b[k];
    return pool.migrate(req.params.dom, host, rest);
  });
  // A peer tells this host to read the index now (before it sends a migration here).
  app.post('/v1/pool/refresh', async (req) => {
    admin(req.principal);
    await pool.refreshNow();
    return { ok: true };
  });
}
