// Networks for domains as a toolstack plugin: vifs on Xenode's switch (a
// supervised process of its own) or on Linux bridges, a virtio RNG for every
// domain, NIC hotplug and the sponsor isolation policy.

import type { IoCounterSource, NetAuditLink } from '../../toolstack/lifecycle-hooks.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { NetManager } from './manager.ts';
import { registerNetRoutes } from './routes.ts';

export function netPlugin(net = new NetManager()): ToolstackPlugin & IoCounterSource & NetAuditLink {
  return {
    // The switch's flow records and audit rules, for the audit feature (wired in plugins.ts).
    setAuditSink: (sink) => net.setAuditSink(sink),
    setAuditRules: (rules) => net.setAuditRules(rules),
    // Feeds the web UI's network chart and accounting: per vif and summed, guest's view.
    ioCounters: async (d) => {
      if (d.rec.config.vif.length === 0 || !d.machine?.alive) return undefined;
      const sum = { netRxBytes: 0, netTxBytes: 0, netRxPackets: 0, netTxPackets: 0 };
      const devices: Record<string, typeof sum> = {};
      for (const v of await net.views(d)) {
        if (!v.counters) continue;
        const c = v.counters;
        const one = {
          netRxBytes: c.rx_bytes,
          netTxBytes: c.tx_bytes,
          netRxPackets: c.rx_packets,
          netTxPackets: c.tx_packets,
        };
        // A port's counters outlive a QEMU restart and start again with a new port (they go back then).
        devices[`vif-${v.ifname}`] = one;
        for (const k of Object.keys(sum) as Array<keyof typeof sum>) sum[k] += one[k];
      }
      return { ...sum, devices };
    },
    name: 'net',
    start: (host) => net.start(host),
    beforeLaunch: async (d) => net.beforeLaunch(d),
    afterLaunch: (d) => net.afterLaunch(d),
    afterReattach: (d) => net.afterReattach(d),
    onSponsorLimits: (sponsor, limits) => net.applySponsorLimits(sponsor, limits),
    onTeardown: (d) => net.teardown(d),
    routes: (app, ctx) => registerNetRoutes(app, ctx, net),
    stop: async () => net.stop(),
  };
}
