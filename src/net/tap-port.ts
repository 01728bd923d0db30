// The host port: a TAP interface owned by the switch process, so the host and
// the domains reach each other. Opening a TAP needs ioctl(TUNSETIFF), which
// Node cannot do, hence koffi. The TAP is not persistent: it disappears with
// the switch, and a restarted switch creates it again with its address.

import { read, writeSync } from 'node:fs';
import koffi from 'koffi';
import type { HostPortSpec } from './control-protocol.ts';
import { HostLinkError, linkExists, runIp, tapUnsupportedReason } from './host-links.ts';
import { hostPortMac } from './mac.ts';
import type { PortInfo } from './policy.ts';
import { HOST_SPONSOR } from './policy.ts';
import { type PortCounters, type SwitchCore, type SwitchPort, zeroCounters } from './switch-core.ts';

const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;
const IFREQ_SIZE = 40;
const EPERM = 1;
const EBUSY = 16;
const EINVAL = 22;
/** Largest frame a read can return (TAP MTU <= 65521 + Ethernet header). */
const MAX_READ = 65536;
/** Reads land back to back in a slab; a frame is a view of it, so nothing is copied per frame. */
const SLAB = 1024 * 1024;

interface Libc {
  open: (path: string, flags: number) => number;
  ioctl: (fd: number, req: number, arg: Buffer) => number;
  close: (fd: number) => number;
}

let libc: Libc | undefined;
function loadLibc(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      open: lib.func('int open(const char *path, int flags)') as Libc['open'],
      ioctl: lib.func('int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)') as Libc['ioctl'],
      close: lib.func('int close(int fd)') as Libc['close'],
    };
  }
  return libc;
}

/** Open (creating if needed) TAP `name` without packet info; returns its fd. */
function openTap(name: string): number {
  const c = loadLibc();
  const fd = c.open('/dev/net/tun', O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    throw new HostLinkError(`cannot open /dev/net/tun (errno ${koffi.errno()})`, 'run xenoded as root');
  }
  const ifr = Buffer.alloc(IFREQ_SIZE);
  ifr.write(name, 0, 15, 'latin1');
  ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI, 16);
  if (c.ioctl(fd, TUNSETIFF, ifr) < 0) {
    const errno = koffi.errno();
    c.close(fd);
    if (errno === EPERM) throw new HostLinkError(`not allowed to create TAP ${name}`, 'xenoded needs CAP_NET_ADMIN');
    if (errno === EBUSY)
      throw new HostLinkError(`TAP ${name} is in use by another process`, 'pick another host port name');
    if (errno === EINVAL && linkExists(name)) {
      throw new HostLinkError(`interface ${name} exists and is not a TAP`, 'pick another host port name');
    }
    throw new HostLinkError(`TUNSETIFF ${name} failed (errno ${errno})`);
  }
  return fd;
}

export class TapPort implements SwitchPort {
  readonly counters: PortCounters = zeroCounters();
  readonly info: PortInfo = { id: 'host', kind: 'host', sponsor: HOST_SPONSOR };
  private slab = Buffer.allocUnsafe(SLAB);
  private slabOff = 0;
  private closed = false;

  private constructor(
    readonly spec: HostPortSpec,
    private readonly fd: number,
    private readonly core: SwitchCore,
    private readonly log: (msg: string) => void,
  ) {}

  /** Create the TAP, give it the host address and start reading. Throws HostLinkError. */
  static open(spec: HostPortSpec, core: SwitchCore, log: (msg: string) => void): TapPort {
    const why = tapUnsupportedReason();
    if (why) throw new HostLinkError(why.message, why.hint);
    const fd = openTap(spec.name);
    try {
      runIp(['link', 'set', 'dev', spec.name, 'address', hostPortMac(spec.name), 'mtu', String(spec.mtu), 'up']);
      runIp(['addr', 'replace', spec.address, 'dev', spec.name]);
    } catch (e) {
      loadLibc().close(fd);
      throw e;
    }
    const p = new TapPort(spec, fd, core, log);
    p.readNext();
    return p;
  }

  // One blocking read at a time on libuv's pool: the TAP fd cannot join the event loop.
  private readNext(): void {
    if (this.closed) return;
    if (SLAB - this.slabOff < MAX_READ) {
      this.slab = Buffer.allocUnsafe(SLAB);
      this.slabOff = 0;
    }
    const slab = this.slab;
    const off = this.slabOff;
    read(this.fd, slab, off, MAX_READ, null, (err, n) => {
      if (this.closed) return;
      if (err) {
        this.log(`host port ${this.spec.name}: read failed: ${err.message}`);
        setTimeout(() => this.readNext(), 100);
        return;
      }
      // Keep the next read 8-byte aligned.
      this.slabOff = off + ((n + 7) & ~7);
      if (n > 0) this.core.input(this, slab.subarray(off, off + n));
      this.readNext();
    });
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      // A TAP write hands the frame to the host stack and does not block.
      writeSync(this.fd, frame);
      return true;
    } catch {
      return false;
    }
  }

  /** Stop using the TAP; it disappears when the process exits. */
  close(): void {
    this.closed = true;
  }
}
