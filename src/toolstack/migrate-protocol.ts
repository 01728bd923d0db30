// The conversation between a source and a target xenoded during a live
// migration: JSON messages over one WebSocket on the target's API, which only
// the target's admin may open. The machine state itself goes QEMU to QEMU over
// its own TCP connection, which the target's daemon lets through only from the
// control link's address and with the key it gave out (migrate-stream.ts).
//
//   source                                   target
//   prepare {config, meta}        ───────▶   checks it can host the domain, starts
//                                            QEMU -incoming as NAME--incoming
//                                 ◀───────   listening {port, key}
//   connect to port, send key     ───────▶   checks address and key, hands the
//                                            connection to its QEMU
//                                 ◀───────   stream-accepted
//   (source QEMU gets the same connection and pre-copies; it stops at the end)
//   go {store, console}           ───────▶   waits for its QEMU to have loaded it,
//                                            takes the store and console, renames
//                                            to NAME, runs it
//                                 ◀───────   running {domid}
//
// Either side drops everything if the socket closes before `go` (target) or
// before `running` (source: resumes its copy, unless it already sent `go`).
// A `go` before the stream was accepted is refused: no state can have come.

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
  /** `key`: hex; the first bytes the source must send on `port`, valid for this migration only. */
  | { type: 'listening'; port: number; domid: number; key: string }
  /** The target's QEMU holds the stream connection: the source's QEMU may start sending. */
  | { type: 'stream-accepted' }
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
