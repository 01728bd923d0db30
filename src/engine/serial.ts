// The domain's serial port, as a byte stream. The daemon must keep reading it:
// an undrained serial socket stalls the guest's console (and its printk).

import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';

export interface SerialEvents {
  data: [Buffer];
  close: [];
}

export class SerialPort extends EventEmitter<SerialEvents> {
  private sock?: Socket;

  constructor(readonly path: string) {
    super();
  }

  async connect(retryUntil = Date.now() + 5000): Promise<void> {
    for (;;) {
      try {
        this.sock = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection({ path: this.path });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (e) {
        if (Date.now() >= retryUntil) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    const s = this.sock;
    s.removeAllListeners('error');
    s.on('error', () => {});
    s.on('data', (d: Buffer) => this.emit('data', d));
    s.on('close', () => this.emit('close'));
  }

  write(data: Buffer | string): void {
    this.sock?.write(data);
  }

  close(): void {
    this.sock?.destroy();
  }
}
