// Network routes: a domain's vifs with counters (for the CLI and the web UI's
// charts), NIC hotplug, and the switch's status and sponsor policy (admin).

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { parseVifSpec } from '../../config/vif.ts';
import { XenodeError } from '../../errors.ts';
import { sponsorVif } from '../../toolstack/admission.ts';
import type { NetManager } from './manager.ts';

interface DomParams {
  dom: string;
}

export interface AttachBody {
  /** xl's vif spec, e.g. "mac=00:16:3e:00:00:01,bridge=br0,ip=10.200.0.5". */
  spec?: string;
}

export interface RateBody {
  /** xl's rate= (e.g. "10Mb/s@20ms"), or null / "none" for no limit. */
  rate?: unknown;
}

export interface PolicyBody {
  a?: string;
  b?: string;
  allow?: boolean;
}

function requireAdmin(admin: boolean): void {
  if (!admin) throw new XenodeError('permission', 'only the admin may do this');
}

export function registerNetRoutes(app: FastifyInstance, ctx: ApiContext, net: NetManager): void {
  const ts = ctx.toolstack;

  app.get<{ Params: DomParams }>('/v1/domains/:dom/net', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    return { domid: d.domid, name: d.name, vifs: await net.views(d) };
  });

  app.post<{ Params: DomParams; Body: AttachBody }>('/v1/domains/:dom/net', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const spec = req.body?.spec ?? '';
    if (typeof spec !== 'string') throw new XenodeError('usage', 'network-attach needs {"spec": "key=value,..."}');
    const warnings: string[] = [];
    const parsed = parseVifSpec(spec, { warn: (w) => warnings.push(w) });
    const p = req.principal;
    const vif = p.admin ? parsed : sponsorVif(parsed, ctx.sponsors.limits(p.sponsor));
    return { ...(await net.attach(d, vif)), warnings };
  });

  app.delete<{ Params: DomParams & { dev: string } }>('/v1/domains/:dom/net/:dev', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    await net.detach(d, req.params.dev);
    return { ok: true };
  });

  // A sponsor changes its own domains' vifs: its aggregate (quota-set net-rate=) still bounds them all.
  app.put<{ Params: DomParams & { dev: string }; Body: RateBody }>('/v1/domains/:dom/net/:dev/rate', async (req) => {
    const d = ts.find(req.params.dom, req.principal);
    const rate = req.body?.rate;
    if (rate !== null && (typeof rate !== 'string' || rate.length === 0 || rate.length > 64)) {
      throw new XenodeError('usage', 'network-rate needs {"rate": "RATE/s[@INTERVAL]"} or {"rate": null}', {
        hint: "e.g. '10Mb/s', '1MB/s@20ms', or none",
      });
    }
    const none = rate === null || rate === 'none';
    return net.setRate(d, req.params.dev, none ? undefined : rate, () => ts.touch(d));
  });

  app.get('/v1/net', async (req) => {
    requireAdmin(req.principal.admin);
    return net.status();
  });

  app.post('/v1/net/start', async (req) => {
    requireAdmin(req.principal.admin);
    return net.startSwitch();
  });

  app.get('/v1/net/policy', async (req) => {
    requireAdmin(req.principal.admin);
    return { allow: net.policy() };
  });

  app.post<{ Body: PolicyBody }>('/v1/net/policy', async (req) => {
    requireAdmin(req.principal.admin);
    const { a, b, allow } = req.body ?? {};
    if (typeof a !== 'string' || typeof b !== 'string' || typeof allow !== 'boolean') {
      throw new XenodeError('usage', 'policy change needs {"a": SPONSOR, "b": SPONSOR, "allow": true|false}');
    }
    return { allow: await net.setAllowed(a, b, allow) };
  });
}
