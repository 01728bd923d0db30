// Public API of the control store.

export {
  DOMID_GUEST_MAX,
  domainPath,
  GUEST_WRITABLE,
  guestOwnedPerms,
  READ_ONLY_DIRS,
  readOnlyPerms,
} from './domain-layout.ts';
export { isStoreError, type StoreErrno, StoreError } from './errors.ts';
export { ABS_PATH_MAX, checkPath, checkWatchPath } from './path.ts';
export { accessFor, DOMID_ANY, formatPerm, formatPerms, OWNER, parsePerm, READ, WRITE } from './perms.ts';
export { parseSnapshot, SNAPSHOT_FORMAT, type SnapshotNode, type StoreSnapshot } from './snapshot.ts';
export {
  ControlStore,
  type ControlStoreOptions,
  type DomainUsage,
  type StoreView,
  type TransactionOptions,
} from './store.ts';
export {
  type Caller,
  DEFAULT_QUOTAS,
  guest,
  NO_DOMAIN,
  type Perm,
  type PermLetter,
  type PermList,
  principalOf,
  type Quotas,
  sponsorCaller,
  TOOLSTACK,
  type WatchCallback,
  type WatchEvent,
} from './types.ts';
