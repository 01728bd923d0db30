// Storage routes: pools under /v1/storage (the admin declares and grants them; a
// sponsor sees the ones granted to it), volumes under /v1/volumes (a sponsor sees
// and touches only its own). A pool a sponsor may not use answers 404, as one that
// does not exist.

import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { XenodeError } from '../../errors.ts';
import type { VolumeService } from './volumes.ts';

interface PoolParams {
  pool: string;
}
interface GrantParams extends PoolParams {
  sponsor: string;
}
interface VolumeParams extends PoolParams {
  name: string;
}

export interface AddPoolBody {
  name?: unknown;
  dir?: unknown;
  sponsors?: unknown;
}

export interface CreateVolumeBody {
  pool?: unknown;
  name?: unknown;
  /** Bytes, or a string such as "1G". */
  size?: unknown;
  format?: unknown;
  /** Admin only: whose volume it is. */
  sponsor?: unknown;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new XenodeError('usage', `${what} is required`);
  return v;
}

function optStr(v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new XenodeError('usage', `${what} must be a string`);
  return v;
}

export function registerStorageRoutes(app: FastifyInstance, svc: () => VolumeService): void {
  app.get('/v1/storage', async (req) => svc().listPools(req.principal));

  app.post<{ Body: AddPoolBody }>('/v1/storage', async (req) => {
    const b = req.body ?? {};
    const sponsors = b.sponsors === undefined ? [] : b.sponsors;
    if (!Array.isArray(sponsors) || !sponsors.every((s) => typeof s === 'string')) {
      throw new XenodeError('usage', 'sponsors must be a list of sponsor names');
    }
    return svc().addPool(req.principal, str(b.name, 'name'), str(b.dir, 'dir'), sponsors);
  });

  app.delete<{ Params: PoolParams; Querystring: { force?: string } }>('/v1/storage/:pool', async (req) => {
    svc().removePool(req.principal, req.params.pool, req.query.force === '1' || req.query.force === 'true');
    return { ok: true };
  });

  app.put<{ Params: GrantParams }>('/v1/storage/:pool/sponsors/:sponsor', async (req) => {
    svc().grant(req.principal, req.params.pool, req.params.sponsor);
    return { ok: true };
  });

  app.delete<{ Params: GrantParams }>('/v1/storage/:pool/sponsors/:sponsor', async (req) => {
    svc().revoke(req.principal, req.params.pool, req.params.sponsor);
    return { ok: true };
  });

  app.get<{ Querystring: { pool?: string; sponsor?: string } }>('/v1/volumes', async (req) =>
    svc().listVolumes(req.principal, { pool: req.query.pool, sponsor: req.query.sponsor }),
  );

  app.post<{ Body: CreateVolumeBody }>('/v1/volumes', async (req) => {
    const b = req.body ?? {};
    if (typeof b.size !== 'string' && typeof b.size !== 'number') throw new XenodeError('usage', 'size is required');
    return svc().create(req.principal, {
      pool: str(b.pool, 'pool'),
      name: str(b.name, 'name'),
      size: b.size,
      format: optStr(b.format, 'format'),
      sponsor: optStr(b.sponsor, 'sponsor'),
    });
  });

  app.delete<{ Params: VolumeParams; Querystring: { sponsor?: string } }>('/v1/volumes/:pool/:name', async (req) => {
    svc().delete(req.principal, req.params.pool, req.params.name, req.query.sponsor);
    return { ok: true };
  });

  // The upload's body is the image itself, streamed to disk, not parsed.
  app.register(async (sub) => {
    sub.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    sub.post<{ Params: VolumeParams; Querystring: { format?: string; sponsor?: string } }>(
      '/v1/volumes/:pool/:name/upload',
      async (req) => {
        const body = req.body as Readable | undefined;
        const len = req.headers['content-length'];
        if (len === '0') throw new XenodeError('usage', 'the file to upload is empty');
        if (!body || typeof body.pipe !== 'function') {
          throw new XenodeError('usage', 'an upload is sent as Content-Type: application/octet-stream');
        }
        return svc().upload(
          req.principal,
          {
            pool: req.params.pool,
            name: req.params.name,
            format: req.query.format,
            sponsor: req.query.sponsor,
            length: len === undefined ? Number.NaN : Number(len),
          },
          body,
        );
      },
    );
  });
}
