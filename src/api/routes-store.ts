// Control-store routes. The admin acts as the toolstack (dom0), or as a guest
// with ?as=DOMID (how a guest's own connection is seen); a sponsor's token acts
// only inside the home paths of its own domains.

import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { XenodeError } from '../errors.ts';
import { type Caller, type ControlStore, domainPath, guest, TOOLSTACK } from '../store/index.ts';
import type { ApiContext } from './server.ts';

interface StoreQuery {
  path?: string;
  as?: string;
  tx?: string;
}

function callerFor(req: FastifyRequest, ctx: ApiContext, path: string | undefined, as: string | undefined): Caller {
  const p = req.principal;
  const asDomid = as === undefined || as === '' ? undefined : Number(as);
  if (asDomid !== undefined && (!Number.isInteger(asDomid) || asDomid < 0)) {
    throw new XenodeError('usage', `invalid domid '${as}'`);
  }
  if (p.admin) return asDomid === undefined || asDomid === 0 ? TOOLSTACK : guest(asDomid);
  const own = ctx.toolstack.list(p);
  if (asDomid !== undefined) {
    if (!own.some((d) => d.domid === asDomid)) throw new XenodeError('permission', `domain ${asDomid} is not yours`);
    return guest(asDomid);
  }
  if (path === undefined) throw new XenodeError('permission', 'sponsors must name a path under their own domains');
  const allowed = own.flatMap((d) => [domainPath(d.domid), `/vm/${d.rec.uuid}`]);
  if (!allowed.some((a) => path === a || path.startsWith(`${a}/`))) {
    throw new XenodeError('permission', `path ${path} is outside your domains`, {
      hint: 'sponsors may use /local/domain/<own domid>/...',
    });
  }
  return TOOLSTACK;
}

function need(v: string | undefined, what: string): string {
  if (v === undefined || v === '') throw new XenodeError('usage', `${what} is required`);
  return v;
}

function txid(v: string | undefined): number {
  if (v === undefined || v === '') return 0;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new XenodeError('usage', `invalid transaction id '${v}'`);
  return n;
}

export function registerStoreRoutes(app: FastifyInstance, ctx: ApiContext, store: ControlStore): void {
  app.get<{ Querystring: StoreQuery }>('/v1/store/read', async (req) => {
    const path = need(req.query.path, 'path');
    return { path, value: store.read(callerFor(req, ctx, path, req.query.as), path, txid(req.query.tx)) };
  });

  app.get<{ Querystring: StoreQuery }>('/v1/store/ls', async (req) => {
    const path = need(req.query.path, 'path');
    const caller = callerFor(req, ctx, path, req.query.as);
    const tx = txid(req.query.tx);
    const children = store.directory(caller, path, tx).map((name) => {
      const child = path === '/' ? `/${name}` : `${path}/${name}`;
      let value: string | undefined;
      try {
        value = store.read(caller, child, tx);
      } catch {
        value = undefined;
      }
      return { name, value };
    });
    return { path, children };
  });

  app.get<{ Querystring: StoreQuery }>('/v1/store/perms', async (req) => {
    const path = need(req.query.path, 'path');
    return { path, perms: store.getPerms(callerFor(req, ctx, path, req.query.as), path, txid(req.query.tx)) };
  });

  app.put<{ Body: { path?: string; value?: string; as?: string; tx?: string } }>('/v1/store/write', async (req) => {
    const b = req.body ?? {};
    const path = need(b.path, 'path');
    if (typeof b.value !== 'string') throw new XenodeError('usage', 'value must be a string');
    store.write(
      callerFor(req, ctx, path, b.as === undefined ? undefined : String(b.as)),
      path,
      b.value,
      txid(b.tx === undefined ? undefined : String(b.tx)),
    );
    return { ok: true };
  });

  app.post<{ Body: { path?: string; perms?: string[]; as?: string; tx?: string } }>('/v1/store/perms', async (req) => {
    const b = req.body ?? {};
    const path = need(b.path, 'path');
    if (!Array.isArray(b.perms) || b.perms.some((x) => typeof x !== 'string'))
      throw new XenodeError('usage', 'perms must be a list like ["n0","r3"]');
    store.setPerms(
      callerFor(req, ctx, path, b.as === undefined ? undefined : String(b.as)),
      path,
      b.perms,
      txid(b.tx === undefined ? undefined : String(b.tx)),
    );
    return { ok: true };
  });

  app.delete<{ Querystring: StoreQuery }>('/v1/store', async (req) => {
    const path = need(req.query.path, 'path');
    store.rm(callerFor(req, ctx, path, req.query.as), path, txid(req.query.tx));
    return { ok: true };
  });

  app.post<{ Body: { as?: string } }>('/v1/store/transaction', async (req) => {
    const as = req.body?.as === undefined ? undefined : String(req.body.as);
    const caller = req.principal.admin ? callerFor(req, ctx, undefined, as) : callerFor(req, ctx, undefined, as ?? '');
    return { tx: store.transactionStart(caller) };
  });

  app.post<{ Params: { tx: string }; Body: { commit?: boolean; as?: string } }>(
    '/v1/store/transaction/:tx',
    async (req) => {
      const as = req.body?.as === undefined ? undefined : String(req.body.as);
      const caller = callerFor(req, ctx, req.principal.admin ? undefined : '/', as);
      store.transactionEnd(caller, txid(req.params.tx), req.body?.commit !== false);
      return { ok: true };
    },
  );

  // Watches: one JSON message per event, the first fires at registration (xenstore semantics).
  app.get<{ Querystring: StoreQuery }>('/v1/store/watch', { websocket: true }, (socket, req) => {
    let caller: Caller;
    let path: string;
    try {
      path = need(req.query.path, 'path');
      caller = callerFor(req, ctx, path.startsWith('@') ? undefined : path, req.query.as);
    } catch (e) {
      socket.close(4003, e instanceof Error ? e.message.slice(0, 100) : 'refused');
      return;
    }
    const token = `ws-${randomBytes(6).toString('hex')}`;
    try {
      store.watch(caller, path, token, (ev) => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify({ path: ev.path, token: ev.token }));
      });
    } catch (e) {
      socket.close(4003, e instanceof Error ? e.message.slice(0, 100) : 'refused');
      return;
    }
    socket.on('close', () => {
      try {
        store.unwatch(caller, path, token);
      } catch {
        /* domain already released */
      }
    });
  });
}
