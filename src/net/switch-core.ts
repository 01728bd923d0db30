// The L2 learning switch without any I/O: ports hand it frames, it drops what
// a vif sends from a MAC that is not its own, learns source MACs, picks the
// destination ports (known unicast, else flood), asks the policy, and calls
// each destination's send(). Testable by feeding frames.

import {
  dstMac,
  ETH_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_VLAN,
  isGroupMac,
  type MacInt,
  macAt,
  srcMac,
} from './frame.ts';
import { macFromString } from './mac.ts';
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
  /** Frames from this (vif) port dropped because their source MAC, or their ARP sender MAC, is not its own. */
  spoofDrops: number;
}

export function zeroCounters(): PortCounters {
  return { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, policyDrops: 0, txDrops: 0, errors: 0, spoofDrops: 0 };
}

/**
 * The one source MAC a port may send from: its vif's MAC. undefined = any (the
 * host port: the host is trusted and may have several). A vif without a valid
 * MAC gets NaN, which equals nothing, so all it sends is dropped.
 */
export function sourceMacOf(info: PortInfo): MacInt | undefined {
  if (info.kind === 'host') return undefined;
  try {
    return info.mac === undefined ? Number.NaN : macFromString(info.mac);
  } catch {
    return Number.NaN;
  }
}

export interface SwitchPort {
  readonly info: PortInfo;
  readonly counters: PortCounters;
  /** From sourceMacOf(info): the only source MAC frames from this port may carry (undefined = any). */
  readonly sourceMac: MacInt | undefined;
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
    const from = srcMac(frame);
    const own = src.sourceMac;
    // Anti-spoofing: a vif sends only from its own MAC, so it can never be learned
    // as the port of another domain's MAC (and pull that domain's traffic).
    if (own !== undefined && (from !== own || (isArp(frame) && !arpSenderOk(frame, own)))) {
      c.spoofDrops++;
      return;
    }
    const now = this.now();
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

const ARP_HI = ETHERTYPE_ARP >> 8;
const ARP_LO = ETHERTYPE_ARP & 0xff;
const VLAN_HI = ETHERTYPE_VLAN >> 8;
const VLAN_LO = ETHERTYPE_VLAN & 0xff;

/** ARP, untagged or behind one 802.1Q tag: byte compares, no parsing, on the hot path. */
function isArp(f: Uint8Array): boolean {
  if (f[12] === ARP_HI && f[13] === ARP_LO) return true;
  return f[12] === VLAN_HI && f[13] === VLAN_LO && f[16] === ARP_HI && f[17] === ARP_LO;
}

/**
 * The ARP's sender hardware address is `mac`. An ARP that ends before that
 * address claims nothing (every receiver discards it), so it passes.
 */
function arpSenderOk(f: Uint8Array, mac: MacInt): boolean {
  // 8 bytes into the ARP header, which follows 14 bytes of Ethernet (18 with a tag).
  const off = (f[12] === VLAN_HI ? ETH_HEADER_LEN + 4 : ETH_HEADER_LEN) + 8;
  return f.length < off + 6 || macAt(f, off) === mac;
}
