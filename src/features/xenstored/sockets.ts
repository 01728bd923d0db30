// xenoded's xenstored sockets: the privileged one (dom0's, as a socket
// connection to Xen's xenstored is) and one per introduced domain, whose
// connections act for that domain with its permissions and quotas. All are
// mode 0600 in the daemon's private directory: only its user (root) connects.

import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { XenodeError } from '../../errors.ts';
import { type ControlStore, DOMID_GUEST_MAX, TOOLSTACK } from '../../store/index.ts';
import { serveStream, type WireConnection, WireServer } from '../../store/wire/index.ts';
import type { DaemonLog } from '../../toolstack/log.ts';

/** Connections one socket accepts at a time. */
const MAX_CONNECTIONS = 256;
const MAX_DOMAIN_CONNECTIONS = 16;

export interface XenstoredPaths {
  /** The privileged socket clients find through XENSTORED_PATH. */
  socket: string;
  /** Directory of the per-domain sockets, `<domid>.sock`. */
  domainDir: string;
}

export function xenstoredPaths(base: string, env: NodeJS.ProcessEnv = process.env): XenstoredPaths | undefined {
  const override = env.XENODE_XENSTORED_PATH;
  if (override === 'none') return undefined;
  return { socket: override || join(base, 'xenstored.sock'), domainDir: join(base, 'xenstored.d') };
}

interface Listener {
  server: Server;
  path: string;
  conns: Set<WireConnection>;
}

export class XenstoredSockets {
  private readonly wire: WireServer;
  private main: Listener | undefined;
  private readonly domains = new Map<number, Listener>();
  private readonly token = `xenstored-sockets/${process.pid}`;
  private reconciling: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly store: ControlStore,
    private readonly paths: XenstoredPaths,
    private readonly log: DaemonLog,
  ) {
    this.wire = new WireServer(store, { log: (m) => log.warn(m) });
  }

  /** The protocol's shared state, which the guests' channels serve too. */
  get wireServer(): WireServer {
    return this.wire;
  }

  async start(): Promise<void> {
    // Sockets left by a daemon that died are stale: start from an empty directory.
    rmSync(this.paths.domainDir, { recursive: true, force: true });
    mkdirSync(this.paths.domainDir, { recursive: true, mode: 0o700 });
    // XENODE_XENSTORED_PATH may name Xen's own /var/run/xenstored/socket: never take a live daemon's socket.
    if (await answers(this.paths.socket)) {
      throw new XenodeError('conflict', `${this.paths.socket} is in use by another xenstored`, {
        hint: 'stop it, or point XENODE_XENSTORED_PATH elsewhere',
      });
    }
    mkdirSync(dirname(this.paths.socket), { recursive: true, mode: 0o755 });
    this.main = await this.listen(this.paths.socket, { domid: 0, privileged: true }, MAX_CONNECTIONS);
    const sync = () => this.schedule();
    this.store.watch(TOOLSTACK, '@introduceDomain', this.token, sync);
    this.store.watch(TOOLSTACK, '@releaseDomain', this.token, sync);
    await this.schedule();
    this.log.info(`xenstored protocol on ${this.paths.socket} (dom0), domains' sockets in ${this.paths.domainDir}`);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const name of ['@introduceDomain', '@releaseDomain']) {
      try {
        this.store.unwatch(TOOLSTACK, name, this.token);
      } catch {
        /* store already closed */
      }
    }
    await this.reconciling;
    const all = [...this.domains.values()];
    if (this.main) all.push(this.main);
    this.domains.clear();
    this.main = undefined;
    await Promise.all(all.map((l) => this.unlisten(l)));
    this.wire.close();
    rmSync(this.paths.domainDir, { recursive: true, force: true });
  }

  /** Reconciles the per-domain sockets with the introduced domains, one pass at a time. */
  private schedule(): Promise<void> {
    this.reconciling = this.reconciling
      .then(() => this.reconcile())
      .catch((e: unknown) => {
        this.log.warn(`xenstored: domain sockets: ${e instanceof Error ? e.message : String(e)}`);
      });
    return this.reconciling;
  }

  private introduced(): Set<number> {
    const out = new Set<number>();
    let names: string[] = [];
    try {
      names = this.store.directory(TOOLSTACK, '/local/domain');
    } catch {
      return out; // no domain yet
    }
    for (const n of names) {
      const d = Number(n);
      if (/^\d+$/.test(n) && d >= 1 && d <= DOMID_GUEST_MAX) out.add(d);
    }
    return out;
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const want = this.introduced();
    for (const [domid, l] of [...this.domains]) {
      if (want.has(domid)) continue;
      this.domains.delete(domid);
      await this.unlisten(l);
    }
    for (const domid of want) {
      if (this.domains.has(domid) || this.stopped) continue;
      const path = join(this.paths.domainDir, `${domid}.sock`);
      this.domains.set(domid, await this.listen(path, { domid, privileged: false }, MAX_DOMAIN_CONNECTIONS));
    }
  }

  private async listen(path: string, identity: { domid: number; privileged: boolean }, max: number): Promise<Listener> {
    rmSync(path, { force: true });
    const conns = new Set<WireConnection>();
    const server = createServer((sock: Socket) => {
      const conn = serveStream(this.wire, sock, identity, {
        onProtocolError: (e) =>
          this.log.warn(`xenstored: dropped a connection (domain ${identity.domid}): ${e.message}`),
      });
      conns.add(conn);
      sock.once('close', () => conns.delete(conn));
    });
    server.maxConnections = max;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // The directory is the daemon's own (0700); the mode keeps the socket itself private too.
    chmodSync(path, 0o600);
    return { server, path, conns };
  }

  private async unlisten(l: Listener): Promise<void> {
    for (const c of l.conns) c.close();
    await new Promise<void>((resolve) => l.server.close(() => resolve()));
    rmSync(l.path, { force: true });
  }
}

/** True when something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
