// The pool as a toolstack plugin: the service starts with the daemon and rejoins
// the pool of an earlier run; every domain that starts or goes here is written to
// the pool index; an HA domain starts only while this host is sure of its lease
// (docs/pool.md).

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import type { DomainConfig } from '../../config/types.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import type { Principal } from '../../toolstack/principal.ts';
import { registerPoolForwarding } from './forward.ts';
import { registerPoolRoutes } from './routes.ts';
import { PoolService } from './service.ts';

export function poolPlugin(): ToolstackPlugin {
  let pool: PoolService | undefined;
  return {
    name: 'pool',
    async start(host: PluginHost) {
      pool = new PoolService(host.dirs, host.log);
    },
    admit(cfg: DomainConfig, p: Principal) {
      pool?.admit(cfg, p);
    },
    async beforeLaunch(d: Domain) {
      pool?.mayLaunch(d);
      return undefined;
    },
    async afterLaunch(d: Domain) {
      pool?.onLaunched(d);
    },
    async afterReattach(d: Domain) {
      pool?.onLaunched(d);
    },
    async onTeardown(d: Domain) {
      pool?.onGone(d);
    },
    routes(app: FastifyInstance, ctx: ApiContext) {
      if (!pool) return;
      pool.attach(ctx);
      registerPoolRoutes(app, pool);
      registerPoolForwarding(app, pool, ctx);
    },
    async stop() {
      pool?.stop();
    },
  };
}
