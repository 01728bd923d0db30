// Save, restore and live migration as a toolstack plugin: their API routes,
// and, after a daemon restart, the saves and migrations it was killed in.
// The lifecycle side (QEMU started with -incoming) is Toolstack.restoreDomain.

import type { Intent, IntentHost, IntentOp } from '../../toolstack/intents.ts';
import type { DaemonLog } from '../../toolstack/log.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { resolveMigrateOut } from './migrate.ts';
import { incomingLoaded, resolveMigrateIn } from './migrate-target.ts';
import { registerMigrateRoutes } from './routes.ts';
import { resolveSave } from './saverestore.ts';

const OPS: readonly IntentOp[] = ['save', 'migrate-out', 'migrate-in'];

export function saveRestorePlugin(): ToolstackPlugin {
  let log: DaemonLog | undefined;
  return {
    name: 'saverestore',
    async start(host) {
      log = host.log;
    },
    routes: (app, ctx) => registerMigrateRoutes(app, ctx),
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
