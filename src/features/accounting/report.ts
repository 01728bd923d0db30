// Who may see which accounts, and the answers of /v1/account, /v1/bill and
// /metrics built from one store report, so they carry the same numbers. A
// sponsor sees its own account and bill only; the admin sees every sponsor.

import { XenodeError } from '../../errors.ts';
import { canSeeSponsor, type Principal } from '../../toolstack/principal.ts';
import { type BillLine, billLines, billTotal, type PriceTable } from './prices.ts';
import type { AccountReport, AccountStore } from './store.ts';
import { parseRange } from './time-range.ts';

export interface AccountParams {
  sponsor?: string;
  domain?: string;
  since?: string;
  until?: string;
}

const MAX_PARAM = 128;

/** The query string of an account route: only `allowed` keys, each one short string. */
export function accountParams(raw: unknown, allowed: readonly (keyof AccountParams)[]): AccountParams {
  const out: AccountParams = {};
  for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    if (!(allowed as readonly string[]).includes(k))
      throw new XenodeError('usage', `unknown parameter '${k.slice(0, 32)}'`, {
        hint: `parameters: ${allowed.join(', ')}`,
      });
    if (typeof v !== 'string') throw new XenodeError('usage', `parameter ${k} given more than once`);
    if (v.length === 0 || v.length > MAX_PARAM)
      throw new XenodeError('usage', `parameter ${k} must be 1 to ${MAX_PARAM} characters`);
    out[k as keyof AccountParams] = v;
  }
  return out;
}

/**
 * The sponsor a principal's question is about: the admin may name any (or
 * none: all); a sponsor only itself. null: nothing to show (a non-admin token
 * named `admin`, which owns nothing).
 */
export function sponsorScope(p: Principal, asked: string | undefined): string | undefined | null {
  if (p.admin) return asked;
  if (asked !== undefined && asked !== p.sponsor)
    throw new XenodeError('permission', 'a sponsor sees only its own account', {
      hint: `leave out --sponsor, or give ${p.sponsor}`,
    });
  return canSeeSponsor(p, p.sponsor) ? p.sponsor : null;
}

function empty(since: number | undefined, until: number, store: AccountStore): AccountReport {
  return { since: since ?? null, until, sampledAt: store.sampledAt(), resolutionMs: 60_000, domains: [], sponsors: [] };
}

export function accountFor(store: AccountStore, p: Principal, q: AccountParams, now = Date.now()): AccountReport {
  const { since, until } = parseRange(q.since, q.until, now);
  const sponsor = sponsorScope(p, q.sponsor);
  if (sponsor === null) {
    if (q.domain !== undefined) throw noDomain(q.domain);
    return empty(since, until, store);
  }
  const rep = store.report({ since, until, sponsor, domain: q.domain });
  // Another sponsor's domain reads exactly like one that never was.
  if (q.domain !== undefined && rep.domains.length === 0) throw noDomain(q.domain);
  return rep;
}

function noDomain(ref: string): XenodeError {
  return new XenodeError('not-found', `no account for domain '${ref.slice(0, 64)}'`, {
    hint: 'give a name, domid or uuid of one of your domains (xenode account lists them)',
  });
}

export interface SponsorBill {
  sponsor: string;
  domains: number;
  lines: BillLine[];
  total: number;
}

export interface BillReport {
  since: number | null;
  until: number;
  sampledAt: number | null;
  currency: string | null;
  sponsors: SponsorBill[];
}

export function billFor(store: AccountStore, p: Principal, q: AccountParams, now = Date.now()): BillReport {
  const rep = accountFor(store, p, q, now);
  const prices: PriceTable = store.prices();
  return {
    since: rep.since,
    until: rep.until,
    sampledAt: rep.sampledAt,
    currency: prices.currency ?? null,
    sponsors: rep.sponsors.map((s) => {
      const lines = billLines(s.usage, prices);
      return { sponsor: s.sponsor, domains: s.domains, lines, total: billTotal(lines) };
    }),
  };
}
