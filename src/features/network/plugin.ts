// Networks for domains as a toolstack plugin: vifs on Xenode's switch (a
// supervised process of its own) or on Linux bridges, a virtio RNG for every
// domain, NIC hotplug and the sponsor isolation policy.

import type { IoCounterSource } from '../../toolstack/lifecycle-hooks.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { NetManager } from './manager.ts';
import { registerNetRoutes } from './routes.ts';

export function netPlugin(net = new NetManager()): ToolstackPlugin & IoCounterSource {
  return {
    // Feeds the web UI's network chart: the sum over the domain's vifs, guest's view.
    ioCounters: async (d) => {
      if (d.rec.config.vif.length === 0 || !d.machine?.alive) return undefined;
      let rx = 0;
      let tx = 0;
      for (const v of await net.views(d)) {
        rx += v.counters?.rx_bytes ?? 0;
        tx += v.counters?.tx_bytes ?? 0;
      }
      return { netRxBytes: rx, netTxBytes: tx };
    },
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
