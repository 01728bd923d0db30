// The per-domain subtree libxl creates (libxl__domain_make): the domain may
// read its whole home but write only where a guest is expected to talk back.

import type { PermList } from './types.ts';

/** Highest domid a guest may have (DOMID_FIRST_RESERVED - 1). */
export const DOMID_GUEST_MAX = 0x7fef;

export function domainPath(domid: number): string {
  return `/local/domain/${domid}`;
}

/** `n0 r<domid>`: toolstack-owned, readable by the domain, hidden from the others. */
export function readOnlyPerms(domid: number): PermList {
  return Object.freeze([Object.freeze({ id: 0, perm: 'n' }), Object.freeze({ id: domid, perm: 'r' })]);
}

/** `n<domid>`: owned by the domain (so it may read, write and grant), hidden from the others. */
export function guestOwnedPerms(domid: number): PermList {
  return Object.freeze([Object.freeze({ id: domid, perm: 'n' })]);
}

/** Directories under `~` created with readOnlyPerms (children inherit them). */
export const READ_ONLY_DIRS: readonly string[] = ['cpu', 'memory', 'device', 'control'];

/** Nodes under `~` the guest owns (reference §3.1, `[w]`). */
export const GUEST_WRITABLE: readonly string[] = [
  'control/shutdown',
  'control/feature-poweroff',
  'control/feature-reboot',
  'control/feature-suspend',
  'control/feature-s3',
  'control/feature-s4',
  'control/sysrq',
  'device/suspend/event-channel',
  'data',
  'drivers',
  'feature',
  'attr',
  'error',
];
