// The L2 learning switch without any I/O: ports hand it frames, it learns
// source MACs, picks the destination ports (known unicast, else flood), asks
// the policy, and calls each destination's send(). Testable by feeding frames.

import { dstMac, ETH_HEADER_LEN, isGroupMac, type MacInt, srcMac } from './frame.ts';
import type { FramePolicy, PortInfo } from './policy.ts';

/** Counted from the switch's side: rx = frames the port sent in, tx = frames the switch sent out to it. */
export interface PortCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Frames from this port that the policy refused, once per destination port. */
  policyDrops: number;
  /** Frames for this port dropped because it was disconnected or congested. */
  txDrops: number;
  /** Frames from this port too short to be Ethernet. */
  errors: number;
}

export function zeroCounters(): PortCounters {
  return { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, policyDrops: 0, txDrops: 0, errors: 0 };
}

export interface SwitchPort {
  readonly info: PortInfo;
  readonly counters: PortCounters;
  /** Queue `frame` (not kept beyond the call unless copied or referenced immutably); false = dropped. */
  send(frame: Uint8Array): boolean;
}

export interface SwitchOptions {
  /** Forget a learned MAC after this long without a frame from it (802.1D default: 300 s). */
  macAgeMs?: number;
  /** Learn at most this many MACs, so a guest cycling source MACs cannot grow the table without bound. */
  maxMacs?: number;
  now?: () => number;
}

interface MacEntry {
  port: SwitchPort;
  seen: number;
}

export interface MacTableEntry {
  mac: MacInt;
  port: string;
  ageMs: number;
}

export class SwitchCore {
  private readonly ports = new Map<string, SwitchPort>();
  private readonly macs = new Map<MacInt, MacEntry>();
  private readonly ageMs: number;
  private readonly maxMacs: number;
  private readonly now: () => number;

  constructor(
    public policy: FramePolicy,
    o: SwitchOptions = {},
  ) {
    this.ageMs = o.macAgeMs ?? 300_000;
    this.maxMacs = o.maxMacs ?? 8192;
    this.now = o.now ?? Date.now;
  }

  addPort(p: SwitchPort): void {
    const old = this.ports.get(p.info.id);
    if (old && old !== p) this.forgetPort(old);
    this.ports.set(p.info.id, p);
  }

  removePort(id: string): SwitchPort | undefined {
    const p = this.ports.get(id);
    if (!p) return undefined;
    this.ports.delete(id);
    this.forgetPort(p);
    return p;
  }

  port(id: string): SwitchPort | undefined {
    return this.ports.get(id);
  }

  allPorts(): SwitchPort[] {
    return [...this.ports.values()];
  }

  private forgetPort(p: SwitchPort): void {
    for (const [mac, e] of this.macs) if (e.port === p) this.macs.delete(mac);
  }

  /** A frame arrived on `src`. */
  input(src: SwitchPort, frame: Uint8Array): void {
    const c = src.counters;
    c.rxPackets++;
    c.rxBytes += frame.length;
    if (frame.length < ETH_HEADER_LEN) {
      c.errors++;
      return;
    }
    const now = this.now();
    const from = srcMac(frame);
    if (!isGroupMac(from)) this.learn(from, src, now);
    const to = dstMac(frame);
    if (!isGroupMac(to)) {
      const e = this.macs.get(to);
      if (e && now - e.seen <= this.ageMs) {
        // A frame for a MAC behind the port it came from needs no forwarding.
        if (e.port !== src) this.deliver(src, e.port, frame);
        return;
      }
      if (e) this.macs.delete(to);
    }
    for (const p of this.ports.values()) if (p !== src) this.deliver(src, p, frame);
  }

  private learn(mac: MacInt, port: SwitchPort, now: number): void {
    const e = this.macs.get(mac);
    if (e) {
      e.port = port;
      e.seen = now;
    } else if (this.macs.size < this.maxMacs) {
      this.macs.set(mac, { port, seen: now });
    }
  }

  private deliver(src: SwitchPort, dst: SwitchPort, frame: Uint8Array): void {
    if (this.policy.decide(src.info, dst.info, frame) === 'drop') {
      src.counters.policyDrops++;
      return;
    }
    if (dst.send(frame)) {
      dst.counters.txPackets++;
      dst.counters.txBytes += frame.length;
    } else dst.counters.txDrops++;
  }

  macTable(): MacTableEntry[] {
    const now = this.now();
    const out: MacTableEntry[] = [];
    for (const [mac, e] of this.macs) {
      if (now - e.seen <= this.ageMs) out.push({ mac, port: e.port.info.id, ageMs: now - e.seen });
    }
    return out;
  }
}
