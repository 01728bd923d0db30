// Early writeback for big files written once (save files): sync_file_range(2)
// asks the kernel to start writing dirty pages now, without waiting, so the
// fsync that makes the file durable at the end has little left to do. Node has
// no binding for it, hence koffi. Best effort: where it is missing, the final
// fsync simply does all the work.

import koffi from 'koffi';

const SYNC_FILE_RANGE_WRITE = 2;

type SyncFileRange = (fd: number, offset: bigint, nbytes: bigint, flags: number) => number;

let syncFileRange: SyncFileRange | null | undefined;

function binding(): SyncFileRange | null {
  if (syncFileRange === undefined) {
    try {
      const lib = koffi.load('libc.so.6');
      syncFileRange = lib.func(
        'int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags)',
      ) as SyncFileRange;
    } catch {
      syncFileRange = null;
    }
  }
  return syncFileRange;
}

/** Start writing back `fd`'s dirty pages in [offset, offset + length) without waiting for them. */
export function startWriteback(fd: number, offset: number, length: number): void {
  const f = binding();
  if (f && length > 0) f(fd, BigInt(offset), BigInt(length), SYNC_FILE_RANGE_WRITE);
}
