// Failed token checks on the TCP listener, counted per remote address. Past the
// limit an address gets 429 with Retry-After for every further bad token, and
// is logged once rather than per attempt, so a guesser can neither flood the
// log nor hide in it. A valid token is never refused: tokens are 192 random
// bits, so the limit guards the log and the daemon's time, not the secret, and
// one noisy client behind a shared proxy cannot lock the others out.

import type { FastifyReply } from 'fastify';
import type { DaemonLog } from '../toolstack/log.ts';

export const AUTH_FAILURES_PER_WINDOW = 10;
export const AUTH_WINDOW_MS = 60_000;
/** Addresses remembered at most; the oldest are forgotten first. */
const MAX_ADDRESSES = 10_000;

interface Window {
  start: number;
  failures: number;
  /** Failures refused with 429 in this window (logged once, when the window ends). */
  refused: number;
}

export class AuthLimiter {
  private byAddress = new Map<string, Window>();

  constructor(
    private readonly log: DaemonLog,
    private readonly now: () => number = Date.now,
  ) {}

  private window(address: string): Window {
    const t = this.now();
    let w = this.byAddress.get(address);
    if (w && t - w.start >= AUTH_WINDOW_MS) {
      if (w.refused > 0) this.log.warn(`auth: ${w.refused} more bad tokens from ${address} were refused (429)`);
      this.byAddress.delete(address);
      w = undefined;
    }
    if (!w) {
      w = { start: t, failures: 0, refused: 0 };
      if (this.byAddress.size >= MAX_ADDRESSES) {
        const oldest = this.byAddress.keys().next().value;
        if (oldest !== undefined) this.byAddress.delete(oldest);
      }
      this.byAddress.set(address, w);
    }
    return w;
  }

  /**
   * Record a failed check (`what`: the route, never the token). Returns the
   * seconds the caller should wait when the address is over its limit.
   */
  fail(address: string, what: string): number | undefined {
    const w = this.window(address);
    w.failures++;
    const retryAfter = Math.max(1, Math.ceil((w.start + AUTH_WINDOW_MS - this.now()) / 1000));
    if (w.failures <= AUTH_FAILURES_PER_WINDOW) {
      this.log.warn(`auth failed from ${address}: ${what}`);
      return undefined;
    }
    if (w.failures === AUTH_FAILURES_PER_WINDOW + 1) {
      this.log.warn(
        `auth: ${address} rate-limited for ${retryAfter} s after ${AUTH_FAILURES_PER_WINDOW} failures (429 until then)`,
      );
    } else w.refused++;
    return retryAfter;
  }
}

/** The answer to a bad token from an address over its limit. */
export function tooManyFailures(reply: FastifyReply, address: string, retryAfter: number): FastifyReply {
  return reply
    .code(429)
    .header('retry-after', String(retryAfter))
    .send({
      error: {
        kind: 'unauthorized',
        message: `too many failed logins from ${address}`,
        hint: `wait ${retryAfter} s, then check the token`,
      },
    });
}
