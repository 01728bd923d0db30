// The daemon's end of the switch control channel: requests matched to replies
// by id, and a 'close' event the supervisor treats as the switch dying.

import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import type { ControlRequest, ControlResponse } from './control-protocol.ts';

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
export type ControlCall = DistributiveOmit<ControlRequest, 'id'>;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class SwitchClient extends EventEmitter<{ close: [] }> {
  private buf = '';
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private closed = false;

  private constructor(private readonly sock: Socket) {
    super();
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', () => {});
    sock.on('close', () => this.onClose());
  }

  static connect(path: string, timeoutMs = 2000): Promise<SwitchClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ path });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('switch control connect timed out'));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(new SwitchClient(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onData(d: string): void {
    this.buf += d;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let msg: ControlResponse;
      try {
        msg = JSON.parse(line) as ControlResponse;
      } catch {
        continue;
      }
      const p = this.pending.get(msg.id);
      if (!p) continue;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(msg.error));
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('switch control channel closed'));
    }
    this.pending.clear();
    this.emit('close');
  }

  call<T>(req: ControlCall, timeoutMs = 5000): Promise<T> {
    if (this.closed) return Promise.reject(new Error('switch control channel closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`switch did not answer ${req.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.sock.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }

  close(): void {
    this.sock.destroy();
    this.onClose();
  }
}
