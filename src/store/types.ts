// Plain data types shared by the store's modules and its callers.

/** Who is asking. Domain 0 with `privileged` is the toolstack itself. */
export interface Caller {
  /** Whose permissions apply to the nodes touched. */
  readonly domid: number;
  readonly privileged: boolean;
  /**
   * Who owns the caller's transactions and watches and is charged for them
   * (see principalOf); unset for a domain's own connection.
   */
  readonly principal?: string;
  /**
   * Domids this caller may name in a permission list (0 always may be named);
   * unset = any, as xenstored allows a domain.
   */
  readonly grantable?: readonly number[];
  /**
   * A domain this caller acts for as well (xenstored's SET_TARGET, e.g. a
   * device model): entries naming it apply to the caller, its nodes are the caller's.
   */
  readonly target?: number;
}

/** The toolstack (xenoded) acting as dom0. */
export const TOOLSTACK: Caller = Object.freeze({ domid: 0, privileged: true });

/** Unprivileged identity of a guest domain. */
export function guest(domid: number): Caller {
  return { domid, privileged: false };
}

/** A domid that is no domain (DOMID_INVALID): a sponsor's caller that names none of its domains. */
export const NO_DOMAIN = 0x7ff4;

/**
 * A sponsor acting on one of its domains' nodes: that domain's permissions and
 * node quota, but transactions and watches of its own, and permission lists
 * that may name only its own domains. `domid` = NO_DOMAIN when the request
 * names no node (opening or ending a transaction).
 */
export function sponsorCaller(sponsor: string, domid: number, domains: readonly number[]): Caller {
  return Object.freeze({
    domid,
    privileged: false,
    principal: `sponsor ${sponsor}`,
    grantable: Object.freeze([...domains]),
  });
}

/** The identity transactions and watches belong to, also used in messages: `domain 3`, `sponsor alice`. */
export function principalOf(caller: Caller): string {
  return caller.principal ?? `domain ${caller.domid}`;
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
