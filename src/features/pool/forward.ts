// Commands on a domain of another pool host are forwarded to that host, with its
// peer token and on behalf of the caller: the owner treats the request as coming
// from the caller's sponsor (so its sponsor rules apply: a sponsor reaches only its
// own domains, on any host), and from the admin when the admin asked.
//
// Only commands that mean the same on any host are forwarded (FORWARDED); any other
// route on such a domain is refused with the host's name. Domids are per host: a
// forwarded domain view carries its name in place of the domid, so that a client
// which reads a view and then addresses the domain by its domid reaches the same
// domain again (through the pool), never a local domain that has the same number.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { XenodeError } from '../../errors.ts';
import { canSeeSponsor, LOCAL_ADMIN } from '../../toolstack/principal.ts';
import { FORWARD_FROM, FORWARD_SPONSOR, type PoolService } from './service.ts';

const DOM_ROUTE = '/v1/domains/:dom';
/** POST /v1/domains/:dom/<action> forwarded to the domain's host. */
const FORWARDED = new Set(['pause', 'unpause', 'destroy', 'shutdown', 'reboot', 'mem-set', 'mem-max']);
const TIMEOUT_MS = 30_000;
/** shutdown/reboot -w wait for the guest on the owner. */
const WAIT_TIMEOUT_MS = 330_000;

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}

export function registerPoolForwarding(app: FastifyInstance, pool: PoolService, ctx: ApiContext): void {
  // The owner's side: a forwarded request acts as the sponsor it names. Only this
  // host's peer token may name one; from anyone else the header means nothing.
  app.addHook('onRequest', async (req) => {
    if (header(req, FORWARD_FROM) === undefined || !req.principal) return;
    if (!pool.isPeerToken(req.principal.tokenId)) return;
    const sponsor = header(req, FORWARD_SPONSOR);
    if (sponsor) req.principal = { sponsor, admin: false, tokenId: req.principal.tokenId };
  });

  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    const url = req.routeOptions.url ?? '';
    if (!pool.member || !url.startsWith(DOM_ROUTE) || !req.principal) return;
    // Forwarded once already: answer here, whatever this host's index says (no loops).
    if (header(req, FORWARD_FROM) !== undefined) return;
    const dom = (req.params as { dom?: string }).dom;
    if (!dom || /^\d+$/.test(dom)) return;
    try {
      ctx.toolstack.find(dom, LOCAL_ADMIN);
      return; // here
    } catch {
      /* not on this host */
    }
    const e = pool.remoteEntry(dom);
    // Not the caller's: the local handler answers "no such domain", as for any other name.
    if (!e || !canSeeSponsor(req.principal, e.sponsor)) return;
    const action = url.slice(DOM_ROUTE.length);
    const ok =
      (req.method === 'GET' && action === '') ||
      (req.method === 'POST' && action.startsWith('/') && FORWARDED.has(action.slice(1)));
    // A WebSocket (the console) goes on to its route, which closes it (4004, no such
    // domain here): an error thrown here would leave the upgrade hanging. The CLI reads
    // the view first and names the host.
    if (req.ws) return;
    if (!ok)
      throw new XenodeError('state', `${e.name} runs on pool host ${e.host}`, {
        hint: `run this command on ${e.host}; forwarded here: list, destroy, shutdown, reboot, pause, unpause, mem-set, mem-max, migrate`,
      });
    const body = req.method === 'POST' ? JSON.stringify(req.body ?? {}) : undefined;
    const wait = (req.body as { wait?: unknown } | undefined)?.wait === true;
    const r = await pool.forward(e.host, req.method, req.url, req.principal, body, wait ? WAIT_TIMEOUT_MS : TIMEOUT_MS);
    let text = r.text;
    if (req.method === 'GET' && r.status === 200) {
      try {
        const v = JSON.parse(text) as Record<string, unknown>;
        text = JSON.stringify({ ...v, domid: e.name, host: e.host });
      } catch {
        throw new XenodeError('engine', `pool host ${e.host} sent a malformed answer`);
      }
    }
    return reply.code(r.status).header('content-type', 'application/json; charset=utf-8').send(text);
  });
}
