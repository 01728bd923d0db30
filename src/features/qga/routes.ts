// GET /v1/domains/:dom/guest-agent: what the domain's QEMU guest agent last
// reported. A sponsor reaches only its own domains (Toolstack.find answers 404).

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import type { GuestAgents } from './agents.ts';

interface DomParams {
  dom: string;
}

export function registerQgaRoutes(app: FastifyInstance, ctx: ApiContext, agents: GuestAgents): void {
  const ts = ctx.toolstack;
  app.get<{ Params: DomParams }>('/v1/domains/:dom/guest-agent', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const info = agents.info(d.domid);
    return {
      domid: d.domid,
      port: info !== undefined,
      alive: info?.alive ?? false,
      interfaces: info?.interfaces ?? [],
    };
  });
}
