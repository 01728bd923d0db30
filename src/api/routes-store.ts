// Control-store routes. The admin acts as the toolstack (dom0), or as a guest
// with ?as=DOMID (how a guest's own connection is seen). A sponsor's token acts
// only inside the home and /vm paths of its own domains, and there as itself:
// with the permissions of the domain whose path it names (or ?as=), the store's
// quotas, and transactions and watches of its own.

import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { XenodeError } from '../errors.ts';
import {
  type Caller,
  type ControlStore,
  domainPath,
  guest,
  NO_DOMAIN,
  sponsorCaller,
  TOOLSTACK,
} from '../store/index.ts';
import type { Domain } from '../toolstack/domain.ts';
import type { ApiContext } from './context.ts';

interface StoreQuery {
  path?: string;
  as?: string;
  tx?: string;
}

function parseAs(as: string | undefined): number | undefined {
  const asDomid = as === undefined || as === '' ? undefined : Number(as);
  if (asDomid !== undefined && (!Number.isInteger(asDomid) || asDomid < 0)) {
    throw new XenodeError('usage', `invalid domid '${as}'`);
  }
  return asDomid;
}

function isUnder(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

/** The sponsor's domains, and the one named by ?as= (which must be among them). */
function sponsorDomains(req: FastifyRequest, ctx: ApiContext, asDomid: number | undefined): Domain[] {
  const own = ctx.toolstack.list(req.principal);
  if (asDomid !== undefined && !own.some((d) => d.domid === asDomid)) {
    throw new XenodeError('permission', `domain ${asDomid} is not yours`);
  }
  return own;
}

/** Who performs an operation on `path`. */
function callerFor(req: FastifyRequest, ctx: ApiContext, path: string, as: string | undefined): Caller {
  const p = req.principal;
  const asDomid = parseAs(as);
  if (p.admin) return asDomid === undefined || asDomid === 0 ? TOOLSTACK : guest(asDomid);
  const own = sponsorDomains(req, ctx, asDomid);
  const home = own.find((d) => isUnder(path, domainPath(d.domid)) || isUnder(path, `/vm/${d.rec.uuid}`));
  if (!home) {
    throw new XenodeError('permission', `path ${path} is outside your domains`, {
      hint: 'sponsors may use /local/domain/<own domid>/... and /vm/<own uuid>/...',
    });
  }
  return sponsorCaller(
    p.sponsor,
    asDomid ?? home.domid,
    own.map((d) => d.domid),
  );
}

/** Who opens or ends a transaction (no node named; each operation inside names its own). */
function transactionCaller(req: FastifyRequest, ctx: ApiContext, as: string | undefined): Caller {
  const p = req.principal;
  const asDomid = parseAs(as);
  if (p.admin) return asDomid === undefined || asDomid === 0 ? TOOLSTACK : guest(asDomid);
  const own = sponsorDomains(req, ctx, asDomid);
  return sponsorCaller(
    p.sponsor,
    asDomid ?? NO_DOMAIN,
    own.map((d) => d.domid),
  );
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
    return { tx: store.transactionStart(transactionCaller(req, ctx, as)) };
  });

  app.post<{ Params: { tx: string }; Body: { commit?: boolean; as?: string } }>(
    '/v1/store/transaction/:tx',
    async (req) => {
      const as = req.body?.as === undefined ? undefined : String(req.body.as);
      store.transactionEnd(transactionCaller(req, ctx, as), txid(req.params.tx), req.body?.commit !== false);
      return { ok: true };
    },
  );

  // Watches: one JSON message per event, the first fires at registration (xenstore semantics).
  app.get<{ Querystring: StoreQuery }>('/v1/store/watch', { websocket: true }, (socket, req) => {
    let caller: Caller;
    let path: string;
    try {
      path = need(req.query.path, 'path');
      // A sponsor may watch only inside its domains (no @introduceDomain and the like).
      caller = callerFor(req, ctx, path, req.query.as);
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
