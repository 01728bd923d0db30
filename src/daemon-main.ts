// Entry point of xenoded (bundled to dist/xenoded.mjs).

import { errorMessage } from './errors.ts';
import { startDaemon } from './toolstack/daemon.ts';
import { xenodeDirs } from './toolstack/dirs.ts';
import { recoverState } from './toolstack/recover.ts';
import { controlStoreFactory } from './toolstack/store-factory.ts';

/** `xenoded --recover`: rebuild the domain table of a stopped daemon, report, exit. */
async function recover(): Promise<void> {
  const dirs = xenodeDirs();
  const r = await recoverState(dirs);
  for (const line of r.lines) process.stdout.write(`${line}\n`);
  process.stdout.write(
    `domain table ${dirs.stateDb}: ${r.recovered} ${r.recovered === 1 ? 'domain' : 'domains'} put back; start xenoded (any xenode command does) to reattach them\n`,
  );
  // Probing a QEMU leaves a short exit watch behind; nothing else is pending.
  process.exit(0);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--recover')) return recover();
  const foreground = args.includes('--foreground') || args.includes('-F');
  const li = args.indexOf('--listen');
  const listen = li >= 0 ? args[li + 1] : undefined;
  // Handlers before start-up: a stop asked for while starting (systemctl stop right after start)
  // is a clean stop once started, never the default action killing a half-started daemon.
  let d: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let stopAsked = false;
  const shutdown = () => {
    // A second signal while still starting: stop now (a start-up that hangs can still be stopped).
    if (stopAsked && !d) process.exit(1);
    stopAsked = true;
    if (d) void d.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // QEMU runs in its own session; a dying daemon must not take it along.
  process.on('SIGHUP', () => {});
  d = await startDaemon({ foreground, listen }, controlStoreFactory);
  if (stopAsked) shutdown();
}

main().catch((e: unknown) => {
  process.stderr.write(`xenoded: ${errorMessage(e)}\n`);
  process.exit(1);
});
