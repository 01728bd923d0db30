// Live data for the web UI: GET /v1/domains/:dom/metrics (the sampler's
// history) and the /v1/events WebSocket, which pushes domain changes and
// samples so the domain list needs no polling.

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { type DomainView, domainView } from '../../api/views.ts';
import type { Domain } from '../../toolstack/domain.ts';
import { canSeeSponsor } from '../../toolstack/principal.ts';
import type { MetricsSample, MetricsSampler } from './sampler.ts';

/** Messages on /v1/events (JSON text frames, server to client). */
export type LiveEvent =
  | { type: 'snapshot'; domains: DomainView[]; samples: Record<number, MetricsSample> }
  | { type: 'change'; domain: DomainView }
  | { type: 'gone'; domid: number }
  | { type: 'sample'; domid: number; sample: MetricsSample };

/** Above this much unsent data a slow client skips samples (changes still go out). */
const MAX_BUFFERED = 1 << 20;
/** Above this much a client is not reading at all: it is cut off rather than buffered for. */
const MAX_UNREAD = 4 * MAX_BUFFERED;

export function registerLiveRoutes(app: FastifyInstance, ctx: ApiContext, sampler: MetricsSampler): void {
  const ts = ctx.toolstack;

  app.get<{ Params: { dom: string } }>('/v1/domains/:dom/metrics', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return sampler.history(d.domid);
  });

  app.get('/v1/events', { websocket: true }, (socket, req) => {
    const p = req.principal;
    const visible = (d: Domain) => canSeeSponsor(p, d.rec.sponsor);
    const send = (e: LiveEvent) => {
      if (socket.readyState !== socket.OPEN) return;
      if (socket.bufferedAmount > MAX_UNREAD) socket.terminate();
      else socket.send(JSON.stringify(e));
    };
    const doms = ts.list(p);
    const samples: Record<number, MetricsSample> = {};
    for (const d of doms) {
      const s = sampler.latest(d.domid);
      if (s) samples[d.domid] = s;
    }
    send({ type: 'snapshot', domains: doms.map((d) => domainView(d)), samples });
    const onChange = (d: Domain) => {
      if (visible(d)) send({ type: 'change', domain: domainView(d) });
    };
    const onGone = (d: Domain) => {
      if (visible(d)) send({ type: 'gone', domid: d.domid });
    };
    const onSample = (d: Domain, sample: MetricsSample) => {
      if (visible(d) && socket.bufferedAmount < MAX_BUFFERED) send({ type: 'sample', domid: d.domid, sample });
    };
    ts.events.on('change', onChange);
    ts.events.on('gone', onGone);
    sampler.on('sample', onSample);
    socket.on('close', () => {
      ts.events.off('change', onChange);
      ts.events.off('gone', onGone);
      sampler.off('sample', onSample);
    });
  });
}
