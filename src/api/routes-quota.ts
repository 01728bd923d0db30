// Per-sponsor limits (admin): quotas on domains, memory, vCPUs, volumes and
// disk bytes, and the Linux bridges a sponsor's vifs may join. A sponsor may
// read its own limits and usage, never another's.

import type { FastifyInstance } from 'fastify';
import { XenodeError } from '../errors.ts';
import { DEFAULT_SPONSOR, LIMIT_KEYS, RATE_KEYS, type SponsorLimits } from '../toolstack/sponsors.ts';
import type { ApiContext } from './context.ts';

export interface QuotaView {
  sponsor: string;
  /** The limits in force (own row, else `*`). */
  limits: SponsorLimits;
  /** True when the sponsor has no row of its own and inherits `*`. */
  inherited: boolean;
  usage: { domains: number; memoryMiB: number; vcpus: number; volumes: number; diskBytes: number };
}

type LimitChange = { [K in keyof SponsorLimits]?: SponsorLimits[K] | null };

function limitChange(body: unknown): LimitChange {
  if (!body || typeof body !== 'object') throw new XenodeError('usage', 'quota needs a JSON object of limits');
  const out: LimitChange = {};
  for (const [k, v] of Object.entries(body)) {
    if ((LIMIT_KEYS as readonly string[]).includes(k) || (RATE_KEYS as readonly string[]).includes(k)) {
      if (v !== null && typeof v !== 'number') throw new XenodeError('usage', `limit ${k} must be a number or null`);
      out[k as (typeof LIMIT_KEYS)[number] | (typeof RATE_KEYS)[number]] = v;
    } else if (k === 'bridges') {
      if (v !== null && !(Array.isArray(v) && v.every((b) => typeof b === 'string')))
        throw new XenodeError('usage', 'bridges must be a list of names or null');
      out.bridges = v;
    } else if (k === 'vlans') {
      if (v !== null && !(Array.isArray(v) && v.every((b) => typeof b === 'number')))
        throw new XenodeError('usage', 'vlans must be a list of VLAN ids or null');
      out.vlans = v;
    } else
      throw new XenodeError('usage', `unknown limit '${k}'`, {
        hint: `limits: ${[...LIMIT_KEYS, ...RATE_KEYS].join(', ')}, bridges, vlans`,
      });
  }
  return out;
}

export function registerQuotaRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const view = (sponsor: string): QuotaView => {
    const doms = ctx.toolstack.list({ sponsor, admin: false });
    const held = (k: 'volumes' | 'diskBytes') =>
      ctx.toolstack.plugins.reduce((n, p) => n + (p.usage?.(sponsor)[k] ?? 0), 0);
    return {
      sponsor,
      limits: ctx.sponsors.limits(sponsor),
      inherited: ctx.sponsors.row(sponsor) === undefined,
      usage: {
        domains: doms.length,
        memoryMiB: doms.reduce((n, d) => n + d.rec.maxMiB, 0),
        vcpus: doms.reduce((n, d) => n + d.rec.config.maxvcpus, 0),
        volumes: held('volumes'),
        diskBytes: held('diskBytes'),
      },
    };
  };

  app.get('/v1/quotas', async (req): Promise<QuotaView[]> => {
    const p = req.principal;
    if (!p.admin) return [view(p.sponsor)];
    const names = new Set(ctx.sponsors.list().map((r) => r.sponsor));
    for (const d of ctx.toolstack.list(p)) if (d.rec.sponsor !== 'admin') names.add(d.rec.sponsor);
    return [...names]
      .sort()
      .map((s) =>
        s === DEFAULT_SPONSOR
          ? { ...view(s), usage: { domains: 0, memoryMiB: 0, vcpus: 0, volumes: 0, diskBytes: 0 } }
          : view(s),
      );
  });

  app.put<{ Params: { sponsor: string }; Body: unknown }>('/v1/quotas/:sponsor', async (req) => {
    if (!req.principal.admin) throw new XenodeError('permission', 'only the admin may set limits');
    ctx.sponsors.set(req.params.sponsor, limitChange(req.body));
    ctx.log.info(
      `limits of sponsor ${req.params.sponsor} set: ${JSON.stringify(ctx.sponsors.row(req.params.sponsor))}`,
    );
    await applySponsorLimits(ctx, req.params.sponsor);
    return view(req.params.sponsor);
  });

  app.delete<{ Params: { sponsor: string } }>('/v1/quotas/:sponsor', async (req) => {
    if (!req.principal.admin) throw new XenodeError('permission', 'only the admin may remove limits');
    ctx.sponsors.remove(req.params.sponsor);
    await applySponsorLimits(ctx, req.params.sponsor);
    return { ok: true };
  });
}

/** Rate limits take effect on running domains at once; `*` reaches every sponsor
 *  that inherits it. A feature that fails to apply them is logged, not fatal: the
 *  row is saved and the feature applies it again at the next launch. */
async function applySponsorLimits(ctx: ApiContext, sponsor: string): Promise<void> {
  const names = new Set<string>();
  if (sponsor === DEFAULT_SPONSOR) {
    for (const d of ctx.toolstack.list({ sponsor: 'admin', admin: true }))
      if (d.rec.sponsor !== 'admin' && ctx.sponsors.row(d.rec.sponsor) === undefined) names.add(d.rec.sponsor);
  } else names.add(sponsor);
  for (const name of names) {
    const limits = ctx.sponsors.limits(name);
    for (const p of ctx.toolstack.plugins) {
      if (!p.onSponsorLimits) continue;
      try {
        await p.onSponsorLimits(name, limits);
      } catch (e) {
        ctx.log.warn(`${p.name}: limits of sponsor ${name} not applied: ${(e as Error).message}`, {
          sponsor: name,
        });
      }
    }
  }
}
