// account, bill, price-set and price-list. xl has no such commands; the tables
// follow xl's style (a header, names left, numbers right, one row per domain).

import { readFileSync } from 'node:fs';
import type { CommandSpec } from '../../cli/command-spec.ts';
import { XenodeError } from '../../errors.ts';
import { type BillLine, parsePriceFile, parsePriceWords, priceHelp } from './prices.ts';
import type { BillReport } from './report.ts';
import type { PricesView } from './routes.ts';
import type { AccountReport } from './store.ts';
import type { Usage } from './usage.ts';

const MiB = 1024 ** 2;

function query(opts: Record<string, string | boolean | undefined>, keys: string[]): string {
  const q = new URLSearchParams();
  for (const k of keys) {
    const v = opts[k];
    if (typeof v === 'string') q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function usageCells(u: Usage): string {
  const f = (n: number, digits: number, w: number) => n.toFixed(digits).padStart(w);
  return [
    f(u.cpuSeconds, 1, 10),
    f(u.memTargetMiBSeconds / 3600, 1, 11),
    f(u.memRssMiBSeconds / 3600, 1, 11),
    f(u.diskReadBytes / MiB, 2, 10),
    f(u.diskWriteBytes / MiB, 2, 10),
    f(u.diskReadOps, 0, 9),
    f(u.diskWriteOps, 0, 9),
    f(u.netRxBytes / MiB, 2, 10),
    f(u.netTxBytes / MiB, 2, 10),
    f(u.netRxPackets, 0, 9),
    f(u.netTxPackets, 0, 9),
  ].join(' ');
}

const USAGE_HEAD = [
  'CPU(s)'.padStart(10),
  'Mem(MiB-h)'.padStart(11),
  'RSS(MiB-h)'.padStart(11),
  'Rd(MiB)'.padStart(10),
  'Wr(MiB)'.padStart(10),
  'RdOps'.padStart(9),
  'WrOps'.padStart(9),
  'Rx(MiB)'.padStart(10),
  'Tx(MiB)'.padStart(10),
  'RxPkts'.padStart(9),
  'TxPkts'.padStart(9),
].join(' ');

export function formatAccount(r: AccountReport): string {
  const lines = [`${'Name'.padEnd(24)} ${'ID'.padStart(5)} ${'Sponsor'.padEnd(16)} ${USAGE_HEAD}`];
  for (const d of r.domains) {
    const name = d.destroyed === null ? d.name : `${d.name} (destroyed)`;
    lines.push(`${name.padEnd(24)} ${String(d.domid).padStart(5)} ${d.sponsor.padEnd(16)} ${usageCells(d.usage)}`);
  }
  lines.push('', `${'Sponsor'.padEnd(24)} ${'Doms'.padStart(5)} ${''.padEnd(16)} ${USAGE_HEAD}`);
  for (const s of r.sponsors)
    lines.push(`${s.sponsor.padEnd(24)} ${String(s.domains).padStart(5)} ${''.padEnd(16)} ${usageCells(s.usage)}`);
  return `${lines.join('\n')}\n`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
}

function qty(l: BillLine): string {
  return l.unit === 'ops' || l.unit === 'packets' ? l.quantity.toFixed(0) : l.quantity.toFixed(4);
}

export function formatBill(b: BillReport): string {
  const out: string[] = [];
  const period = `${b.since === null ? 'from the start' : `from ${iso(b.since)}`} to ${iso(b.until)}`;
  const cur = b.currency ? ` ${b.currency}` : '';
  if (b.sponsors.length === 0) out.push(`No usage ${period}.`);
  for (const s of b.sponsors) {
    if (out.length) out.push('');
    out.push(`Sponsor ${s.sponsor}, ${s.domains} domain${s.domains === 1 ? '' : 's'}, ${period}`);
    out.push(
      `${'Item'.padEnd(12)} ${'Quantity'.padStart(14)} ${'Unit'.padEnd(8)} ${'Price'.padEnd(14)} ${'Amount'.padStart(12)}`,
    );
    for (const l of s.lines)
      out.push(
        `${l.item.padEnd(12)} ${qty(l).padStart(14)} ${l.unit.padEnd(8)} ${l.price.padEnd(14)} ${l.amount.toFixed(4).padStart(12)}`,
      );
    if (s.lines.length === 0) out.push('(no prices set: xenode price-set)');
    out.push(
      `${'Total'.padEnd(12)} ${''.padStart(14)} ${''.padEnd(8)} ${''.padEnd(14)} ${s.total.toFixed(4).padStart(12)}${cur}`,
    );
  }
  return `${out.join('\n')}\n`;
}

export function formatPrices(p: PricesView): string {
  const lines = [`${'Item'.padEnd(12)} ${'Price'.padEnd(14)} What`];
  for (const x of p.prices) lines.push(`${x.key.padEnd(12)} ${(x.price ?? '-').padEnd(14)} ${x.help}`);
  lines.push(`Currency: ${p.currency ?? '-'}`);
  return `${lines.join('\n')}\n`;
}

const RANGE_HELP = `T is an ISO time (2025-06-01T12:00Z; UTC without a zone) or one relative
to now (-30m, -1h, -2d, -1w). Usage is kept per minute: a minute counts when
it starts within [--since, --until).`;

export const accountingCommands: CommandSpec[] = [
  {
    name: 'account',
    args: '',
    summary: 'Show what domains and sponsors used: CPU, memory, disk and network (a sponsor sees its own)',
    example: 'xenode account --sponsor alice --since -1h',
    help: `Per domain (destroyed ones too) and per sponsor: CPU seconds, memory target and
resident memory over time (MiB-hours), disk bytes and operations, network bytes
and packets each way (the guest's view: Rx = received by the guest).
${RANGE_HELP}`,
    options: [
      { flags: '--sponsor <S>', help: 'only this sponsor (the admin); a sponsor sees only its own' },
      { flags: '--domain <D>', help: 'only this domain (name, domid or uuid)' },
      { flags: '--since <T>', help: 'from T (default: the first usage recorded)' },
      { flags: '--until <T>', help: 'until T (default: now)' },
      { flags: '--json', help: 'print the API object (exact values)' },
    ],
    async run(ctx, _args, opts) {
      const r = await ctx
        .client()
        .get<AccountReport>(`/v1/account${query(opts, ['sponsor', 'domain', 'since', 'until'])}`);
      ctx.out(opts.json === true ? `${JSON.stringify(r, null, 2)}\n` : formatAccount(r));
      return 0;
    },
  },
  {
    name: 'bill',
    args: '',
    summary: "Price sponsors' usage with the price table: line items and totals (a sponsor sees its own)",
    example: 'xenode bill --sponsor alice --since 2025-06-01 --until 2025-07-01',
    help: `One bill per sponsor: each priced item's quantity, price and amount, and the
total. Every item is priced with today's table (xenode price-list).
${RANGE_HELP}`,
    options: [
      { flags: '--sponsor <S>', help: 'only this sponsor (the admin); a sponsor sees only its own' },
      { flags: '--since <T>', help: 'from T (default: the first usage recorded)' },
      { flags: '--until <T>', help: 'until T (default: now)' },
      { flags: '--json', help: 'print the API object' },
    ],
    async run(ctx, _args, opts) {
      const b = await ctx.client().get<BillReport>(`/v1/bill${query(opts, ['sponsor', 'since', 'until'])}`);
      ctx.out(opts.json === true ? `${JSON.stringify(b, null, 2)}\n` : formatBill(b));
      return 0;
    },
  },
  {
    name: 'price-set',
    args: '[prices...]',
    summary: 'Set prices of the bill (admin): key=amount/unit; key=none removes one',
    example: 'xenode price-set cpu=0.02/h memory=0.005/GiB-h disk=0.01/GiB net=0.05/GiB currency=EUR',
    help: `Items (units):
${priceHelp()}
disk and net set both directions; currency names the money (1 to 8 letters).
--file F replaces the whole table with F's "key = value" lines (# comments).`,
    options: [{ flags: '--file <F>', help: 'replace the table with the prices in file F' }],
    async run(ctx, words, opts) {
      let body: { prices: Record<string, string | null>; replace: boolean };
      if (typeof opts.file === 'string') {
        if (words.length) throw new XenodeError('usage', 'give prices as words or --file, not both');
        let text: string;
        try {
          text = readFileSync(opts.file, 'utf8');
        } catch (e) {
          throw new XenodeError('not-found', `cannot read ${opts.file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
        }
        body = { prices: parsePriceFile(text), replace: true };
      } else {
        if (words.length === 0)
          throw new XenodeError('usage', 'price-set needs key=value words or --file', { hint: 'e.g. cpu=0.02/h' });
        body = { prices: parsePriceWords(words), replace: false };
      }
      ctx.out(formatPrices(await ctx.client().put<PricesView>('/v1/prices', body)));
      return 0;
    },
  },
  {
    name: 'price-list',
    args: '',
    summary: 'Show the price table',
    example: 'xenode price-list',
    options: [{ flags: '--json', help: 'print the API object' }],
    async run(ctx, _args, opts) {
      const p = await ctx.client().get<PricesView>('/v1/prices');
      ctx.out(opts.json === true ? `${JSON.stringify(p, null, 2)}\n` : formatPrices(p));
      return 0;
    },
  },
];
