// Serves one wire session over a byte stream (a Unix socket, a guest channel).
// Memory per connection stays bounded: input is decoded as it arrives and at
// most one message is assembled; while the peer does not read, requests wait
// (reading pauses) and watch events beyond the backlog are dropped, as
// xenstored drops them for a domain over its memory quota.

import type { Duplex } from 'node:stream';
import { FrameDecoder, WireProtocolError } from './codec.ts';
import type { WireServer } from './server.ts';
import type { WireIdentity, WireSession } from './session.ts';

export interface StreamOptions {
  /** Unsent output above which watch events are dropped (default 1 MiB). */
  eventBacklog?: number;
  /** Unsent output above which requests are not read until the peer catches up (default 64 KiB). */
  replyBacklog?: number;
  /** Told why a connection was dropped for breaking the protocol. */
  onProtocolError?: (error: WireProtocolError) => void;
}

export interface WireConnection {
  readonly session: WireSession;
  readonly closed: boolean;
  /** Watch events dropped because the peer was not reading. */
  readonly droppedEvents: number;
  /** Output queued and not yet taken by the peer. */
  readonly pendingBytes: number;
  close(): void;
}

export function serveStream(
  server: WireServer,
  stream: Duplex,
  identity: WireIdentity,
  opts: StreamOptions = {},
): WireConnection {
  const eventBacklog = opts.eventBacklog ?? 1024 * 1024;
  const replyBacklog = opts.replyBacklog ?? 64 * 1024;
  const decoder = new FrameDecoder();
  let closed = false;
  let dropped = 0;
  let waiting = false;

  const finish = (graceful: boolean) => {
    if (closed) return;
    closed = true;
    session.close();
    // After the peer's EOF, let the replies already queued go out; otherwise cut.
    if (graceful) stream.end();
    else stream.destroy();
  };

  const session = server.open(identity, {
    send(frame, kind) {
      if (closed || stream.destroyed) return false;
      if (kind === 'event' && stream.writableLength >= eventBacklog) {
        dropped++;
        return false;
      }
      stream.write(frame);
      return true;
    },
    close: () => finish(false),
  });

  const pump = () => {
    try {
      while (!closed) {
        if (stream.writableLength >= replyBacklog) {
          // The peer is not reading its replies: stop reading its requests until it does.
          waiting = true;
          stream.pause();
          return;
        }
        const msg = decoder.next();
        if (!msg) return;
        session.handle(msg);
      }
    } catch (e) {
      if (e instanceof WireProtocolError) opts.onProtocolError?.(e);
      finish(false);
    }
  };

  stream.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    pump();
  });
  stream.on('drain', () => {
    if (!waiting || closed) return;
    waiting = false;
    pump();
    if (!waiting && !closed) stream.resume();
  });
  stream.on('end', () => finish(true));
  stream.on('close', () => finish(false));
  stream.on('error', () => finish(false));

  return {
    session,
    get closed() {
      return closed;
    },
    get droppedEvents() {
      return dropped;
    },
    get pendingBytes() {
      return stream.writableLength;
    },
    close: () => finish(false),
  };
}
