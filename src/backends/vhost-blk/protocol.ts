// vhost-user messages (QEMU's docs/interop/vhost-user.rst): a 12-byte header
// (u32 request, u32 flags, u32 size) then the payload, little-endian.

export const VHOST_USER_GET_FEATURES = 1;
export const VHOST_USER_SET_FEATURES = 2;
export const VHOST_USER_SET_OWNER = 3;
export const VHOST_USER_RESET_OWNER = 4;
export const VHOST_USER_SET_MEM_TABLE = 5;
export const VHOST_USER_SET_VRING_NUM = 8;
export const VHOST_USER_SET_VRING_ADDR = 9;
export const VHOST_USER_SET_VRING_BASE = 10;
export const VHOST_USER_GET_VRING_BASE = 11;
export const VHOST_USER_SET_VRING_KICK = 12;
export const VHOST_USER_SET_VRING_CALL = 13;
export const VHOST_USER_SET_VRING_ERR = 14;
export const VHOST_USER_GET_PROTOCOL_FEATURES = 15;
export const VHOST_USER_SET_PROTOCOL_FEATURES = 16;
export const VHOST_USER_GET_QUEUE_NUM = 17;
export const VHOST_USER_SET_VRING_ENABLE = 18;
export const VHOST_USER_GET_CONFIG = 24;
export const VHOST_USER_SET_CONFIG = 25;
export const VHOST_USER_GET_INFLIGHT_FD = 31;
export const VHOST_USER_SET_INFLIGHT_FD = 32;

export const HEADER_SIZE = 12;
/** The protocol's largest payload (a memory table of 8 regions is 264 bytes; a config at most 256 + 12). */
export const MAX_PAYLOAD = 4096;
export const FLAG_VERSION = 0x1;
export const FLAG_REPLY = 0x4;
export const FLAG_NEED_REPLY = 0x8;

/** GET_FEATURES bit 30: protocol features are negotiated (and rings start disabled). */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
export const PROTOCOL_F_MQ = 0;
export const PROTOCOL_F_REPLY_ACK = 3;
export const PROTOCOL_F_CONFIG = 9;
export const PROTOCOL_F_INFLIGHT_SHMFD = 12;

/** SET_VRING_KICK/CALL/ERR: bits 0-7 the queue, bit 8 "no descriptor". */
export const VRING_IDX_MASK = 0xff;
export const VRING_NOFD = 0x100;
/** Memory regions one SET_MEM_TABLE may carry (without CONFIGURE_MEM_SLOTS). */
export const MAX_MEM_REGIONS = 8;

export interface Message {
  request: number;
  flags: number;
  payload: Buffer;
  fds: number[];
}

export const NAMES: Record<number, string> = {
  1: 'GET_FEATURES',
  2: 'SET_FEATURES',
  3: 'SET_OWNER',
  4: 'RESET_OWNER',
  5: 'SET_MEM_TABLE',
  8: 'SET_VRING_NUM',
  9: 'SET_VRING_ADDR',
  10: 'SET_VRING_BASE',
  11: 'GET_VRING_BASE',
  12: 'SET_VRING_KICK',
  13: 'SET_VRING_CALL',
  14: 'SET_VRING_ERR',
  15: 'GET_PROTOCOL_FEATURES',
  16: 'SET_PROTOCOL_FEATURES',
  17: 'GET_QUEUE_NUM',
  18: 'SET_VRING_ENABLE',
  24: 'GET_CONFIG',
  25: 'SET_CONFIG',
  31: 'GET_INFLIGHT_FD',
  32: 'SET_INFLIGHT_FD',
};

export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** A reply to `req`: same request code, version 1 with the reply flag. */
export function reply(request: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(request, 0);
  h.writeUInt32LE(FLAG_VERSION | FLAG_REPLY, 4);
  h.writeUInt32LE(payload.length, 8);
  return Buffer.concat([h, payload]);
}

export function u64Payload(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v, 0);
  return b;
}
