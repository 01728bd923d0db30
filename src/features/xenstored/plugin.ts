// Xen's xenstored wire protocol, served by xenoded over its control store, so
// Xen's own tools (xenstore-read, -write, -watch, test-xenstore, libxenstore)
// work against Xenode. See docs/xenstored.md.

import type { ToolstackPlugin } from '../../toolstack/plugin.ts';
import { ControlStoreSink } from '../../toolstack/store-factory.ts';
import { XenstoredSockets, xenstoredPaths } from './sockets.ts';

export function xenstoredPlugin(): ToolstackPlugin {
  let sockets: XenstoredSockets | undefined;
  return {
    name: 'xenstored',
    async start(host) {
      const paths = xenstoredPaths(host.dirs.base);
      if (!paths) return;
      // The protocol needs the store itself, not only the lifecycle's narrow sink.
      if (!(host.store instanceof ControlStoreSink)) {
        host.log.info('xenstored: no control store in this daemon; the wire protocol is off');
        return;
      }
      const started = new XenstoredSockets(host.store.store, paths, host.log);
      try {
        await started.start();
        sockets = started;
      } catch (e) {
        // The daemon still runs its domains; the log says why Xen's tools cannot reach it.
        host.log.error(`xenstored: not serving the wire protocol: ${e instanceof Error ? e.message : String(e)}`);
        await started.stop();
      }
    },
    async stop() {
      await sockets?.stop();
    },
  };
}
