// Save, restore and live migration as a toolstack plugin: their API routes.
// The lifecycle side (QEMU started with -incoming) is Toolstack.restoreDomain.

import { registerMigrateRoutes } from '../api/routes-migrate.ts';
import type { ToolstackPlugin } from './plugin.ts';

export function saveRestorePlugin(): ToolstackPlugin {
  return { name: 'saverestore', routes: (app, ctx) => registerMigrateRoutes(app, ctx) };
}
