// Handing an open descriptor to QEMU over its QMP socket (SCM_RIGHTS), as
// QMP's getfd expects: the descriptor travels with the command's own bytes.
// Node cannot attach descriptors to a socket write, hence koffi and sendmsg(2).

import type { Socket } from 'node:net';
import koffi from 'koffi';

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const EAGAIN = 11;
const EINTR = 4;
/** CMSG_LEN(sizeof(int)) and CMSG_SPACE(sizeof(int)) on 64-bit Linux. */
const CMSG_LEN_INT = 20;
const CMSG_SPACE_INT = 24;

interface Iovec {
  iov_base: Buffer;
  iov_len: number;
}

interface Msghdr {
  msg_name: null;
  msg_namelen: number;
  msg_iov: Iovec[];
  msg_iovlen: number;
  msg_control: Buffer;
  msg_controllen: number;
  msg_flags: number;
}

type SendMsg = (fd: number, msg: Msghdr, flags: number) => number;

let sendmsg: SendMsg | undefined;

function loadSendmsg(): SendMsg {
  if (!sendmsg) {
    const lib = koffi.load('libc.so.6');
    koffi.struct('xn_iovec', { iov_base: 'void *', iov_len: 'size_t' });
    koffi.struct('xn_msghdr', {
      msg_name: 'void *',
      msg_namelen: 'uint32_t',
      msg_iov: 'xn_iovec *',
      msg_iovlen: 'size_t',
      msg_control: 'void *',
      msg_controllen: 'size_t',
      msg_flags: 'int',
    });
    sendmsg = lib.func('long sendmsg(int fd, const xn_msghdr *msg, int flags)') as SendMsg;
  }
  return sendmsg;
}

/** The descriptor under a connected Node socket (libuv's stream handles expose it on Unix). */
export function socketFd(sock: Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no descriptor (closed or not connected)');
  return fd;
}

/**
 * One sendmsg(2) of `data` on Unix socket `sockFd` with `fd` attached. Returns
 * the bytes sent (the descriptor goes with the first), or -1 when the socket's
 * buffer is full (EAGAIN): nothing was sent then, try again.
 */
export function sendWithFd(sockFd: number, data: Buffer, fd: number): number {
  const send = loadSendmsg();
  const control = Buffer.alloc(CMSG_SPACE_INT);
  control.writeBigUInt64LE(BigInt(CMSG_LEN_INT), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  control.writeInt32LE(fd, 16);
  for (;;) {
    const n = send(
      sockFd,
      {
        msg_name: null,
        msg_namelen: 0,
        msg_iov: [{ iov_base: data, iov_len: data.length }],
        msg_iovlen: 1,
        msg_control: control,
        msg_controllen: CMSG_SPACE_INT,
        msg_flags: 0,
      },
      0,
    );
    if (n >= 0) return Number(n);
    const errno = koffi.errno();
    if (errno === EINTR) continue;
    if (errno === EAGAIN) return -1;
    throw new Error(`sendmsg with a descriptor failed (errno ${errno})`);
  }
}
