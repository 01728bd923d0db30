// What the pool keeps in etcd, and the local file that says which pool this
// host is in. Every key lives under /xenode/pools/<pool>/:
//   meta             {secretHash, ttl, shared, created}        written once, at pool create
//   hosts/<host>     HostRecord, attached to the host's lease  gone when the lease expires
//   peers/<host>     PeerRecord (address, sealed peer token)  until the host leaves
//   domains/<name>   IndexEntry                               the pool-wide index
//   uuids/<uuid>     the domain's name                        uuid uniqueness

import type { DomainConfig } from '../../config/types.ts';

export const POOL_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const HOST_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export interface PoolMeta {
  secretHash: string;
  ttl: number;
  /** Directory every host sees at the same path: where HA domains' disks must be. */
  shared?: string;
  created: string;
}

export interface HostRecord {
  name: string;
  address: string;
  memTotalMiB: number;
  cpus: number;
  load: number;
  version: string;
  at: string;
}

export interface PeerRecord {
  address: string;
  /** An admin token of that host, sealed with the pool secret (secret.ts). */
  token: string;
}

export type IndexState = 'creating' | 'running' | 'starting' | 'failed';

export interface IndexEntry {
  name: string;
  uuid: string;
  host: string;
  state: IndexState;
  ha: boolean;
  memory: number;
  sponsor: string;
  /** Set while a migration to that host is under way. */
  migratingTo?: string;
  /** HA domains only: what another host starts it from. */
  config?: DomainConfig;
}

/** This host's membership, in $XENODE_DIR/pool.json (mode 0600: it holds the secret). */
export interface PoolFile {
  pool: string;
  etcd: string[];
  host: string;
  secret: string;
  /** Advertised API address (HOST:PORT); default the TCP listener's. */
  address?: string;
}

export function poolPrefix(pool: string): string {
  return `/xenode/pools/${pool}/`;
}

export const K = {
  meta: (p: string) => `${poolPrefix(p)}meta`,
  hosts: (p: string) => `${poolPrefix(p)}hosts/`,
  host: (p: string, h: string) => `${poolPrefix(p)}hosts/${h}`,
  peers: (p: string) => `${poolPrefix(p)}peers/`,
  peer: (p: string, h: string) => `${poolPrefix(p)}peers/${h}`,
  domains: (p: string) => `${poolPrefix(p)}domains/`,
  domain: (p: string, n: string) => `${poolPrefix(p)}domains/${n}`,
  uuid: (p: string, u: string) => `${poolPrefix(p)}uuids/${u}`,
};
