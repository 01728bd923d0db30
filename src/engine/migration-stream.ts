// Carrying a QEMU migration stream through Unix sockets in the run directory:
// QEMU's outgoing stream is handed to the toolstack chunk by chunk (so it can
// checksum and append it to a save file without holding it in memory), and a
// byte range of a file is fed into a QEMU waiting on `migrate-incoming unix:`.

import { createReadStream, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { unixUri } from './migration.ts';

/** One-shot server for QEMU's outgoing stream (`migrate uri=unix:PATH`), piped into `sink`. */
export class StreamReceiver {
  private server: Server;
  private conn?: Socket;
  /** Resolves with the byte count once QEMU closed the stream and `sink` has taken all of it. */
  readonly done: Promise<number>;
  bytes = 0;

  private constructor(
    readonly path: string,
    sink: Writable,
  ) {
    let settle: { resolve: (n: number) => void; reject: (e: Error) => void } | undefined;
    this.done = new Promise<number>((resolve, reject) => {
      settle = { resolve, reject };
    });
    this.done.catch(() => undefined);
    this.server = createServer((c) => {
      // Exactly one stream: later connections are not QEMU's.
      if (this.conn) {
        c.destroy();
        return;
      }
      this.conn = c;
      this.server.close();
      c.on('data', (d: Buffer) => {
        this.bytes += d.length;
      });
      pipeline(c, sink).then(
        () => settle?.resolve(this.bytes),
        (e: unknown) => settle?.reject(e instanceof Error ? e : new Error(String(e))),
      );
    });
  }

  static async listen(path: string, sink: Writable): Promise<StreamReceiver> {
    rmSync(path, { force: true });
    const r = new StreamReceiver(path, sink);
    await new Promise<void>((resolve, reject) => {
      r.server.once('error', reject);
      r.server.listen(path, () => resolve());
    });
    return r;
  }

  get uri(): string {
    return unixUri(this.path);
  }

  close(): void {
    this.conn?.destroy();
    this.server.close();
    rmSync(this.path, { force: true });
  }
}

/**
 * Feed `length` bytes of `file` from `offset` into the Unix socket a QEMU
 * listens on after `migrate-incoming unix:PATH`.
 */
export async function feedStream(
  sockPath: string,
  file: string,
  offset: number,
  length: number,
  onBytes?: (total: number) => void,
): Promise<void> {
  const sock = await new Promise<Socket>((resolve, reject) => {
    const s = createConnection({ path: sockPath });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  let total = 0;
  const src = createReadStream(file, {
    start: offset,
    end: offset + length - 1,
    highWaterMark: 1 << 20,
  });
  if (onBytes) {
    src.on('data', (d) => {
      total += d.length;
      onBytes(total);
    });
  }
  try {
    await pipeline(src, sock);
  } finally {
    sock.destroy();
  }
}
