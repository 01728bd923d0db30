// The QEMU guest agent as a toolstack plugin: every type="hvm" domain (a user's
// own guest, booting its own disk) gets the agent's virtio-serial port; when the
// guest runs qemu-guest-agent, xenoded uses it for graceful shutdown and reboot,
// the guest's addresses (store: qga/addresses; `list -l`) and freezing the file
// systems around save and migration (docs/guests.md).

import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../api/context.ts';
import { chooseMachine } from '../../engine/machine.ts';
import { qgaPortArgs } from '../../engine/qga-args.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { LaunchContribution, PluginHost, ToolstackPlugin } from '../../toolstack/plugin.ts';
import { GuestAgents } from './agents.ts';
import { registerQgaRoutes } from './routes.ts';

/** Whether a domain gets the agent's port: users' own guests (hvm); the default guest has no agent. */
export function wantsAgent(d: Domain): boolean {
  return d.rec.config.type === 'hvm';
}

export function qgaPlugin(): ToolstackPlugin {
  const agents = new GuestAgents();
  return {
    name: 'qemu-guest-agent',
    async start(host: PluginHost) {
      agents.start(host.log, host.store);
    },
    async beforeLaunch(d: Domain): Promise<LaunchContribution | undefined> {
      if (!wantsAgent(d)) return undefined;
      return { qemuArgs: qgaPortArgs(chooseMachine(d.rec.config), d.rec.runDir) };
    },
    async afterLaunch(d: Domain) {
      if (!wantsAgent(d)) return;
      agents.attach(d);
      // A restored or migrated guest was saved with its file systems frozen.
      void agents.thawIfFrozen(d.domid);
    },
    async afterReattach(d: Domain) {
      if (wantsAgent(d)) agents.attach(d);
    },
    async onTeardown(d: Domain) {
      agents.detach(d.domid);
    },
    async stop() {
      agents.stopAll();
    },
    async requestGuestPower(d: Domain, kind: 'poweroff' | 'reboot') {
      return wantsAgent(d) ? agents.power(d.domid, kind) : false;
    },
    async quiesceGuest(d: Domain) {
      return wantsAgent(d) ? agents.freeze(d.domid) : undefined;
    },
    routes(app: FastifyInstance, ctx: ApiContext) {
      registerQgaRoutes(app, ctx, agents);
    },
  };
}
