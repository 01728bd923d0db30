// The wire protocol's shared state: the live sessions, SET_TARGET relations,
// and the end of a released domain's connections. One WireServer serves every
// transport (the daemon's sockets, a guest's channel) over one ControlStore.

import type { ControlStore } from '../store.ts';
import { TOOLSTACK } from '../types.ts';
import { type SessionHost, type WireIdentity, WireSession, type WireSink } from './session.ts';

export interface WireServerOptions {
  /** Where CONTROL `print` and unexpected failures go. */
  log?: (message: string) => void;
}

let nextServer = 1;

export class WireServer {
  private readonly sessions = new Map<WireSession, WireSink>();
  private readonly targets = new Map<number, number>();
  private readonly host: SessionHost;
  private readonly releaseToken = `wire-server/${nextServer++}`;
  private readonly log: (message: string) => void;
  private closed = false;

  constructor(
    readonly store: ControlStore,
    opts: WireServerOptions = {},
  ) {
    this.log = opts.log ?? ((m) => console.error(m));
    this.host = {
      store,
      targetOf: (domid) => this.targets.get(domid),
      setTarget: (domid, target) => this.targets.set(domid, target),
      log: (m) => this.log(m),
      forget: (s) => this.sessions.delete(s),
    };
    // A released domain's connections end, as its ring does under xenstored.
    store.watch(TOOLSTACK, '@releaseDomain', this.releaseToken, () => this.dropReleased());
  }

  /** Opens a session for a new connection. */
  open(identity: WireIdentity, sink: WireSink): WireSession {
    if (this.closed) throw new Error('the wire server is closed');
    const session = new WireSession(this.host, Object.freeze({ ...identity }), sink);
    this.sessions.set(session, sink);
    return session;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Ends every connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.store.unwatch(TOOLSTACK, '@releaseDomain', this.releaseToken);
    } catch {
      // The store was closed first.
    }
    for (const [s, sink] of [...this.sessions]) {
      s.close();
      sink.close();
    }
  }

  private dropReleased(): void {
    const gone = (d: number) => d !== 0 && !this.store.isDomainIntroduced(d);
    for (const [d, t] of [...this.targets]) if (gone(d) || gone(t)) this.targets.delete(d);
    for (const [s, sink] of [...this.sessions]) {
      if (s.identity.privileged || !gone(s.identity.domid)) continue;
      s.close();
      sink.close();
    }
  }
}
