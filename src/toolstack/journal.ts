// The daemon's log lines for systemd's journal. Under xenoded.service, stderr is
// a journal stream (systemd sets JOURNAL_STREAM to its device:inode). Each event
// is then sent as one entry over journald's native socket, with the domain and
// sponsor as fields of their own (`journalctl -u xenoded XENODE_DOMAIN=web`) and
// its level as PRIORITY (`journalctl -u xenoded -p warning`). When that socket
// cannot take it (missing, or full: never block the daemon), the line goes to
// stderr with a `<N>` priority prefix, which journald's stream protocol reads.
// Protocol: https://systemd.io/JOURNAL_NATIVE_PROTOCOL/

import { fstatSync } from 'node:fs';
import koffi from 'koffi';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** syslog priorities of the daemon's levels. */
export const PRIORITY = { error: 3, warn: 4, info: 6, debug: 7 } as const;

/**
 * Whether descriptor `fd` is the journal stream systemd connected it to: JOURNAL_STREAM
 * names the stream's device and inode, and a descriptor redirected since (a shell's
 * `2>file`) no longer matches, as sd_journal's docs ask callers to check.
 */
export function isJournalStream(env: NodeJS.ProcessEnv, fd = 2): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1] as string) && st.ino === BigInt(m[2] as string);
  } catch {
    return false;
  }
}

/** One journal entry in the native protocol: `KEY=value\n`, or the length-prefixed form for a value with a newline. */
export function encodeEntry(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of fields) {
    if (!/^[A-Z0-9][A-Z0-9_]*$/.test(k)) throw new Error(`bad journal field name ${k}`);
    const value = Buffer.from(v, 'utf8');
    if (value.includes(0x0a)) {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(value.length));
      parts.push(Buffer.from(`${k}\n`), len, value, Buffer.from('\n'));
    } else {
      parts.push(Buffer.from(`${k}=`), value, Buffer.from('\n'));
    }
  }
  return Buffer.concat(parts);
}

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number) => number;
}
let libc: Libc | undefined;
function loadLibc(): Libc {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = {
      socket: lib.func('int socket(int domain, int type, int protocol)') as Libc['socket'],
      sendto: lib.func(
        'long sendto(int fd, const uint8_t *buf, unsigned long len, int flags, const uint8_t *addr, uint32_t addrlen)',
      ) as Libc['sendto'],
    };
  }
  return libc;
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;

/** A datagram socket to journald's native socket; send() is false when the entry did not go. */
export class JournalSocket {
  private fd = -1;
  private readonly addr: Buffer;

  constructor(path = JOURNAL_SOCKET) {
    const p = Buffer.from(path);
    if (p.length >= 108) throw new Error(`journal socket path too long: ${path}`);
    // struct sockaddr_un: sa_family_t, then the NUL-terminated path.
    this.addr = Buffer.alloc(2 + p.length + 1);
    this.addr.writeUInt16LE(AF_UNIX, 0);
    p.copy(this.addr, 2);
  }

  send(entry: Buffer): boolean {
    try {
      const c = loadLibc();
      if (this.fd < 0) this.fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (this.fd < 0) return false;
      // Never wait: a stalled journald must not stall the daemon (the line goes to stderr instead).
      return (
        c.sendto(this.fd, entry, entry.length, MSG_DONTWAIT | MSG_NOSIGNAL, this.addr, this.addr.length) ===
        entry.length
      );
    } catch {
      return false;
    }
  }
}
