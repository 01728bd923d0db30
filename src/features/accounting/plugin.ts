// Accounting as a toolstack plugin: every domain's CPU, memory, disk and
// network usage sampled every few seconds and at its end, kept per domain and
// per sponsor in the daemon's state directory (accounting.db), with the price
// table, the bill and Prometheus /metrics.

import { join } from 'node:path';
import { XenodeError } from '../../errors.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { LOCAL_ADMIN } from '../../toolstack/principal.ts';
import { registerAccountingRoutes } from './routes.ts';
import { Accountant } from './sampler.ts';
import { AccountStore, type RetentionPolicy } from './store.ts';

/** XENODE_ACCOUNT_INTERVAL_MS: how often domains are sampled (500 ms to 60 s; 2 s by default). */
function intervalMs(): number {
  const v = Number(process.env.XENODE_ACCOUNT_INTERVAL_MS);
  return Number.isInteger(v) && v >= 500 && v <= 60_000 ? v : 2000;
}

/** XENODE_ACCOUNT_MINUTE_DAYS / XENODE_ACCOUNT_KEEP_DAYS: how long usage is kept per minute, and at all. */
function retention(log: { warn(m: string): void }): RetentionPolicy {
  const read = (name: string, dflt: number, min: number): number => {
    const raw = process.env[name];
    if (raw === undefined || raw === '') return dflt;
    const v = Number(raw);
    if (Number.isInteger(v) && v >= min && v <= 36_500) return v;
    log.warn(`accounting: ${name}=${raw} is not a whole number of days from ${min} to 36500; using ${dflt}`);
    return dflt;
  };
  const minuteDays = read('XENODE_ACCOUNT_MINUTE_DAYS', 35, 1);
  const keepDays = read('XENODE_ACCOUNT_KEEP_DAYS', 400, 0);
  if (keepDays !== 0 && keepDays < minuteDays) {
    log.warn(
      `accounting: XENODE_ACCOUNT_KEEP_DAYS=${keepDays} is below the minute history; keeping ${minuteDays} days`,
    );
    return { minuteDays, keepDays: minuteDays };
  }
  return { minuteDays, keepDays };
}

const COMPACT_EVERY_MS = 3_600_000;

/** The routes of registerAccountingRoutes, answered with the reason while the database cannot be opened. */
const UNAVAILABLE_ROUTES: ReadonlyArray<['GET' | 'PUT', string]> = [
  ['GET', '/v1/account'],
  ['GET', '/v1/bill'],
  ['GET', '/v1/prices'],
  ['PUT', '/v1/prices'],
  ['GET', '/metrics'],
];

export function accountingPlugin(): ToolstackPlugin {
  let acc: Accountant | undefined;
  let bound: object | undefined;
  /** Why there is no accounting (its database could not be opened). */
  let broken: string | undefined;
  let compactTimer: NodeJS.Timeout | undefined;
  const accountant = (): Accountant => {
    if (!acc) throw new Error('accounting is not started');
    return acc;
  };
  const unavailable = (): XenodeError =>
    new XenodeError('internal', `accounting is unavailable: ${broken}`, {
      hint: 'the daemon log says why; move the file away (or repair it) and restart xenoded',
    });
  return {
    name: 'accounting',
    async start(host) {
      const path = join(host.dirs.base, 'accounting.db');
      let store: AccountStore;
      try {
        store = new AccountStore(path);
      } catch (e) {
        // A broken bill must not take the toolstack down: domains stay manageable, and the
        // counters are cumulative, so a repaired database counts what was missed (docs/accounting.md).
        broken = `cannot open ${path}: ${e instanceof Error ? e.message : String(e)}`;
        host.log.error(`accounting: ${broken}; nothing is accounted until it is repaired or moved away`);
        return;
      }
      acc = new Accountant(store, { intervalMs: intervalMs(), log: host.log });
      acc.start();
      // History is bounded (docs/accounting.md): minutes roll into hours, the oldest goes.
      const policy = retention(host.log);
      const compact = (): void => {
        try {
          const r = store.compact(Date.now(), policy);
          if (r.rolledUp + r.dropped + r.domainsDropped > 0)
            host.log.info(
              `accounting: rolled ${r.rolledUp} minute rows into hours, dropped ${r.dropped} rows and ${r.domainsDropped} destroyed domains past ${policy.keepDays || 'no'} days`,
            );
        } catch (e) {
          host.log.warn(`accounting: compacting the history: ${e instanceof Error ? e.message : String(e)}`);
        }
      };
      compact();
      compactTimer = setInterval(compact, COMPACT_EVERY_MS);
      compactTimer.unref();
    },
    async afterLaunch(d: Domain) {
      acc?.track(d);
    },
    async afterReattach(d: Domain) {
      acc?.track(d);
    },
    async onTeardown(d: Domain) {
      try {
        await acc?.final(d);
      } catch (e) {
        acc?.log?.warn(`accounting: last sample: ${e instanceof Error ? e.message : String(e)}`, d.domid);
      }
    },
    routes(app, ctx) {
      if (broken !== undefined) {
        for (const [method, url] of UNAVAILABLE_ROUTES)
          app.route({
            method,
            url,
            handler: async () => {
              throw unavailable();
            },
          });
        return;
      }
      const a = accountant();
      // Routes are registered once per listener; the toolstack is bound once.
      if (bound !== ctx.toolstack) {
        bound = ctx.toolstack;
        a.setSources(ctx.toolstack.plugins);
        ctx.toolstack.events.on('gone', (d) => a.gone(d));
        // Domains that went while no daemon ran (or before accounting saw their end) are closed.
        const live = ctx.toolstack.list(LOCAL_ADMIN).map((d) => ({ uuid: d.rec.uuid, domid: d.domid }));
        const closed = a.store.closeMissing(live);
        if (closed > 0) ctx.log.info(`accounting: closed the accounts of ${closed} domains gone while no daemon ran`);
      }
      registerAccountingRoutes(app, ctx, () => a.store);
    },
    async stop() {
      if (compactTimer) clearInterval(compactTimer);
      await acc?.stop();
      acc?.store.close();
    },
  };
}
