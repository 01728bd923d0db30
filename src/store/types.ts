// Plain data types shared by the store's modules and its callers.

/** Who is asking. Domain 0 with `privileged` is the toolstack itself. */
export interface Caller {
  readonly domid: number;
  readonly privileged: boolean;
}

/** The toolstack (xenoded) acting as dom0. */
export const TOOLSTACK: Caller = Object.freeze({ domid: 0, privileged: true });

/** Unprivileged identity of a guest domain. */
export function guest(domid: number): Caller {
  return { domid, privileged: false };
}

/** n = none, r = read, w = write, b = both (xenstore's letters). */
export type PermLetter = 'n' | 'r' | 'w' | 'b';

export interface Perm {
  readonly id: number;
  readonly perm: PermLetter;
}

/** First entry = owner, and its letter is the access of every unlisted domain. */
export type PermList = readonly Perm[];

export interface WatchEvent {
  /** The path that changed (or the watched path when an ancestor was removed). */
  readonly path: string;
  readonly token: string;
}

export type WatchCallback = (event: WatchEvent) => void;

/** Limits for unprivileged domains; 0 = unlimited (xenstored's convention). */
export interface Quotas {
  /** Nodes a domain may own. */
  nodes: number;
  watches: number;
  /** Concurrently open transactions. */
  transactions: number;
  /** Nodes changed by one transaction. */
  transactionNodes: number;
  /** Bytes of value plus child names (one NUL each) of one node. */
  nodeSize: number;
  /** Entries in one node's permission list. */
  perms: number;
  /** Path length counted after `/local/domain/<domid>/`. */
  pathLength: number;
}

/** xenstored's defaults (reference §3.6). */
export const DEFAULT_QUOTAS: Readonly<Quotas> = Object.freeze({
  nodes: 1000,
  watches: 128,
  transactions: 10,
  transactionNodes: 1024,
  nodeSize: 2048,
  perms: 5,
  pathLength: 2048,
});
