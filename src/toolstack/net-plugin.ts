// Networks for domains as a toolstack plugin: vifs on Xenode's switch (a
// supervised process of its own) or on Linux bridges, a virtio RNG for every
// domain, NIC hotplug and the sponsor isolation policy.

import { registerNetRoutes } from '../api/routes-net.ts';
import { NetManager } from './net-manager.ts';
import type { ToolstackPlugin } from './plugin.ts';

export function netPlugin(net = new NetManager()): ToolstackPlugin {
  return {
    name: 'net',
    start: (host) => net.start(host),
    beforeLaunch: async (d) => net.beforeLaunch(d),
    afterLaunch: (d) => net.afterLaunch(d),
    afterReattach: (d) => net.afterReattach(d),
    onTeardown: (d) => net.teardown(d),
    routes: (app, ctx) => registerNetRoutes(app, ctx, net),
    stop: async () => net.stop(),
  };
}
