// The CLI's connection to xenoded: HTTP over the local Unix socket (as admin),
// or over TCP with a token when XENODE_URL is set. Starts the daemon on first use.

import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeSync,
} from 'node:fs';
import { type RequestOptions, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type WebSocket from 'ws';
import { type WireError, XenodeError } from '../errors.ts';
import { DAEMON_NODE_FLAGS } from '../toolstack/daemon-node-flags.ts';
import { type XenodeDirs, xenodeDirs } from '../toolstack/dirs.ts';
import { SERVICE_UNIT, serviceManages } from './service.ts';
import { type StartLock, tryStartLock } from './start-lock.ts';

/** The error line a xenoded that exited at start-up left last in its output file. */
function lastDaemonError(out: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(out, 'r');
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, 4096));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    const last = buf.toString('utf8').trimEnd().split('\n').at(-1) ?? '';
    return last.startsWith('xenoded: ') ? last.slice('xenoded: '.length) : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export interface ClientOptions {
  dirs?: XenodeDirs;
  url?: string;
  token?: string;
  /** Start xenoded if it is not running (local socket only). */
  autostart?: boolean;
  quiet?: boolean;
}

// The daemon's V8 flags, shared with the packaged launcher (packaging/build-deb.ts).
export { DAEMON_NODE_FLAGS };

export class ApiClient {
  readonly dirs: XenodeDirs;
  private readonly url?: URL;
  private readonly token?: string;
  private started = false;

  constructor(private readonly o: ClientOptions = {}) {
    this.dirs = o.dirs ?? xenodeDirs();
    const url = o.url ?? process.env.XENODE_URL;
    this.url = url ? new URL(url) : undefined;
    this.token = o.token ?? process.env.XENODE_TOKEN;
  }

