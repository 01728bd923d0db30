// Packet capture on a switch port: every frame the vif sends and every frame
// the switch delivers to it, in the classic pcap format (what tcpdump -r and
// Wireshark read), written as it passes. Bounded: the capture stops by itself
// once the file reaches its byte limit.

import { closeSync, openSync, writeSync } from 'node:fs';

const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 65535;

export class PcapWriter {
  private fd?: number;
  private bytes = 0;
  packets = 0;

  constructor(
    path: string,
    private readonly maxBytes: number,
  ) {
    // wx: never over a file that is there (the daemon names a new one each time).
    this.fd = openSync(path, 'wx', 0o600);
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(SNAPLEN, 16);
    h.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    writeSync(this.fd, h);
    this.bytes = 24;
  }

  get open(): boolean {
    return this.fd !== undefined;
  }

  write(frame: Uint8Array): void {
    const fd = this.fd;
    if (fd === undefined) return;
    const len = Math.min(frame.length, SNAPLEN);
    if (this.bytes + 16 + len > this.maxBytes) {
      this.close();
      return;
    }
    const now = Date.now();
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(now / 1000), 0);
    h.writeUInt32LE((now % 1000) * 1000, 4);
    h.writeUInt32LE(len, 8);
    h.writeUInt32LE(frame.length, 12);
    // One write per packet, so a reader never sees half a record header.
    writeSync(fd, Buffer.concat([h, frame.subarray(0, len)]));
    this.bytes += 16 + len;
    this.packets++;
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
