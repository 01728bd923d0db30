// A client for the QEMU guest agent (qemu-ga) on a domain's virtio-serial port.
// The agent runs inside the guest: whatever it sends is untrusted. Every call has
// a deadline, answers are bounded in size and checked for shape, and a channel
// that got out of step (garbage, a late answer to an earlier request) is brought
// back with guest-sync-delimited: the agent answers it after a 0xFF byte, and
// everything before that byte and any answer with another id is dropped.

import { connect, type Socket } from 'node:net';
import { XenodeError } from '../errors.ts';

export { qgaSocketPath } from './qga-args.ts';

/** The most one answer may hold before the channel is dropped as hostile. */
const MAX_LINE = 256 * 1024;
const SYNC_MS = 3000;

export interface QgaAddress {
  type: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
}

export interface QgaInterface {
  name: string;
  mac?: string;
  addresses: QgaAddress[];
}

export class QgaError extends XenodeError {
  constructor(message: string) {
    super('internal', message);
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/**
 * One connection to the agent's socket. Requests go one at a time (the agent
 * answers in order, but a timed-out request's late answer must not be taken for
 * the next one's, which the sync id guards against).
 */
export class QgaClient {
  private sock: Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private waiter: ((line: Buffer | Error) => void) | undefined;
  /** Answer lines not yet taken (several can arrive in one read). */
  private queue: Buffer[] = [];
  /** After a sync request: skip everything up to the agent's 0xFF. */
  private awaitingDelimiter = false;
  private chain: Promise<unknown> = Promise.resolve();
  private nextId = Math.floor(Math.random() * 1e9);
  private closed = false;

  constructor(private readonly socketPath: string) {}

  close(): void {
    this.closed = true;
    this.drop(new QgaError('guest agent connection closed'));
  }

  private drop(err: Error): void {
    this.sock?.destroy();
    this.sock = undefined;
    this.buf = Buffer.alloc(0);
    this.queue = [];
    const w = this.waiter;
    this.waiter = undefined;
    w?.(err);
  }

  private async connection(timeoutMs: number): Promise<Socket> {
    if (this.closed) throw new QgaError('guest agent connection closed');
    if (this.sock && !this.sock.destroyed) return this.sock;
    const s = connect(this.socketPath);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        s.destroy();
        reject(new QgaError('guest agent socket: connect timed out'));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(new QgaError(`guest agent socket: ${e.message}`));
      });
    });
    s.on('data', (b: Buffer) => this.onData(b));
    s.on('error', () => this.drop(new QgaError('guest agent socket error')));
    s.on('close', () => {
      if (this.sock === s) this.drop(new QgaError('guest agent socket closed'));
    });
    this.sock = s;
    this.buf = Buffer.alloc(0);
    return s;
  }

  private onData(b: Buffer): void {
    this.buf = this.buf.length === 0 ? b : Buffer.concat([this.buf, b]);
    for (;;) {
      if (this.awaitingDelimiter) {
        const ff = this.buf.indexOf(0xff);
        if (ff < 0) {
          this.buf = Buffer.alloc(0);
          return;
        }
        this.buf = this.buf.subarray(ff + 1);
        this.awaitingDelimiter = false;
      }
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) {
        if (this.buf.length > MAX_LINE) this.drop(new QgaError('guest agent sent an oversized answer'));
        return;
      }
      const line = this.buf.subarray(0, nl);
      this.buf = this.buf.subarray(nl + 1);
      if (line.length > MAX_LINE) {
        this.drop(new QgaError('guest agent sent an oversized answer'));
        return;
      }
      if (line.toString().trim() === '') continue;
      const w = this.waiter;
      if (w) w(line);
      else {
        // Kept for the request being read; a flood is cut to the last few lines.
        this.queue.push(line);
        if (this.queue.length > 16) this.queue.shift();
      }
    }
  }

  /** The next answer line, or an error at the deadline. */
  private nextLine(timeoutMs: number): Promise<Buffer> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        reject(new QgaError(`guest agent did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (l) => {
        clearTimeout(t);
        this.waiter = undefined;
        if (l instanceof Error) reject(l);
        else resolve(l);
      };
    });
  }

  /** Brings the channel in step: true once the agent echoed our id. */
  private async sync(deadline: number): Promise<void> {
    const s = await this.connection(Math.max(1, deadline - Date.now()));
    this.nextId = (this.nextId + 1) % 2 ** 31;
    const id = this.nextId;
    this.awaitingDelimiter = true;
    this.buf = Buffer.alloc(0);
    this.queue = [];
    // A 0xFF first resets the agent's JSON parser, whatever was half-sent before.
    s.write(
      Buffer.concat([
        Buffer.from([0xff]),
        Buffer.from(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`),
      ]),
    );
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new QgaError('guest agent did not answer the sync');
      const line = await this.nextLine(left);
      const v = parseJson(line);
      if (isObject(v) && v.return === id) return;
      // Anything else (a late answer, garbage): wait for our id, up to the deadline.
    }
  }

  /**
   * Runs one agent command. `noReply`: the command answers nothing on success
   * (guest-shutdown): resolves once it is sent to an agent that answered the sync.
   */
  execute(command: string, args: Record<string, Json> | undefined, timeoutMs: number, noReply = false): Promise<Json> {
    const run = async (): Promise<Json> => {
      const deadline = Date.now() + timeoutMs;
      await this.sync(Math.min(deadline, Date.now() + SYNC_MS));
      const s = await this.connection(1000);
      this.queue = [];
      s.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
      if (noReply) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new QgaError(`guest agent: ${command} timed out`);
      const v = parseJson(await this.nextLine(left));
      if (!isObject(v)) throw new QgaError(`guest agent: ${command}: malformed answer`);
      if (isObject(v.error)) {
        const desc = typeof v.error.desc === 'string' ? v.error.desc.slice(0, 200) : 'error';
        throw new QgaError(`guest agent: ${command}: ${desc}`);
      }
      if (!('return' in v)) throw new QgaError(`guest agent: ${command}: malformed answer`);
      return v.return as Json;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async ping(timeoutMs = 3000): Promise<void> {
    await this.execute('guest-ping', undefined, timeoutMs);
  }

  /** Asks the guest OS to power off or reboot (the agent runs its shutdown command). */
  async shutdown(mode: 'powerdown' | 'reboot', timeoutMs = 5000): Promise<void> {
    await this.execute('guest-shutdown', { mode }, timeoutMs, true);
  }

  /** Freezes the guest's file systems; the number frozen. */
  async freeze(timeoutMs = 30_000): Promise<number> {
    const n = await this.execute('guest-fsfreeze-freeze', undefined, timeoutMs);
    if (typeof n !== 'number') throw new QgaError('guest agent: guest-fsfreeze-freeze: malformed answer');
    return n;
  }

  async thaw(timeoutMs = 30_000): Promise<number> {
    const n = await this.execute('guest-fsfreeze-thaw', undefined, timeoutMs);
    if (typeof n !== 'number') throw new QgaError('guest agent: guest-fsfreeze-thaw: malformed answer');
    return n;
  }

  /** The guest's interfaces and addresses, as far as they are well-formed (at most 64 of each). */
  async interfaces(timeoutMs = 5000): Promise<QgaInterface[]> {
    const v = await this.execute('guest-network-get-interfaces', undefined, timeoutMs);
    if (!Array.isArray(v)) throw new QgaError('guest agent: guest-network-get-interfaces: malformed answer');
    return parseInterfaces(v);
  }
}

const IFNAME_RE = /^[\w.:@-]{1,32}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IPV4_RE = /^(\d{1,3})(\.\d{1,3}){3}$/;
const IPV6_RE = /^[0-9a-f:.]{2,45}$/i;

export function parseInterfaces(v: Json[]): QgaInterface[] {
  const out: QgaInterface[] = [];
  for (const it of v.slice(0, 64)) {
    if (!isObject(it) || typeof it.name !== 'string' || !IFNAME_RE.test(it.name)) continue;
    const iface: QgaInterface = { name: it.name, addresses: [] };
    const mac = it['hardware-address'];
    if (typeof mac === 'string' && MAC_RE.test(mac)) iface.mac = mac.toLowerCase();
    const addrs = it['ip-addresses'];
    if (Array.isArray(addrs)) {
      for (const a of addrs.slice(0, 64)) {
        if (!isObject(a)) continue;
        const type = a['ip-address-type'];
        const address = a['ip-address'];
        const prefix = a.prefix;
        if ((type !== 'ipv4' && type !== 'ipv6') || typeof address !== 'string' || typeof prefix !== 'number') continue;
        if (!(type === 'ipv4' ? IPV4_RE : IPV6_RE).test(address)) continue;
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > (type === 'ipv4' ? 32 : 128)) continue;
        iface.addresses.push({ type, address, prefix });
      }
    }
    out.push(iface);
  }
  return out;
}

function parseJson(line: Buffer): Json | undefined {
  try {
    return JSON.parse(line.toString('utf8')) as Json;
  } catch {
    return undefined;
  }
}

function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
