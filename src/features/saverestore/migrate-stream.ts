// The state stream of a live migration, authenticated before QEMU sees a byte.
// QEMU's own `tcp:` listener takes whoever connects first, so the target's
// daemon listens instead: it accepts only the address the source's control
// link came from, and only a connection whose first bytes are the
// per-migration key it gave the source over that (token-protected) link. The
// connection that passes is handed to QEMU as it is (getfd + `fd:`), so the
// stream itself flows QEMU to QEMU with nothing copied in between.
//
//   source daemon                              target daemon
//   connect to the gate, send the key  ─────▶   address and key checked; QEMU
//                                               gets the socket; gate closed
//   (waits: nothing more until told)   ◀─────   stream-accepted (control link)
//   its QEMU gets the socket, migrates ─────▶   its QEMU loads the state

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { XenodeError } from '../../errors.ts';

export const STREAM_KEY_BYTES = 32;
/** How long a connection may take to present its key. */
const KEY_TIMEOUT_MS = 10_000;
/** Connections still presenting a key at once; more are dropped (a stranger cannot pile them up). */
const MAX_PENDING = 8;
/** Refusals reported per migration; a flood of strangers must not flood the log too. */
const MAX_REPORTED = 10;

/** An address as Node reports it, with IPv4-mapped IPv6 (`::ffff:1.2.3.4`) unwrapped. */
export function plainAddress(a: string | undefined): string | undefined {
  return a?.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export interface GateOptions {
  /** Local address to listen on (where the source reached the control link). */
  bindHost: string;
  /** The control link's remote address: the only one whose connections are considered. */
  peer?: string;
  /** Refused connections are reported here (the daemon log). */
  onRefused?: (why: string) => void;
}

/** Target side: one listening port that lets through one authenticated connection. */
export class StreamGate {
  readonly key = randomBytes(STREAM_KEY_BYTES);
  /** The authenticated connection, ready to hand to QEMU (the source sends nothing more until stream-accepted). */
  readonly accepted: Promise<Socket>;
  private resolve!: (s: Socket) => void;
  private reject!: (e: Error) => void;
  private pending = new Set<Socket>();
  private done = false;
  private refused = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly o: GateOptions,
  ) {
    this.accepted = new Promise<Socket>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.accepted.catch(() => undefined);
    server.on('connection', (s) => this.screen(s));
  }

  static open(o: GateOptions): Promise<StreamGate> {
    // pauseOnConnect: nothing is read from a connection until it has been screened.
    const server = createServer({ pauseOnConnect: true });
    return new Promise((resolve, reject) => {
      server.once('error', (e) =>
        reject(new XenodeError('engine', `cannot listen for the migration stream on ${o.bindHost}: ${e.message}`)),
      );
      server.listen(0, o.bindHost, () => {
        server.removeAllListeners('error');
        server.on('error', () => undefined);
        resolve(new StreamGate(server, (server.address() as { port: number }).port, o));
      });
    });
  }

  private refuse(s: Socket, why: string): void {
    s.destroy();
    this.pending.delete(s);
    this.refused++;
    if (this.refused <= MAX_REPORTED) this.o.onRefused?.(why);
    if (this.refused === MAX_REPORTED) this.o.onRefused?.('further refused stream connections are not logged');
  }

  private screen(s: Socket): void {
    s.on('error', () => undefined);
    const from = plainAddress(s.remoteAddress) ?? '?';
    if (this.done) {
      s.destroy();
      return;
    }
    if (this.o.peer !== undefined && from !== plainAddress(this.o.peer)) {
      this.refuse(s, `refused a migration stream connection from ${from}: not the source's address`);
      return;
    }
    if (this.pending.size >= MAX_PENDING) {
      this.refuse(s, `refused a migration stream connection from ${from}: too many at once`);
      return;
    }
    this.pending.add(s);
    let got = Buffer.alloc(0);
    const timer = setTimeout(
      () => this.refuse(s, `refused a migration stream connection from ${from}: no key in time`),
      KEY_TIMEOUT_MS,
    );
    s.on('close', () => {
      clearTimeout(timer);
      this.pending.delete(s);
    });
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length < STREAM_KEY_BYTES) return;
      clearTimeout(timer);
      // The source sends nothing after its key until told: more is not our source.
      if (got.length !== STREAM_KEY_BYTES || !timingSafeEqual(got, this.key) || this.done) {
        this.refuse(s, `refused a migration stream connection from ${from}: wrong key`);
        return;
      }
      s.pause();
      s.removeAllListeners('data');
      this.pending.delete(s);
      this.finish();
      this.resolve(s);
    });
    s.resume();
  }

  /** Stop listening; every connection still presenting a key is dropped. */
  private finish(): void {
    this.done = true;
    this.server.close();
    for (const s of this.pending) s.destroy();
    this.pending.clear();
  }

  /** Give up (the migration ended or failed): `accepted` rejects if it has not resolved. */
  close(reason: Error = new XenodeError('engine', 'the migration stream was not needed')): void {
    if (!this.done) this.finish();
    this.reject(reason);
  }
}

/**
 * Source side: connect to the target's gate and present the key. The caller
 * hands the socket to QEMU once the target said it accepted it (before that
 * QEMU must not write: the target reads the key with Node, and any byte more
 * would be lost to it). The target never writes on it; the socket reads only
 * so that a refusal (the target closing it) shows as 'close'.
 */
export function openStream(host: string, port: number, key: Buffer, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, timeout: timeoutMs });
    const fail = (why: string) => {
      s.destroy();
      reject(new XenodeError('engine', `cannot open the migration stream to ${host}:${port}: ${why}`));
    };
    s.once('timeout', () => fail('timed out'));
    s.once('error', (e) => fail(e.message));
    s.once('connect', () => {
      s.setTimeout(0);
      s.write(key, (e) => {
        if (e) {
          fail(e.message);
          return;
        }
        s.removeAllListeners('timeout');
        s.removeAllListeners('error');
        s.on('error', () => undefined);
        s.resume();
        resolve(s);
      });
    });
  });
}
