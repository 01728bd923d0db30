// The xenstored wire protocol's constants (Xen's xen/include/public/io/xs_wire.h
// and docs/misc/xenstore.txt, as of Xen 4.17).

/** struct xsd_sockmsg: u32 type, req_id, tx_id, len, in the host's byte order (little-endian here). */
export const HEADER_SIZE = 16;

/** XENSTORE_PAYLOAD_MAX: longer in either direction is a protocol violation. */
export const PAYLOAD_MAX = 4096;

/** enum xsd_sockmsg_type. 20 (RESTRICT) was removed; 23 and above are not in Xen 4.17. */
export const XsType = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;

export type XsTypeName = keyof typeof XsType;

/** The errno names xenstored sends (xsd_errors); anything else would be read as EINVAL by clients. */
export type WireErrno =
  | 'EINVAL'
  | 'EACCES'
  | 'EEXIST'
  | 'EISDIR'
  | 'ENOENT'
  | 'ENOMEM'
  | 'ENOSPC'
  | 'EIO'
  | 'ENOTEMPTY'
  | 'ENOSYS'
  | 'EROFS'
  | 'EBUSY'
  | 'EAGAIN'
  | 'EISCONN'
  | 'E2BIG'
  | 'EPERM';

/** DOMID_SELF: IS_DOMAIN_INTRODUCED answers T for it. */
export const DOMID_SELF = 0x7ff0;

/** One message, either direction. `payload` may be a view into a reused buffer: copy what you keep. */
export interface WireMessage {
  readonly type: number;
  readonly reqId: number;
  readonly txId: number;
  readonly payload: Buffer;
}
