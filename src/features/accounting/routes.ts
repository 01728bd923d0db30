// /v1/account, /v1/bill, /v1/prices and /metrics. Every route needs a token on
// the TCP listener (the server's onRequest answers 401 without one); what a
// sponsor's token sees is cut down to its own sponsor in report.ts.

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { XenodeError } from '../../errors.ts';
import { PRICE_ITEMS, PRICE_KEYS, type PriceTable, parsePriceWords } from './prices.ts';
import { renderMetrics } from './prometheus.ts';
import { accountFor, accountParams, billFor } from './report.ts';
import type { AccountStore } from './store.ts';

export interface PricesView {
  currency: string | null;
  prices: Array<{ key: string; price: string | null; help: string }>;
}

export interface PricesBody {
  prices?: unknown;
  replace?: unknown;
}

function pricesView(t: PriceTable): PricesView {
  return {
    currency: t.currency ?? null,
    prices: PRICE_KEYS.map((k) => ({ key: k, price: t.prices[k]?.text ?? null, help: PRICE_ITEMS[k].help })),
  };
}

/** The body of PUT /v1/prices: {prices: {key: "0.02/h" | null}, replace?: boolean}. */
function priceChange(body: unknown): { change: Record<string, string | null>; replace: boolean } {
  const b = (body ?? {}) as PricesBody;
  if (typeof b !== 'object' || Array.isArray(b)) throw new XenodeError('usage', 'prices needs a JSON object');
  for (const k of Object.keys(b))
    if (k !== 'prices' && k !== 'replace') throw new XenodeError('usage', `unknown field '${k.slice(0, 32)}'`);
  if (b.replace !== undefined && typeof b.replace !== 'boolean')
    throw new XenodeError('usage', 'replace must be true or false');
  const p = b.prices;
  if (!p || typeof p !== 'object' || Array.isArray(p))
    throw new XenodeError('usage', 'prices must be an object of key: "amount/unit" (or null to remove)');
  const entries = Object.entries(p as Record<string, unknown>);
  if (entries.length > 32) throw new XenodeError('usage', 'too many prices at once');
  const words = entries.map(([k, v]) => {
    if (v !== null && typeof v !== 'string')
      throw new XenodeError('usage', `price ${k.slice(0, 32)} must be a string or null`);
    return `${k}=${v ?? 'none'}`;
  });
  // One parser for the CLI's words and the API's JSON: the same refusals.
  return { change: parsePriceWords(words), replace: b.replace === true };
}

export function registerAccountingRoutes(app: FastifyInstance, ctx: ApiContext, store: () => AccountStore): void {
  app.get('/v1/account', async (req) =>
    accountFor(store(), req.principal, accountParams(req.query, ['sponsor', 'domain', 'since', 'until'])),
  );

  app.get('/v1/bill', async (req) =>
    billFor(store(), req.principal, accountParams(req.query, ['sponsor', 'since', 'until'])),
  );

  app.get('/v1/prices', async () => pricesView(store().prices()));

  app.put('/v1/prices', async (req) => {
    if (!req.principal.admin) throw new XenodeError('permission', 'only the admin may set prices');
    const { change, replace } = priceChange(req.body);
    const t = store().setPrices(change, replace);
    ctx.log.info(`prices ${replace ? 'replaced' : 'set'}: ${JSON.stringify(change)}`);
    return pricesView(t);
  });

  app.get('/metrics', async (req, reply) => {
    accountParams(req.query, []);
    const now = Date.now();
    const { contentType, body } = await renderMetrics(accountFor(store(), req.principal, {}, now), now);
    return reply.type(contentType).send(body);
  });
}
