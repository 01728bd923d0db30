// CPU scheduling as a toolstack plugin: cpu_weight, cap and cpus= applied to a
// domain's cgroups when its QEMU starts or a restarted daemon finds it, a
// sponsor's cpu-weight/cpu-cap applied at once when the admin changes them, and
// the routes of sched-credit, vcpu-pin, vcpu-set and vcpu-list (docs/sched.md).

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import type { DomainConfig } from '../../config/types.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import type { SponsorLimits } from '../../toolstack/sponsors.ts';
import { registerSchedRoutes } from './routes.ts';
import { Scheduler } from './sched.ts';

export function schedPlugin(): ToolstackPlugin {
  const sched = new Scheduler();
  return {
    name: 'sched',
    async start(host: PluginHost) {
      sched.start(host.log, host.sponsors);
    },
    admit(cfg: DomainConfig) {
      sched.admit(cfg);
    },
    async afterLaunch(d: Domain) {
      sched.attached(d);
    },
    // Written again: the values are in the config, whatever the groups hold now.
    async afterReattach(d: Domain) {
      sched.attached(d);
    },
    async onTeardown(d: Domain) {
      sched.detached(d);
    },
    async onSponsorLimits(sponsor: string, limits: SponsorLimits) {
      sched.applySponsor(sponsor, limits);
    },
    routes(app: FastifyInstance, ctx: ApiContext) {
      registerSchedRoutes(app, ctx, sched);
    },
  };
}
