// Entry point of the switch process (bundled to dist/xenode-switch.mjs).
// xenoded starts it with the control socket path; it outlives a daemon restart
// so domains keep their links, and exits once neither a daemon nor a domain
// has needed it for a while.

import { setPriority } from 'node:os';
import { SwitchServer } from './switch-server.ts';

const SWITCH_NICE = -10;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} xenode-switch[${process.pid}]: ${msg}\n`);
}

async function main(): Promise<void> {
  const controlPath = arg('--control');
  if (!controlPath) {
    process.stderr.write('usage: xenode-switch --control SOCKET [--idle-exit SECONDS]\n');
    process.exit(2);
  }
  process.title = 'xenode-switch';
  // Every frame between two domains waits for this process to run, as it would for a kernel
  // bridge's softirq: ahead of the guests' vCPU threads, or a busy host stalls every flow.
  try {
    setPriority(SWITCH_NICE);
  } catch {
    /* not root: keep the default priority */
  }
  const idle = Number(arg('--idle-exit') ?? 10);
  const server = new SwitchServer({ controlPath, idleExitMs: idle * 1000, log });
  await server.listen();
  // The daemon and its terminal may go away; the switch stays for the domains.
  process.on('SIGHUP', () => {});
  process.on('SIGPIPE', () => {});
  process.on('SIGTERM', () => process.exit(0));
  log(`listening on ${controlPath}`);
}

main().catch((e: unknown) => {
  log(`fatal: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
