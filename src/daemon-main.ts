// Entry point of xenoded (bundled to dist/xenoded.mjs).

import { errorMessage } from './errors.ts';
import { startDaemon } from './toolstack/daemon.ts';
import { controlStoreFactory } from './toolstack/store-factory.ts';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const foreground = args.includes('--foreground') || args.includes('-F');
  const li = args.indexOf('--listen');
  const listen = li >= 0 ? args[li + 1] : undefined;
  const d = await startDaemon({ foreground, listen }, controlStoreFactory);
  const shutdown = () => {
    void d.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // QEMU runs in its own session; a dying daemon must not take it along.
  process.on('SIGHUP', () => {});
}

main().catch((e: unknown) => {
  process.stderr.write(`xenoded: ${errorMessage(e)}\n`);
  process.exit(1);
});
