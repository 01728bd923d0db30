// Network auditing as a toolstack plugin: the flow log of the switch's records,
// the admin's audit rules, and their routes (docs/audit.md). The switch that sees
// the frames belongs to the network feature; it reaches this one through the
// core's NetAuditLink, wired in src/toolstack/plugins.ts.

import type { NetAuditLink } from '../../toolstack/lifecycle-hooks.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { registerAuditRoutes } from './routes.ts';
import { AuditService } from './service.ts';

export function auditPlugin(link?: NetAuditLink): ToolstackPlugin {
  const audit = new AuditService(link);
  return {
    name: 'audit',
    start: (host) => audit.start(host),
    routes: (app, ctx) => registerAuditRoutes(app, ctx, audit),
    stop: async () => audit.stop(),
  };
}
