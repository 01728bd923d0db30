// The L2 learning switch without any I/O: ports hand it frames, it charges
// them to the vif's and its sponsor's rate limits (credit.ts; out of credit, the
// port must stop reading until resume()), drops what a vif sends from a MAC
// that is not its own, learns source MACs, picks the destination ports (known
// unicast, else flood), asks the policy, and calls each destination's send().
// Testable by feeding frames, with a fake clock and timers.

import { CreditBucket, type RateSpec, rateProblem, sameRate } from './credit.ts';
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
import type { FrameAudit, FramePolicy, PortInfo } from './policy.ts';

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
  /**
   * Frames from this (vif) port dropped because their source MAC or IPv4 address, or their ARP sender, is not
   * its own, or because they carry a VLAN tag while the vif has vlan= (a guest may not pick its VLAN).
   */
  spoofDrops: number;
  /** Times this (vif) port had to stop reading because its rate limit, or its sponsor's, was out of credit. */
  rateHolds: number;
  /** Frames from this (vif) port the audit rules refused (connection limits, throttle, quarantine). */
  auditDrops: number;
}

export function zeroCounters(): PortCounters {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    policyDrops: 0,
    txDrops: 0,
    errors: 0,
    spoofDrops: 0,
    rateHolds: 0,
    auditDrops: 0,
  };
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
  /**
   * Credit is back after input() returned false: read again, starting with the
   * frame that was refused. A port that can be rate-limited must have it.
   */
  resume?(): void;
}

/** Arms a one-shot timer; returns its cancel function. */
export type TimerFn = (fn: () => void, ms: number) => () => void;

const realTimer: TimerFn = (fn, ms) => {
  // Never early: a timer that fires before the credit is due only re-arms itself.
  const t = setTimeout(fn, Math.ceil(ms));
  return () => clearTimeout(t);
};

/** A rate limit and the ports waiting for its credit. */
interface Limiter {
  bucket: CreditBucket;
  waiting: SwitchPort[];
  cancel?: () => void;
}

export interface SwitchOptions {
  /** Forget a learned MAC after this long without a frame from it (802.1D default: 300 s). */
  macAgeMs?: number;
  /** Learn at most this many MACs, so a guest cycling source MACs cannot grow the table without bound. */
  maxMacs?: number;
  /** Milliseconds, for MAC ageing and rate credit (monotonic by default). */
  now?: () => number;
  /** For the rate limits' credit timers (setTimeout by default). */
  timer?: TimerFn;
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
  private readonly timer: TimerFn;
  /** Per-vif limits (vif rate=), by port id. */
  private readonly portLimits = new Map<string, Limiter>();
  /** Per-sponsor aggregates over all the sponsor's vif ports. */
  private readonly sponsorLimits = new Map<string, Limiter>();
  /** Flow log and audit rules (src/net/audit): undefined = none. */
  audit?: FrameAudit;
  /** Packet captures by port id (net-capture): each sees what its vif sends and receives. */
  readonly captures = new Map<string, (frame: Uint8Array) => void>();

  constructor(
    public policy: FramePolicy,
    o: SwitchOptions = {},
  ) {
    this.ageMs = o.macAgeMs ?? 300_000;
    this.maxMacs = o.maxMacs ?? 8192;
    this.now = o.now ?? (() => performance.now());
    this.timer = o.timer ?? realTimer;
  }

  addPort(p: SwitchPort): void {
    const old = this.ports.get(p.info.id);
    if (old && old !== p) this.forgetPort(old);
    this.ports.set(p.info.id, p);
  }

