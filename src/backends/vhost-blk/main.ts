// Entry point of a disk backend process (bundled to dist/xenode-blk.mjs): one
// process serves one disk image to one domain's QEMU over vhost-user. xenoded
// starts it before QEMU and restarts it if it dies; QEMU reconnects
// (reconnect=1) and the inflight region tells the new process what the old one
// left unfinished. A control socket beside the vhost-user socket tells the
// daemon it is alive (its closing is the daemon's news of a death) and
// answers with counters.

import { existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { VhostBlkDevice } from './device.ts';
import { type DirectMode, RawImage } from './raw-image.ts';
import { BlkServer } from './server.ts';
import { StatsFile } from './stats-file.ts';

export const BLK_CONTROL_VERSION = 1;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function log(msg: string): void {
  process.stderr.write(`${new Date().toISOString()} xenode-blk[${process.pid}]: ${msg}\n`);
}

const USAGE =
  'usage: xenode-blk --socket PATH --image FILE [--read-only] [--serial ID] [--control PATH] [--stats PATH] [--direct auto|on|off] [--idle-exit SECONDS]\n';

/** Is a backend already answering on this control socket? */
function alive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve(false);
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  const socketPath = arg('--socket');
  const imagePath = arg('--image');
  if (!socketPath || !imagePath) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const controlPath = arg('--control');
  const direct = (arg('--direct') ?? 'auto') as DirectMode;
  if (!['auto', 'on', 'off'].includes(direct)) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  process.title = 'xenode-blk';
  if (controlPath && (await alive(controlPath))) {
    log(`a backend already serves ${socketPath}; exiting`);
    process.exit(3);
  }
  const startedAt = Date.now();
  const image = new RawImage(imagePath, process.argv.includes('--read-only'), direct);
  const statsPath = arg('--stats');
  const counters = statsPath ? new StatsFile(statsPath) : undefined;
  const device = new VhostBlkDevice(image, { serial: arg('--serial') ?? '', log, ...(counters ? { counters } : {}) });
  let firstCompletionAt: number | undefined;
  const clients = new Set<Socket>();
  device.onComplete = () => {
    if (firstCompletionAt !== undefined) return;
    firstCompletionAt = Date.now();
    log(`first request completed at ${firstCompletionAt} (${firstCompletionAt - startedAt} ms after start)`);
    // The supervisor counts a backend that served a request as healthy.
    for (const c of clients) c.write(`${JSON.stringify(status())}\n`);
  };
  const server = new BlkServer({
    socketPath,
    device,
    log,
    idleExitMs: Number(arg('--idle-exit') ?? 0) * 1000,
    trace: process.env.XENODE_BLK_TRACE === '1',
  });
  server.listen();
  const status = () => ({
    version: BLK_CONTROL_VERSION,
    pid: process.pid,
    image: imagePath,
    direct: image.direct,
    startedAt,
    firstCompletionAt: firstCompletionAt ?? null,
    inFlight: device.inFlight,
    ...device.stats,
  });
  if (controlPath) {
    if (existsSync(controlPath)) unlinkSync(controlPath);
    const ctl = createServer((s) => {
      clients.add(s);
      s.on('close', () => clients.delete(s));
      s.on('error', () => {});
      s.write(`${JSON.stringify(status())}\n`);
      // Any line asks for the counters again; nothing a client sends changes the disk.
      s.on('data', (d) => {
        for (let i = 0; i < d.toString().split('\n').length - 1; i++) s.write(`${JSON.stringify(status())}\n`);
      });
    });
    await new Promise<void>((resolve) => ctl.listen(controlPath, resolve));
  }
  process.on('SIGHUP', () => {});
  process.on('SIGPIPE', () => {});
  // Wake the poll so the loop ends at once; exit() waits for the worker thread it runs on.
  process.on('SIGTERM', () => server.stop());
  log(
    `serving ${imagePath} (${image.size} bytes, ${image.readOnly ? 'ro' : 'rw'}, ${image.direct ? 'O_DIRECT' : 'buffered'}) on ${socketPath}`,
  );
  await server.run();
  process.exit(0);
}

main().catch((e: unknown) => {
  log(`fatal: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
