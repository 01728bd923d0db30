// Routes of sched-credit, vcpu-pin, vcpu-set and vcpu-list. A sponsor reaches
// only its own domains (Toolstack.find answers 404 for another's).

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { XenodeError } from '../../errors.ts';
import type { PinRequest, Scheduler } from './sched.ts';

interface DomParams {
  dom: string;
}

function optString(v: unknown, what: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new XenodeError('usage', `"${what}" must be a CPU list string`, { exitCode: 1 });
  return v;
}

export function registerSchedRoutes(app: FastifyInstance, ctx: ApiContext, sched: Scheduler): void {
  const ts = ctx.toolstack;

  app.get('/v1/sched', async (req) => ({
    domains: ts.list(req.principal).map((d) => sched.schedRow(d)),
  }));

  app.get<{ Params: DomParams }>('/v1/domains/:dom/sched', async (req) =>
    sched.schedRow(ts.find(req.params.dom, req.principal)),
  );

  app.post<{ Params: DomParams; Body: { weight?: unknown; cap?: unknown } }>('/v1/domains/:dom/sched', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return sched.setParams(ts, d, req.body ?? {});
  });

  app.get<{ Params: DomParams }>('/v1/domains/:dom/vcpus', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return { domid: d.domid, name: d.name, vcpus: sched.vcpus(d) };
  });

  app.post<{ Params: DomParams; Body: { vcpu?: unknown; hard?: unknown; soft?: unknown; force?: unknown } }>(
    '/v1/domains/:dom/vcpu-pin',
    async (req) => {
      const d = ts.find(req.params.dom, req.principal);
      const b = req.body ?? {};
      const vcpu = b.vcpu === 'all' ? 'all' : b.vcpu;
      if (vcpu !== 'all' && typeof vcpu !== 'number')
        throw new XenodeError('usage', `Error: Invalid argument ${String(vcpu)} as VCPU.`, { exitCode: 1 });
      const pin: PinRequest = {
        vcpu,
        hard: optString(b.hard, 'hard'),
        soft: optString(b.soft, 'soft'),
        force: b.force === true,
      };
      await sched.pin(ts, d, pin);
      return { ok: true };
    },
  );

  app.post<{ Params: DomParams; Body: { vcpus?: unknown; ignoreHost?: unknown } }>(
    '/v1/domains/:dom/vcpu-set',
    async (req) => {
      const d = ts.find(req.params.dom, req.principal);
      const b = req.body ?? {};
      return sched.setVcpus(ts, d, b.vcpus, b.ignoreHost === true);
    },
  );
}