  private raw(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    // servername is TLS's; left unset, Node's agent derives it from the host by its
    // IPv6 regex, whose first use cost 7 ms of every command here.
    const noTls: RequestOptions = { servername: '' } as RequestOptions;
    const target: RequestOptions = this.url
      ? { ...noTls, host: this.url.hostname, port: Number(this.url.port || 80), path, method, headers }
      : { ...noTls, socketPath: this.dirs.socket, path, method, headers };
    return new Promise((resolve, reject) => {
      const req = request(target, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown = text;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            /* plain text */
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      });
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let r: { status: number; json: unknown };
    try {
      r = await this.raw(method, path, body);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // XENODE_NO_AUTOSTART=1: ask a running daemon only (shell completion does).
      const autostart = this.o.autostart ?? process.env.XENODE_NO_AUTOSTART !== '1';
      if (!this.url && (code === 'ENOENT' || code === 'ECONNREFUSED') && autostart && !this.started) {
        await this.startDaemon();
        r = await this.raw(method, path, body);
      } else if (this.url) {
        throw new XenodeError('engine', `cannot reach xenoded at ${this.url.origin}: ${(e as Error).message}`);
      } else {
        throw new XenodeError('engine', `cannot reach xenoded at ${this.dirs.socket}: ${(e as Error).message}`, {
          hint: 'start it with `xenoded` or run any xenode command',
        });
      }
    }
    if (r.status >= 400) {
      const err = (r.json as { error?: WireError } | undefined)?.error;
      if (err) throw XenodeError.fromWire(err);
      throw new XenodeError('internal', `xenoded answered HTTP ${r.status}`);
    }
    return r.json as T;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }
  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, body);
  }
  put<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('PUT', path, body);
  }
  del<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  /**
   * GET a stream (e.g. a pcap) into `file` as it arrives: each chunk is written
   * at once, so what an interrupt leaves behind is what had arrived. Bytes written.
   */
  async download(path: string, file: string): Promise<number> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const noTls: RequestOptions = { servername: '' } as RequestOptions;
    const target: RequestOptions = this.url
      ? { ...noTls, host: this.url.hostname, port: Number(this.url.port || 80), path, method: 'GET', headers }
      : { ...noTls, socketPath: this.dirs.socket, path, method: 'GET', headers };
    // Starts the daemon if need be, and fails as every command does when it cannot.
    await this.get('/v1/whoami');
    return new Promise((resolve, reject) => {
      const req = request(target, (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let err: WireError | undefined;
            try {
              err = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: WireError }).error;
            } catch {
              /* not JSON */
            }
            reject(
              err ? XenodeError.fromWire(err) : new XenodeError('internal', `xenoded answered HTTP ${res.statusCode}`),
            );
          });
          return;
        }
        let fd: number;
        try {
          fd = openSync(file, 'w', 0o600);
        } catch (e) {
          res.destroy();
          reject(new XenodeError('not-found', `cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`));
          return;
        }
        let n = 0;
        res.on('data', (c: Buffer) => {
          writeSync(fd, c);
          n += c.length;
        });
        res.on('end', () => {
          closeSync(fd);
          resolve(n);
        });
        res.on('error', (e) => {
          closeSync(fd);
          reject(e);
        });
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** POST a file as the raw request body (application/octet-stream), reporting bytes sent. */
  upload<T>(path: string, file: string, onProgress?: (sent: number, total: number) => void): Promise<T> {
    const total = statSync(file).size;
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'content-length': String(total),
    };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const noTls: RequestOptions = { servername: '' } as RequestOptions;
    const target: RequestOptions = this.url
      ? { ...noTls, host: this.url.hostname, port: Number(this.url.port || 80), path, method: 'POST', headers }
      : { ...noTls, socketPath: this.dirs.socket, path, method: 'POST', headers };
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const src = createReadStream(file);
      const req = request(target, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          // An early answer (a refusal) ends the upload: send no more.
          src.destroy();
          req.destroy();
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          if ((res.statusCode ?? 0) >= 400) {
            const err = (json as { error?: WireError } | undefined)?.error;
            reject(
              err ? XenodeError.fromWire(err) : new XenodeError('internal', `xenoded answered HTTP ${res.statusCode}`),
            );
          } else resolve(json as T);
        });
      });
      // The daemon may refuse (quota, name) before it read everything: its answer counts, not the broken pipe.
      req.on('error', (e) => {
        if (!answered) reject(new XenodeError('engine', `upload to xenoded failed: ${e.message}`));
      });
      let sent = 0;
      src.on('data', (c) => {
        sent += c.length;
        onProgress?.(sent, total);
      });
      src.on('error', (e) => req.destroy(e));
      src.pipe(req);
    });
  }

  /** The pid of the xenoded answering on the socket, or undefined if none answers. */
  private async answeringDaemon(): Promise<number | undefined> {
    try {
      const r = await this.raw('GET', '/v1/info');
      const pid = (r.json as { daemon_pid?: unknown } | undefined)?.daemon_pid;
      return r.status === 200 && typeof pid === 'number' ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Start xenoded in the background and wait until it answers. CLIs that find
   * no daemon at the same moment take turns on a lock: one starts it, the
   * others wait for it, and each names the daemon that answers, not the
   * process it spawned (which may have lost to another and exited).
   */
  async startDaemon(): Promise<void> {
    this.started = true;
    mkdirSync(this.dirs.base, { recursive: true, mode: 0o700 });
    const out = join(this.dirs.base, 'xenoded.out');
    const deadline = Date.now() + 20_000;
    let lock: StartLock | undefined;
    let child: ChildProcess | undefined;
    let exited: number | null = null;
    // The Debian package's xenoded.service owns the default directory: start it, not a daemon of our own.
    const viaService = serviceManages(this.dirs.base);
    try {
      while (Date.now() < deadline) {
        const pid = await this.answeringDaemon();
        if (pid !== undefined) {
          if (!this.o.quiet) {
            process.stderr.write(
              child && viaService
                ? `xenoded was not running; started ${SERVICE_UNIT} (pid ${pid}, dir ${this.dirs.base})\n`
                : child
                  ? `xenoded was not running; started it (pid ${pid}, dir ${this.dirs.base})\n`
                  : `xenoded was not running; another command started it (pid ${pid}, dir ${this.dirs.base})\n`,
            );
          }
          return;
        }
        if (exited !== null && viaService) {
          // systemctl returns once the service started; it answers on the socket a moment later.
          if (exited !== 0) {
            throw new XenodeError('engine', `systemctl start ${SERVICE_UNIT} failed (exit ${exited})`, {
              hint: `see systemctl status ${SERVICE_UNIT} and journalctl -u xenoded`,
            });
          }
        } else if (exited !== null) {
          // Ours lost to a daemon started some other way (the pid file names it): wait for that one.
          if (!this.otherDaemonStarting(child?.pid)) {
            // Its own one-line refusal (e.g. a domain table that is not whole) says more than an exit code.
            const refusal = lastDaemonError(out);
            if (refusal) throw new XenodeError('state', `xenoded refused to start: ${refusal}`);
            throw new XenodeError('engine', `xenoded failed to start (exit ${exited})`, { hint: `see ${out}` });
          }
        } else if (!child) {
          lock ??= tryStartLock(join(this.dirs.base, 'xenoded.start.lock'));
          // Holding the lock, check again: the previous holder releases it only once its daemon answers.
          if (lock && (await this.answeringDaemon()) === undefined) {
            child = viaService
              ? spawn('systemctl', ['start', SERVICE_UNIT], { stdio: 'ignore' })
              : this.spawnDaemon(out);
            child.on('exit', (c) => {
              exited = c ?? 1;
            });
            child.on('error', () => {
              exited = 127; // systemctl missing after all
            });
          }
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      lock?.release();
    }
    throw new XenodeError('engine', 'xenoded did not come up within 20 s', { hint: `see ${this.dirs.daemonLog}` });
  }

  private spawnDaemon(out: string): ChildProcess {
    const here = dirname(fileURLToPath(import.meta.url));
    const bundled = join(here, 'xenoded.mjs');
    const script = existsSync(bundled) ? [bundled] : ['--import', 'tsx', join(here, '..', 'daemon-main.ts')];
    const args = [...DAEMON_NODE_FLAGS, ...script];
    const fd = openSync(out, 'a');
    try {
      const child = spawn(process.execPath, args, {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, XENODE_DIR: this.dirs.base },
      });
      child.unref();
      return child;
    } finally {
      closeSync(fd);
    }
  }

  /** A live process other than `ours` named in the pid file: a daemon still starting up. */
  private otherDaemonStarting(ours: number | undefined): boolean {
    try {
      const pid = Number(readFileSync(this.dirs.pidFile, 'utf8'));
      if (!Number.isInteger(pid) || pid <= 0 || pid === ours) return false;
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Open a WebSocket to a daemon route. ws (and the https, tls and zlib modules it
   * loads) is imported on first use: most commands never need it.
   */
  async websocket(path: string): Promise<WebSocket> {
    const { default: WebSocket } = await import('ws');
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (this.url) {
      const u = new URL(path, this.url);
      u.protocol = this.url.protocol === 'https:' ? 'wss:' : 'ws:';
      return new WebSocket(u, { headers });
    }
    return new WebSocket(`ws+unix://${this.dirs.socket}:${path}`, { headers });
  }
}
