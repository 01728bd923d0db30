// How the lifecycle reaches the control store. Kept as a narrow interface so
// the toolstack speaks in domain terms and the store layout lives in one place.

import type { DomainRecord, DomainState, ShutdownReason } from './domain-table.ts';

export interface DomainStoreSink {
  introduce(rec: DomainRecord): void;
  setState(domid: number, state: DomainState, reason?: ShutdownReason): void;
  setName(rec: DomainRecord): void;
  setMemory(rec: DomainRecord): void;
  /** Write (or, with undefined, remove) a toolstack-owned key under the domain's home, e.g. 'memory/actual'. */
  writeDomainKey(domid: number, rel: string, value: string | undefined): void;
  /** A key under the domain's home, e.g. what its guest agent wrote ('control/feature-poweroff'). */
  readDomainKey?(domid: number, rel: string): string | undefined;
  release(rec: DomainRecord): void;
  /** Introduce a reattached domain the store does not know (a lost store, rebuilt); true when it did. */
  adopt?(rec: DomainRecord): boolean;
}

export const NULL_STORE_SINK: DomainStoreSink = {
  introduce() {},
  setState() {},
  setName() {},
  setMemory() {},
  writeDomainKey() {},
  release() {},
};
