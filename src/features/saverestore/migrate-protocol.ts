// The conversation between a source and a target xenoded during a live
// migration: JSON messages over one WebSocket on the target's API, which only
// the target's admin may open. The machine state itself goes QEMU to QEMU over
// its own TCP connection, which the target's daemon lets through only from the
// control link's address and with the key it gave out (migrate-stream.ts).
//
//   source                                   target
//   prepare {config, meta}        ───────▶   checks it can host the domain, starts
//                                            QEMU -incoming (listed as NAME--incoming
//                                            in the table until the hand-over)
//                                 ◀───────   listening {port, key}
//   connect to port, send key     ───────▶   checks address and key, hands the
//                                            connection to its QEMU
//                                 ◀───────   stream-accepted
//   (source QEMU gets the same connection and pre-copies; it stops the guest
//    and waits; the source journals the switch-over and lets it send the
//    device state; it completes once the target QEMU says, over the stream's
//    return path, that it loaded every byte)
//   go {store, console}           ───────▶   takes the store and console, renames
//                                            to NAME, runs it
//                                 ◀───────   running {domid}
//
// The commit point is QEMU's and both sides judge by it: the state loaded
// completely on the target (the source QEMU completes only then). Before the
// switch-over the source may cancel at any time (the target cannot complete),
// and does when the link drops; after it, neither side cancels: a completed
// source retires its copy whatever the target says or does not say, a target
// whose QEMU loaded the state runs it even if `go` never comes (the source
// went away), and a load that breaks off leaves the guest to the source, whose
// QEMU resumes it. Each side journals its steps (intents.ts), so a daemon
// killed at any point settles to the same outcome when it starts again.
// A `go` before the stream was accepted is refused: no state can have come.

import type { DomainConfig } from '../../config/types.ts';
import type { WireError } from '../../errors.ts';
import type { TransferMeta } from './domain-transfer.ts';

export const MIGRATE_PATH = '/v1/migrate/incoming';
export { INCOMING_SUFFIX } from '../../toolstack/domain-record.ts';
/** The source side's half of xl's rename dance (the target's is INCOMING_SUFFIX). */
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
