// The resource sampler as a toolstack plugin: it samples every domain the
// daemon runs and serves the history and the live event stream.

import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { registerLiveRoutes } from './routes.ts';
import { MetricsSampler } from './sampler.ts';

export function metricsPlugin(sampler = new MetricsSampler()): ToolstackPlugin {
  return {
    name: 'metrics',
    routes(app, ctx) {
      // Routes are registered once per listener; both share the one toolstack.
      sampler.bind(ctx.toolstack);
      registerLiveRoutes(app, ctx, sampler);
    },
    async stop() {
      sampler.stop();
    },
  };
}
