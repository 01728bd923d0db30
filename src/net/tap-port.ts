// The host port: a TAP interface owned by the switch process, so the host and
// the domains reach each other. Opening a TAP needs ioctl(TUNSETIFF), which
// Node cannot do, hence koffi. The TAP is not persistent: it disappears with
// the switch, and a restarted switch creates it again with its address.

import { readSync, writeSync } from 'node:fs';
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
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const POLLIN = 0x1;
/** A poll never blocks a pool thread for longer, so the process can always exit. */
const POLL_MS = 250;
const IFREQ_SIZE = 40;
const EPERM = 1;
const EBUSY = 16;
const EINVAL = 22;
/** Largest frame a read can return (TAP MTU <= 65521 + Ethernet header). */
const MAX_READ = 65536;
/** Reads land back to back in a slab; a frame is a view of it, so nothing is copied per frame. */
const SLAB = 1024 * 1024;

type PollAsync = (fds: Buffer, n: number, timeoutMs: number, cb: (err: unknown, ready: number) => void) => void;

interface Libc {
  open: (path: string, flags: number) => number;
  ioctl: (fd: number, req: number, arg: Buffer) => number;
  close: (fd: number) => number;
  pollAsync: PollAsync;
}

let libc: Libc | undefined;
function loadLibc(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      open: lib.func('int open(const char *path, int flags)') as Libc['open'],
      ioctl: lib.func('int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)') as Libc['ioctl'],
      close: lib.func('int close(int fd)') as Libc['close'],
      pollAsync: lib.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)').async as PollAsync,
    };
  }
  return libc;
}

/** Open (creating if needed) TAP `name` without packet info; returns its fd. */
function openTap(name: string): number {
  const c = loadLibc();
  const fd = c.open('/dev/net/tun', O_RDWR | O_NONBLOCK | O_CLOEXEC);
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
  /** The host may send from any MAC: it is trusted, and only the host sends into the TAP. */
  readonly sourceMac = undefined;
  private slab = Buffer.allocUnsafe(SLAB);
  /** struct pollfd { int fd; short events; short revents; } */
  private readonly pollfd = Buffer.alloc(8);
  private slabOff = 0;
  private closed = false;

  private constructor(
    readonly spec: HostPortSpec,
    private readonly fd: number,
    private readonly core: SwitchCore,
    private readonly log: (msg: string) => void,
  ) {
    this.pollfd.writeInt32LE(fd, 0);
    this.pollfd.writeInt16LE(POLLIN, 4);
  }

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

  // The TAP fd cannot join Node's event loop, so poll() waits on libuv's pool (koffi async)
  // and the main thread then reads every queued frame without blocking. A read that blocked
  // on the pool instead would also keep the process from ever exiting (exit joins the pool).
  private readNext(): void {
    if (this.closed) return;
    this.pollfd.writeInt16LE(0, 6);
    loadLibc().pollAsync(this.pollfd, 1, POLL_MS, (err, ready) => {
      if (this.closed) return;
      if (err) {
        this.log(`host port ${this.spec.name}: poll failed: ${String(err)}`);
        setTimeout(() => this.readNext(), 100);
        return;
      }
      if (ready > 0) this.drain();
      this.readNext();
    });
  }

  private drain(): void {
    for (;;) {
      if (SLAB - this.slabOff < MAX_READ) {
        this.slab = Buffer.allocUnsafe(SLAB);
        this.slabOff = 0;
      }
      const off = this.slabOff;
      let n: number;
      try {
        n = readSync(this.fd, this.slab, off, MAX_READ, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN')
          this.log(`host port ${this.spec.name}: ${(e as Error).message}`);
        return;
      }
      if (n <= 0) return;
      // Keep the next read 8-byte aligned.
      this.slabOff = off + ((n + 7) & ~7);
      this.core.input(this, this.slab.subarray(off, off + n));
    }
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      // A TAP write hands the frame to the host stack; EAGAIN (queue full) drops it.
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
