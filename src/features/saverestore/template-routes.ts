// Template routes. Any principal: a sponsor makes, lists and deletes its own
// templates (another sponsor's are answered as missing); the admin sees all
// and names another sponsor's as SPONSOR/NAME.
//   GET    /v1/templates            the caller's templates (stale: made from inputs that changed)
//   POST   /v1/templates            {name, domain} or {name, config}
//   DELETE /v1/templates/:name

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { checkConfigJson } from '../../api/routes-domains.ts';
import { XenodeError } from '../../errors.ts';
import { createTemplate, forgetRam } from './template.ts';
import { templateFingerprint } from './template-fingerprint.ts';
import { checkTemplateName, deleteTemplate, listTemplates, templateFiles } from './template-store.ts';

export interface TemplateView {
  name: string;
  sponsor: string;
  source: string;
  createdAt: string;
  memoryMiB: number;
  ramBytes: number;
  stateBytes: number;
  /** Its guest's inputs changed since: no create starts from it. */
  stale: boolean;
}

export function registerTemplateRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const ts = ctx.toolstack;

  app.get('/v1/templates', async (req): Promise<TemplateView[]> => {
    const out: TemplateView[] = [];
    for (const t of listTemplates(ts.dirs.base, req.principal)) {
      const now = await templateFingerprint(ts, t.config).catch(() => '');
      out.push({
        name: t.name,
        sponsor: t.sponsor,
        source: t.source,
        createdAt: t.createdAt,
        memoryMiB: t.memoryMiB,
        ramBytes: t.ramBytes,
        stateBytes: t.stateBytes,
        stale: now !== t.fingerprint,
      });
    }
    return out;
  });

  app.post<{ Body: Record<string, unknown> }>('/v1/templates', async (req) => {
    const b = req.body;
    if (!b || typeof b !== 'object') throw new XenodeError('usage', 'request body must be a JSON object');
    const name = checkTemplateName(b.name);
    if (b.domain !== undefined && (typeof b.domain !== 'string' || b.domain === '' || b.domain.length > 64)) {
      throw new XenodeError('usage', '"domain" must be a domain name or id');
    }
    const config = b.config !== undefined ? checkConfigJson(b.config, req.principal) : undefined;
    const t = await createTemplate(ts, req.principal, {
      name,
      domain: b.domain as string | undefined,
      config,
    });
    const { config: _c, fingerprint: _f, ...view } = t;
    return view;
  });

  app.delete<{ Params: { name: string } }>('/v1/templates/:name', async (req) => {
    const t = deleteTemplate(ts.dirs.base, req.principal, req.params.name);
    forgetRam(templateFiles(ts.dirs.base, t.sponsor, t.name).ram);
    return { ok: true };
  });
}
