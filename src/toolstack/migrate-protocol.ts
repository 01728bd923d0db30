// The conversation between a source and a target xenoded during a live
// migration: JSON messages over one WebSocket on the target's token-protected
// API. The machine state itself goes QEMU to QEMU over its own TCP connection.
//
//   source                                   target
//   prepare {config, meta}        ───────▶   checks it can host the domain, starts
//                                            QEMU -incoming as NAME--incoming
//                                 ◀───────   listening {port}
//   (QEMU pre-copy to port; source QEMU stops at the end)
//   go {store, console}           ───────▶   waits for its QEMU to have loaded it,
//                                            takes the store and console, renames
//                                            to NAME, runs it
//                                 ◀───────   running {domid}
//
// Either side drops everything if the socket closes before `go` (target) or
// before `running` (source: resumes its copy, unless it already sent `go`).

import type { DomainConfig } from '../config/types.ts';
import type { WireError } from '../errors.ts';
import type { TransferMeta } from './domain-transfer.ts';

export const MIGRATE_PATH = '/v1/migrate/incoming';
/** Suffixes of xl's rename dance while a domain exists on both hosts. */
export const INCOMING_SUFFIX = '--incoming';
export const MIGRATED_SUFFIX = '--migratedaway';

export type ToTarget =
  | { type: 'prepare'; config: DomainConfig; meta: TransferMeta; paused: boolean }
  | { type: 'go'; store?: unknown; console: string }
  | { type: 'abort'; reason: string };

export type ToSource =
  | { type: 'listening'; port: number; domid: number }
  /** `resumedAt`: QEMU's RESUME event time (ms since the epoch), for the guest-visible downtime. */
  | { type: 'running'; domid: number; name: string; paused: boolean; resumedAt?: number }
  | { type: 'error'; error: WireError };

export function parseMessage<T extends { type: string }>(data: unknown): T | undefined {
  try {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : String(data);
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string') return v as T;
  } catch {
    /* not ours */
  }
  return undefined;
}
