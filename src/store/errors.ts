// Store errors carry both the toolstack-wide kind (for CLI exit codes and HTTP
// status) and the xenstore errno name, so a wire-protocol front end can reply
// with exactly what xenstored would have said.

import { type ErrorKind, type WireError, XenodeError } from '../errors.ts';

export type StoreErrno = 'EACCES' | 'ENOENT' | 'EAGAIN' | 'ENOSPC' | 'EINVAL' | 'EEXIST' | 'EPERM' | 'EBUSY';

const KIND_OF: Record<StoreErrno, ErrorKind> = {
  EACCES: 'permission',
  EPERM: 'permission',
  ENOENT: 'not-found',
  EAGAIN: 'conflict',
  EEXIST: 'conflict',
  ENOSPC: 'quota',
  EINVAL: 'usage',
  EBUSY: 'state',
};

export class StoreError extends XenodeError {
  readonly errno: StoreErrno;

  constructor(errno: StoreErrno, message: string, opts: { hint?: string; kind?: ErrorKind } = {}) {
    super(opts.kind ?? KIND_OF[errno], `${errno}: ${message}`, { hint: opts.hint });
    this.name = 'StoreError';
    this.errno = errno;
  }

  override toJSON(): WireError & { errno: StoreErrno } {
    return { ...super.toJSON(), errno: this.errno };
  }
}

export function isStoreError(e: unknown, errno?: StoreErrno): e is StoreError {
  return e instanceof StoreError && (errno === undefined || e.errno === errno);
}
