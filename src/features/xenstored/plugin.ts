// Xen's xenstored wire protocol, served by xenoded over its control store, so
// Xen's own tools (xenstore-read, -write, -watch, test-xenstore, libxenstore)
// work against Xenode, and each guest reaches its own part of the store over a
// virtio-serial channel (guest-channel.ts). See docs/xenstored.md and
// docs/guest-channel.md.

import { WireServer } from '../../store/wire/index.ts';
import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { ControlStoreSink } from '../../toolstack/store-factory.ts';
import { GuestChannels, guestChannelArgs } from './guest-channel.ts';
import { XenstoredSockets, xenstoredPaths } from './sockets.ts';

export function xenstoredPlugin(): ToolstackPlugin {
  let sockets: XenstoredSockets | undefined;
  let channels: GuestChannels | undefined;
  let ownWire: WireServer | undefined;
  return {
    name: 'xenstored',
    async start(host) {
      // The protocol needs the store itself, not only the lifecycle's narrow sink.
      if (!(host.store instanceof ControlStoreSink)) {
        host.log.info('xenstored: no control store in this daemon; the wire protocol is off');
        return;
      }
      const paths = xenstoredPaths(host.dirs.base);
      if (paths) {
        const started = new XenstoredSockets(host.store.store, paths, host.log);
        try {
          await started.start();
          sockets = started;
        } catch (e) {
          // The daemon still runs its domains; the log says why Xen's tools cannot reach it.
          host.log.error(`xenstored: not serving the wire protocol: ${e instanceof Error ? e.message : String(e)}`);
          await started.stop();
        }
      }
      // Guests get their channel whether or not the host's sockets are served, so
      // that every domain has the same devices (save files, migration).
      const wire = sockets?.wireServer ?? new WireServer(host.store.store, { log: (m) => host.log.warn(m) });
      if (!sockets) ownWire = wire;
      channels = new GuestChannels(wire, host.log);
    },
    async beforeLaunch(d) {
      return channels ? { qemuArgs: guestChannelArgs(d) } : undefined;
    },
    async afterLaunch(d) {
      channels?.attach(d);
    },
    async afterReattach(d) {
      channels?.attach(d, true);
    },
    async onTeardown(d) {
      channels?.detach(d.domid);
    },
    async stop() {
      channels?.stop();
      ownWire?.close();
      await sockets?.stop();
    },
  };
}
