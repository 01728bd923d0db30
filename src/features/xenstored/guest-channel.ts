// The store channel into a guest: xenoded connects to the Unix sockets QEMU
// listens on for the domain's virtio-serial ports and serves the xenstored wire
// protocol over each, as a GUEST connection of that domain (its permissions,
// its quotas, relative paths under its home). A dropped connection (a guest
// that sent garbage, QEMU restarted, the daemon restarted) is reconnected with
// a fresh session while the domain lives; the guest sees the port close and
// open again, which tells its agent to register its watches anew.

import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { type ChannelPort, channelArgs } from '../../engine/channel-args.ts';
import { chooseMachine } from '../../engine/machine.ts';
import { serveStream, type WireConnection, type WireServer } from '../../store/wire/index.ts';
import type { Domain } from '../../toolstack/domain.ts';
import type { DaemonLog } from '../../toolstack/log.ts';

/** The guest's ports: one for its agent (held open for good), one for anyone else in the guest. */
export const AGENT_PORT = 'org.xenode.agent';
export const STORE_PORT = 'org.xenode.store';

export function channelPorts(runDir: string): ChannelPort[] {
  return [
    { name: STORE_PORT, id: 'xs-store', socket: join(runDir, 'xs-store.sock') },
    { name: AGENT_PORT, id: 'xs-agent', socket: join(runDir, 'xs-agent.sock') },
  ];
}

export function guestChannelArgs(d: Domain): string[] {
  return channelArgs(chooseMachine(d.rec.config), channelPorts(d.rec.runDir));
}

/** Reconnect delays: the first retry is quick (a protocol error), later ones back off. */
const RETRY_MS = [20, 50, 100, 250, 500, 1000];
const LOG_EVERY_MS = 60_000;
/** Replies a guest may leave unread (its port buffer is small; it reads as it goes). */
const REPLY_BACKLOG = 64 * 1024;
/** Watch events queued for a guest not reading before they are dropped. */
const EVENT_BACKLOG = 256 * 1024;

class PortLink {
  private sock: Socket | undefined;
  private conn: WireConnection | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private cycleFirst = false;
  private dropped = 0;
  private loggedAt = 0;
  /** Sessions opened so far (1 = never reconnected). */
  sessions = 0;

  constructor(
    private readonly wire: WireServer,
    private readonly domid: number,
    private readonly port: ChannelPort,
    private readonly log: DaemonLog,
  ) {}

  /**
   * `cycle`: drop the first connection at once and connect again. QEMU forgets a
   * port's stalled output only when its socket closes (virtio_serial_close), so
   * a daemon that died while the guest was writing leaves the port throttled;
   * one close after reattaching clears that, and tells the guest to start over.
   */
  start(cycle = false): void {
    this.cycleFirst = cycle;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.conn?.close();
    this.sock?.destroy();
  }

  /** A guest sending garbage in a loop must not fill the daemon's log: one line per LOG_EVERY_MS. */
  private protocolError(message: string): void {
    this.dropped++;
    const now = Date.now();
    if (now - this.loggedAt < LOG_EVERY_MS) return;
    this.loggedAt = now;
    const more = this.dropped > 1 ? ` (${this.dropped - 1} more since the last report)` : '';
    this.dropped = 0;
    this.log.warn(`store channel ${this.port.name}: dropped the guest's session: ${message}${more}`, this.domid);
  }

  private open(): void {
    if (this.stopped) return;
    const sock = connect(this.port.socket);
    this.sock = sock;
    sock.once('connect', () => {
      if (this.stopped) return sock.destroy();
      if (this.cycleFirst) {
        this.cycleFirst = false;
        sock.destroy();
        return;
      }
      this.failures = 0;
      this.sessions++;
      this.conn = serveStream(
        this.wire,
        sock,
        { domid: this.domid, privileged: false },
        {
          replyBacklog: REPLY_BACKLOG,
          eventBacklog: EVENT_BACKLOG,
          onProtocolError: (e) => this.protocolError(e.message),
        },
      );
    });
    sock.once('error', () => {
      /* 'close' follows and retries */
    });
    sock.once('close', () => {
      this.conn = undefined;
      if (this.stopped || this.sock !== sock) return;
      const delay = RETRY_MS[Math.min(this.failures++, RETRY_MS.length - 1)] as number;
      this.timer = setTimeout(() => this.open(), delay);
    });
  }
}

/** Every live domain's channel links. */
export class GuestChannels {
  private readonly links = new Map<number, PortLink[]>();

  constructor(
    private readonly wire: WireServer,
    private readonly log: DaemonLog,
  ) {}

  /** `reattached`: a QEMU the last daemon left running (see PortLink.start). */
  attach(d: Domain, reattached = false): void {
    this.detach(d.domid);
    const links = channelPorts(d.rec.runDir).map((p) => new PortLink(this.wire, d.domid, p, this.log));
    this.links.set(d.domid, links);
    for (const l of links) l.start(reattached);
  }

  detach(domid: number): void {
    for (const l of this.links.get(domid) ?? []) l.stop();
    this.links.delete(domid);
  }

  stop(): void {
    for (const domid of [...this.links.keys()]) this.detach(domid);
  }
}
