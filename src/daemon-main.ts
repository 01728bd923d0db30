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
