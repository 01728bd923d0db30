// Domain event history as a toolstack plugin: API hooks note every change a
// caller asks of a domain (POST/PUT/DELETE under /v1/domains/:dom, and create)
// with who asked and the result; the toolstack's change events note every state
// the domain enters. GET /v1/domains/:dom/history serves it to whoever may see
// the domain (another sponsor's is 404, as the domain itself is).

import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { type HistoryEntry, HistoryLog } from './log.ts';

interface Pending {
  uuid: string;
  domid: number;
  name: string;
  sponsor: string;
  what: string;
  detail?: string;
}

const DOMAIN_ROUTE = /^\/v1\/domains\/:dom\/(.+)$/;

/** "pause", "block-attach", "net/:dev/rate" -> "net rate". */
function actionOf(url: string, method: string): string | undefined {
  const m = DOMAIN_ROUTE.exec(url);
  if (!m?.[1]) return undefined;
  const parts = m[1].split('/').filter((p) => !p.startsWith(':'));
  const base = parts.join(' ');
  if (base === 'net') return method === 'DELETE' ? 'network-detach' : 'network-attach';
  return base;
}

function errorMessage(payload: unknown): string | undefined {
  if (typeof payload !== 'string') return undefined;
  try {
    const m = (JSON.parse(payload) as { error?: { message?: unknown } }).error?.message;
    return typeof m === 'string' ? m.slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}

export function historyPlugin(log = new HistoryLog()): ToolstackPlugin {
  const pending = new WeakMap<FastifyRequest, Pending>();
  const lastState = new Map<string, string>();
  let bound = false;

  const bind = (ctx: ApiContext) => {
    if (bound) return;
    bound = true;
    const ts = ctx.toolstack;
    const state = (d: Domain, what: string) => {
      if (lastState.get(d.rec.uuid) === what) return;
      lastState.set(d.rec.uuid, what);
      log.add({ t: Date.now(), uuid: d.rec.uuid, domid: d.domid, name: d.name, kind: 'state', what });
    };
    ts.events.on('change', (d) => state(d, d.rec.state));
    ts.events.on('gone', (d) => {
      state(d, 'gone');
      lastState.delete(d.rec.uuid);
    });
  };

  const routes = (app: FastifyInstance, ctx: ApiContext) => {
    bind(ctx);
    const ts = ctx.toolstack;
    app.addHook('preHandler', async (req: FastifyRequest) => {
      if (req.method === 'GET' || req.method === 'HEAD') return;
      const what = actionOf(req.routeOptions.url ?? '', req.method);
      const dom = (req.params as { dom?: unknown } | undefined)?.dom;
      if (!what || typeof dom !== 'string' || !req.principal) return;
      try {
        const d = ts.find(dom, req.principal);
        pending.set(req, { uuid: d.rec.uuid, domid: d.domid, name: d.name, sponsor: d.rec.sponsor, what });
      } catch {
        /* not the caller's domain: nothing to note, and nothing to tell anyone */
      }
    });
    app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      const p = pending.get(req);
      if (p && reply.statusCode >= 400) p.detail = errorMessage(payload);
      // A create names its domain only in the answer.
      if (req.method === 'POST' && req.routeOptions.url === '/v1/domains' && reply.statusCode < 400) {
        try {
          const v = JSON.parse(String(payload)) as { uuid?: string; domid?: number; name?: string; sponsor?: string };
          if (typeof v.uuid === 'string' && typeof v.domid === 'number') {
            pending.set(req, {
              uuid: v.uuid,
              domid: v.domid,
              name: String(v.name),
              sponsor: String(v.sponsor),
              what: 'create',
            });
          }
        } catch {
          /* not JSON: nothing to note */
        }
      }
      return payload;
    });
    app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
      const p = pending.get(req);
      if (!p || !req.principal) return;
      const who = req.principal;
      const e: HistoryEntry = {
        t: Date.now(),
        uuid: p.uuid,
        domid: p.domid,
        name: p.name,
        kind: 'action',
        what: p.what,
        by: `${who.sponsor}${who.admin && who.sponsor !== 'admin' ? ' (admin)' : ''}`,
        result: reply.statusCode < 400 ? 'ok' : 'error',
      };
      // An admin's error may name host paths or other sponsors: the domain's sponsor sees only that it failed.
      if (e.result === 'error' && p.detail && who.sponsor === p.sponsor) e.detail = p.detail;
      log.add(e);
    });
    app.get<{ Params: { dom: string } }>('/v1/domains/:dom/history', async (req) => {
      const d = ts.find(req.params.dom, req.principal);
      return { domid: d.domid, name: d.name, uuid: d.rec.uuid, events: log.of(d.rec.uuid) };
    });
  };

  return {
    name: 'history',
    async start(host) {
      log.open(join(host.dirs.base, 'history.jsonl'));
    },
    routes,
  };
}
