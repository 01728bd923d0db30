// Save, restore and live migration as a toolstack plugin: their API routes,
// and, after a daemon restart, the saves and migrations it was killed in.
// The lifecycle side (QEMU started with -incoming) is Toolstack.restoreDomain.

import type { Intent, IntentHost, IntentOp } from '../../toolstack/intents.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import type { Toolstack } from '../../toolstack/toolstack.ts';
import { resolveMigrateOut } from './migrate.ts';
import { incomingLoaded, resolveMigrateIn } from './migrate-target.ts';
import { registerMigrateRoutes } from './routes.ts';
import { resolveSave } from './saverestore.ts';
import { templateStart } from './template.ts';
import { registerTemplateRoutes } from './template-routes.ts';
import { sweepBuilds } from './template-store.ts';

const OPS: readonly IntentOp[] = ['save', 'migrate-out', 'migrate-in'];

export function saveRestorePlugin(): ToolstackPlugin {
  let log: DaemonLog | undefined;
  // Templates start domains through the toolstack the API serves (the same one on every listener).
  let ts: Toolstack | undefined;
  return {
    name: 'saverestore',
    async start(host) {
      log = host.log;
      sweepBuilds(host.dirs.base);
    },
    routes: (app, ctx) => {
      ts = ctx.toolstack;
      registerMigrateRoutes(app, ctx);
      registerTemplateRoutes(app, ctx);
    },
    startFrom: (cfg, p) => (ts ? templateStart(ts, cfg, p) : Promise.resolve(undefined)),
    intentOps: OPS,
    async settleIntent(host: IntentHost, d, it: Intent) {
      switch (it.op) {
        case 'save':
          return resolveSave(host, d, it);
        case 'migrate-out':
          return resolveMigrateOut(host, d, it);
        case 'migrate-in':
          return resolveMigrateIn(host, d, it);
        default:
          return undefined;
      }
    },
    keepUnfinished: (d, m) => incomingLoaded(d, m, log),
  };
}