  removePort(id: string): SwitchPort | undefined {
    const p = this.ports.get(id);
    const l = this.portLimits.get(id);
    if (l) {
      l.cancel?.();
      this.portLimits.delete(id);
    }
    if (!p) return undefined;
    this.ports.delete(id);
    this.forgetPort(p);
    for (const s of this.sponsorLimits.values()) s.waiting = s.waiting.filter((w) => w !== p);
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

  // ---- rate limits ------------------------------------------------------------

  /** Limit what vif port `id` sends (undefined: no limit); applies at once, also to a waiting port. */
  setPortRate(id: string, rate: RateSpec | undefined): void {
    this.setLimit(this.portLimits, id, rate);
  }

  portRate(id: string): RateSpec | undefined {
    return this.portLimits.get(id)?.bucket.rate;
  }

  /** Limit what all of `sponsor`'s vif ports send together (undefined: no limit). */
  setSponsorRate(sponsor: string, rate: RateSpec | undefined): void {
    this.setLimit(this.sponsorLimits, sponsor, rate);
  }

  sponsorRates(): Array<{ sponsor: string; rate: RateSpec }> {
    return [...this.sponsorLimits].map(([sponsor, l]) => ({ sponsor, rate: l.bucket.rate }));
  }

  private setLimit(map: Map<string, Limiter>, key: string, rate: RateSpec | undefined): void {
    if (rate !== undefined) {
      const why = rateProblem(rate);
      if (why) throw new RangeError(why);
    }
    const l = map.get(key);
    if (l && sameRate(l.bucket.rate, rate)) return;
    if (rate === undefined) {
      if (!l) return;
      map.delete(key);
    } else if (!l) {
      map.set(key, { bucket: new CreditBucket(rate, this.now()), waiting: [] });
      return;
    } else l.bucket.reset(rate, this.now());
    // Those waiting for the old credit ask again now.
    this.wake(l);
  }

  /** Charge `size` bytes from vif `src` to its limits: true = go, false = hold it and wait for resume(). */
  private admit(src: SwitchPort, size: number): boolean {
    const now = this.now();
    const pl = this.portLimits.get(src.info.id);
    if (pl && !pl.bucket.check(size, now)) return this.hold(pl, src, now);
    const sl = this.sponsorLimits.get(src.info.sponsor);
    if (sl && !sl.bucket.check(size, now)) return this.hold(sl, src, now);
    pl?.bucket.take(size);
    sl?.bucket.take(size);
    return true;
  }

  private hold(l: Limiter, p: SwitchPort, now: number): false {
    p.counters.rateHolds++;
    if (!l.waiting.includes(p)) l.waiting.push(p);
    if (!l.cancel) {
      const at = l.bucket.waitUntil ?? now;
      l.cancel = this.timer(() => {
        l.cancel = undefined;
        this.wake(l);
      }, at - now);
    }
    return false;
  }

  private wake(l: Limiter): void {
    l.cancel?.();
    l.cancel = undefined;
    const ws = l.waiting;
    l.waiting = [];
    // Whoever went first last time goes last now, so the ports of one sponsor take turns.
    if (ws.length > 1) ws.push(ws.shift() as SwitchPort);
    for (const p of ws) if (this.ports.get(p.info.id) === p) p.resume?.();
  }

  // ---- forwarding -------------------------------------------------------------

  /**
   * A frame arrived on `src`. false: `src` is out of rate credit and the frame
   * was not taken; the port keeps it, stops reading, and offers it again when
   * the core calls its resume() (back-pressure toward the guest, never a drop).
   */
  input(src: SwitchPort, frame: Uint8Array): boolean {
    // Charged before any check, as netback does: runts and spoofed frames cost credit too.
    if (src.info.kind === 'vif' && (this.portLimits.size > 0 || this.sponsorLimits.size > 0)) {
      if (!this.admit(src, frame.length)) return false;
    }
    if (this.captures.size > 0) this.captures.get(src.info.id)?.(frame);
    const c = src.counters;
    c.rxPackets++;
    c.rxBytes += frame.length;
    if (frame.length < ETH_HEADER_LEN) {
      c.errors++;
      return true;
    }
    const from = srcMac(frame);
    const own = src.sourceMac;
    // Anti-spoofing: a vif sends only from its own MAC, so it can never be learned
    // as the port of another domain's MAC (and pull that domain's traffic).
    if (own !== undefined && (from !== own || (isArp(frame) && !arpSenderOk(frame, own)))) {
      c.spoofDrops++;
      return true;
    }
    // VLANs (vlan=): a vif is an access port of its VLAN (0: the untagged one), the host port a trunk.
    const tagged = isTagged(frame);
    let vlan = 0;
    let bare = frame;
    if (src.info.kind === 'vif') {
      vlan = src.info.vlan ?? 0;
      // A guest on a VLAN sends untagged frames: a tag of its own would pick another VLAN.
      if (tagged && vlan !== 0) {
        c.spoofDrops++;
        return true;
      }
    } else if (tagged && frame[12] === VLAN_HI && frame[13] === VLAN_LO && frame.length >= ETH_HEADER_LEN + 4) {
      const vid = (((frame[14] as number) & 0x0f) << 8) | (frame[15] as number);
      // VID 0 is a priority tag: the untagged VLAN, passed on as it is.
      if (vid !== 0) {
        vlan = vid;
        bare = untag(frame);
      }
    }
    if (this.audit && src.info.kind === 'vif') {
      const v = this.audit.fromVif(src.info, frame);
      if (v === 'spoof') {
        c.spoofDrops++;
        return true;
      }
      if (v !== 'forward') {
        c.auditDrops++;
        const rst = v === 'reject' ? this.audit.reply(frame) : undefined;
        if (rst && src.send(rst)) {
          c.txPackets++;
          c.txBytes += rst.length;
          this.audit.toVif(src.info, rst);
          if (this.captures.size > 0) this.captures.get(src.info.id)?.(rst);
        }
        return true;
      }
    }
    const now = this.now();
    if (!isGroupMac(from)) this.learn(from, src, now);
    const to = dstMac(frame);
    // What the trunk (host port) gets: VLAN n tagged; a guest's own tagged frame not at all (the host would
    // read its tag as a VLAN); else the frame as it is.
    let trunk: Uint8Array | undefined;
    const forTrunk = (): Uint8Array | undefined => {
      if (vlan === 0) return tagged && src.info.kind === 'vif' ? undefined : frame;
      if (src.info.kind !== 'vif') return frame;
      trunk ??= tag(frame, vlan);
      return trunk;
    };
    if (!isGroupMac(to)) {
      const e = this.macs.get(to);
      if (e && now - e.seen <= this.ageMs) {
        // A frame for a MAC behind the port it came from needs no forwarding.
        if (e.port === src) return true;
        // Learned in another VLAN (the host's MAC is in several): flood this frame's VLAN instead.
        if (inVlan(e.port, vlan)) {
          this.deliverIn(src, e.port, bare, forTrunk);
          return true;
        }
      } else if (e) this.macs.delete(to);
    }
    for (const p of this.ports.values()) if (p !== src && inVlan(p, vlan)) this.deliverIn(src, p, bare, forTrunk);
    return true;
  }

  /** Deliver to `dst`, a member of the frame's VLAN: a vif gets it untagged, the trunk from `forTrunk`. */
  private deliverIn(src: SwitchPort, dst: SwitchPort, bare: Uint8Array, forTrunk: () => Uint8Array | undefined): void {
    if (dst.info.kind === 'vif') this.deliver(src, dst, bare);
    else {
      const f = forTrunk();
      if (f) this.deliver(src, dst, f);
    }
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
      if (this.audit && dst.info.kind === 'vif') this.audit.toVif(dst.info, frame);
      if (this.captures.size > 0) this.captures.get(dst.info.id)?.(frame);
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

/** 802.1Q, 802.1ad and the older QinQ TPID: what a switch reads as a VLAN tag. */
function isTagged(f: Uint8Array): boolean {
  const hi = f[12];
  const lo = f[13];
  return (hi === VLAN_HI && lo === VLAN_LO) || (hi === 0x88 && lo === 0xa8) || (hi === 0x91 && lo === 0x00);
}

/** A vif is in one VLAN (0: untagged); the host port is a trunk of all of them. */
function inVlan(p: SwitchPort, vlan: number): boolean {
  return p.info.kind !== 'vif' || (p.info.vlan ?? 0) === vlan;
}

/** `f` with an 802.1Q tag of `vid` after its MACs (priority 0). */
function tag(f: Uint8Array, vid: number): Uint8Array {
  const out = new Uint8Array(f.length + 4);
  out.set(f.subarray(0, 12), 0);
  out[12] = VLAN_HI;
  out[13] = VLAN_LO;
  out[14] = (vid >> 8) & 0x0f;
  out[15] = vid & 0xff;
  out.set(f.subarray(12), 16);
  return out;
}

/** `f` without its outer tag. */
function untag(f: Uint8Array): Uint8Array {
  const out = new Uint8Array(f.length - 4);
  out.set(f.subarray(0, 12), 0);
  out.set(f.subarray(16), 12);
  return out;
}

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
