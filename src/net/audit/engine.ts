// The switch's audit: every frame a vif sends or receives goes through here
// once. It keeps the flow table (flow-table.ts), applies the admin's rules
// (rules.ts) and says what to do with a frame a vif sends: forward it, drop it,
// or reject it (a refused TCP SYN is answered with a RST, rst.ts). Flow records
// and rule events pile up in an outbox the daemon drains. No I/O, no timers:
// the switch calls tick() once a second; tests drive it with a fake clock.
//
//   new-connection limits  a guest's SYN to a limited port takes a token of its
//                          sponsor's (or domain's) bucket; none left: refused
//   ACK symmetry           a TCP flow whose data runs maxUnackedBytes ahead of
//                          the peer's ACKs is throttled; a vif sending more than
//                          maxOneWayBytes per window on flows that get nothing
//                          back is throttled
//   SYN flood              more than maxHalfOpen unanswered SYNs per window
//   port scan              new connections to more than maxPorts (host, port)
//                          pairs, or maxHosts hosts, per window
//   throttle               at most throttle.pps packets a second, for holdSec
//   quarantine             nothing but ARP, for quarantineSec

import { dstMac, isGroupMac, parseFrame, TCP_ACK, TCP_SYN } from '../frame.ts';
import { macFromString } from '../mac.ts';
import type { PortInfo } from '../policy.ts';
import { type Flow, type FlowAction, FlowTable, type SwitchFlowRecord } from './flow-table.ts';
import { eui64LinkLocal, ipv6Hex, ipv6Text, isLinkLocal6, UNSPECIFIED6 } from './ipv6.ts';
import { newPeek, PEEK_ARP, PEEK_IPV4, PEEK_IPV6, type Peek, peek } from './peek.ts';
import { rstFor } from './rst.ts';
import { type AuditRules, type ConnLimitRule, defaultRules } from './rules.ts';

export type AuditVerdict = 'forward' | 'drop' | 'reject' | 'spoof';

export interface SwitchAuditEvent {
  time: number;
  domid: number;
  devid: number;
  sponsor: string;
  rule: string;
  action: FlowAction;
  detail: string;
}

export interface AuditDrain {
  flows: SwitchFlowRecord[];
  events: SwitchAuditEvent[];
  /** Records and events the outbox had no room for since the last drain. */
  lost: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

interface VifState {
  port: PortInfo;
  mac: number;
  /** The IPv4 addresses it may send from: its ip=, or the first it used (learned, then locked). */
  ips: Set<number>;
  /** The IPv6 addresses it may send from: its ip= ones, its EUI-64 link-local, and those it bound by using them. */
  ips6: Set<string>;
  /** It has an IPv6 link-local (other than the EUI-64 one) bound, and a global one (or ip= named them). */
  ll6Bound: boolean;
  global6Bound: boolean;
  /** Frames dropped as spoofed since the last tick, and the last address they claimed. */
  spoofed: number;
  spoofedIp: string;
  // Port-scan window.
  scanStart: number;
  dests: Set<string>;
  hosts: Set<number>;
  // SYN-flood window.
  synStart: number;
  halfOpen: number;
  // One-way window (ACK symmetry).
  oneWayStart: number;
  // Throttle and quarantine in force.
  throttledUntil: number;
  throttleRule: string;
  credit: number;
  creditAt: number;
  quarantinedUntil: number;
  quarantineRule: string;
  /** Connections refused per rule since the last tick (one event per rule and tick). */
  refused: Map<string, number>;
  /** Packets dropped by a throttle or quarantine since the last tick. */
  held: Map<string, number>;
}

const MAX_OUTBOX_FLOWS = 200_000;
const MAX_OUTBOX_EVENTS = 10_000;

function ipNumber(s: string): number {
  const [a = 0, b = 0, c = 0, d = 0] = s.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function ipText(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

function macOf(p: PortInfo): number {
  try {
    return p.mac === undefined ? Number.NaN : macFromString(p.mac);
  } catch {
    return Number.NaN;
  }
}

/** A vif's IPv6 binding: its ip= IPv6 addresses and EUI-64 link-local; learned bindings stay with a re-added port. */
function ipv6Binding(port: PortInfo, old: VifState | undefined): Pick<VifState, 'ips6' | 'll6Bound' | 'global6Bound'> {
  const mac = macOf(port);
  const given = (port.ips6 ?? []).map(ipv6Hex).filter((a): a is string => a !== undefined);
  const ips6 = new Set(given);
  if (!Number.isNaN(mac)) ips6.add(eui64LinkLocal(mac));
  let ll6Bound = given.some(isLinkLocal6);
  let global6Bound = given.some((a) => !isLinkLocal6(a));
  if (old) {
    for (const a of old.ips6) if (!global6Bound || isLinkLocal6(a)) ips6.add(a);
    ll6Bound ||= old.ll6Bound;
    global6Bound ||= old.global6Bound;
  }
  return { ips6, ll6Bound, global6Bound };
}

export interface AuditEngineOptions {
  /** Milliseconds since the epoch (Date.now by default): record times and every window. */
  now?: () => number;
}

export class AuditEngine {
  private rules: AuditRules;
  private readonly table: FlowTable;
  private readonly vifs = new Map<string, VifState>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private flows: SwitchFlowRecord[] = [];
  private events: SwitchAuditEvent[] = [];
  private lost = 0;
  // The last frame read: one frame flooded to several ports is read once.
  private lastFrame?: Uint8Array;
  private readonly pk: Peek = newPeek();
  private lastVif?: VifState;
  /** The clock when the last frame was first seen: one read per frame, however many ports it reaches. */
  private frameTime = 0;
  private exemptSet = new Set<string>();

  constructor(rules: AuditRules = defaultRules(), o: AuditEngineOptions = {}) {
    this.rules = rules;
    this.exemptSet = new Set(rules.exempt);
    this.now = o.now ?? Date.now;
    this.table = new FlowTable(rules.flows.windowSec * 1000, rules.flows.idleSec * 1000, rules.flows.maxFlowsPerVif);
  }

  get currentRules(): AuditRules {
    return this.rules;
  }

  /** New rules at once: limits that changed start with a full budget; throttles in force stay. */
  setRules(r: AuditRules): void {
    const was = new Map(this.rules.connLimits.map((l) => [l.name, JSON.stringify(l)]));
    const keep = new Set(r.connLimits.filter((l) => was.get(l.name) === JSON.stringify(l)).map((l) => l.name));
    this.rules = r;
    this.exemptSet = new Set(r.exempt);
    this.table.windowMs = r.flows.windowSec * 1000;
    this.table.idleMs = r.flows.idleSec * 1000;
    this.table.maxFlowsPerVif = r.flows.maxFlowsPerVif;
    for (const k of this.buckets.keys()) if (!keep.has(k.split('|')[0] as string)) this.buckets.delete(k);
  }

  private peek(frame: Uint8Array): Peek {
    if (frame !== this.lastFrame) {
      this.lastFrame = frame;
      peek(frame, this.pk);
      this.frameTime = this.now();
    }
    return this.pk;
  }

  private vif(port: PortInfo, now: number): VifState {
    const last = this.lastVif;
    if (last && last.port === port) return last;
    let v = this.vifs.get(port.id);
    if (!v || v.port !== port) {
      v = {
        port,
        mac: macOf(port),
        // A learned binding stays with the vif when its port is re-added.
        ips: port.ips?.length ? new Set(port.ips.map(ipNumber)) : (v?.ips ?? new Set()),
        ...ipv6Binding(port, v),
        spoofed: 0,
        spoofedIp: '',
        scanStart: now,
        dests: new Set(),
        hosts: new Set(),
        synStart: now,
        halfOpen: 0,
        oneWayStart: now,
        throttledUntil: v?.throttledUntil ?? 0,
        throttleRule: v?.throttleRule ?? '',
        credit: 0,
        creditAt: now,
        quarantinedUntil: v?.quarantinedUntil ?? 0,
        quarantineRule: v?.quarantineRule ?? '',
        refused: new Map(),
        held: new Map(),
      };
      this.vifs.set(port.id, v);
    }
    this.lastVif = v;
    return v;
  }

  private event(v: VifState, rule: string, action: FlowAction, detail: string, now: number): void {
    if (this.events.length >= MAX_OUTBOX_EVENTS) {
      this.lost++;
      return;
    }
    const p = v.port;
    this.events.push({ time: now, domid: p.domid ?? 0, devid: p.devid ?? 0, sponsor: p.sponsor, rule, action, detail });
  }

  private exempt(p: PortInfo): boolean {
    return this.exemptSet.has(p.sponsor);
  }

  /** A frame vif `src` sends (its MACs already checked). */
  fromVif(src: PortInfo, frame: Uint8Array): AuditVerdict {
    const p = this.peek(frame);
    const now = this.frameTime;
    const v = this.vif(src, now);
    const ip = p.kind === PEEK_IPV4;
    if (this.rules.antiSpoofing.enabled) {
      if ((ip || p.kind === PEEK_ARP) && this.spoofed(v, p, now)) return 'spoof';
      if (p.kind === PEEK_IPV6 && this.spoofed6(v, p, now)) return 'spoof';
    }
    if (v.quarantinedUntil > now) {
      // ARP still passes, so the guest stays reachable for whoever investigates.
      if (p.kind === PEEK_ARP) return 'forward';
      if (ip) {
        const f = this.table.lookup(src, true, p, now);
        this.table.count(f, true, frame.length, p, now);
        this.table.act(f, 'quarantine', v.quarantineRule);
      }
      v.held.set(v.quarantineRule, (v.held.get(v.quarantineRule) ?? 0) + 1);
      return 'drop';
    }
    if (!ip) return this.throttled(v, undefined, now) ? 'drop' : 'forward';
    const f = this.table.lookup(src, true, p, now);
    const isNew = this.table.lastNew;
    this.table.count(f, true, frame.length, p, now);
    if (f.overflow) return this.throttled(v, f, now) ? 'drop' : 'forward';
    const synOnly = p.tcp && (p.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (p.tcp) this.trackSeq(f, p.seq, p.flags, p.payload);
    if (this.exemptSet.size > 0 && this.exempt(src)) return 'forward';
    // A refused connection stays refused (its retransmitted SYNs too), without taking more tokens.
    if (f.verdict !== 'forward') {
      this.table.act(f, f.verdict === 'reject' ? 'reject' : 'drop', f.rule || this.limitFor(f)?.name || '');
      this.countRefused(v, f.rule || 'conn-limit');
      return f.verdict;
    }
    // New connections: the guest's SYN on a new flow, or the first packet of a UDP flow.
    if (isNew && f.guestFirst && (synOnly || p.udp)) {
      if (synOnly) {
        const lim = this.limitFor(f);
        if (lim && !this.take(lim, src, now)) {
          f.verdict = lim.action;
          this.table.act(f, lim.action, lim.name);
          this.countRefused(v, lim.name);
          return lim.action;
        }
      }
      this.watchScan(v, f, now);
      if (synOnly) this.watchSyn(v, now);
    }
    if (p.tcp && f.isnOut !== undefined && this.rules.ackSymmetry.enabled) {
      const unacked = f.sentOut - f.ackedByPeer;
      if (unacked > this.rules.ackSymmetry.maxUnackedBytes && f.throttledUntil <= now) {
        f.throttledUntil = now + this.rules.throttle.holdSec * 1000;
        f.credit = this.rules.throttle.pps;
        f.creditAt = now;
        this.event(
          v,
          'ack-symmetry',
          'throttle',
          `flow to ${ipText(f.remoteIp)}:${f.remotePort}: ${unacked} bytes sent without ACKs`,
          now,
        );
      }
    }
    if (v.throttledUntil <= now && f.throttledUntil <= now) return 'forward';
    return this.throttled(v, f, now) ? 'drop' : 'forward';
  }

  /**
   * A source address that is not the vif's: an IPv4 packet's source, an ARP's
   * sender. 0.0.0.0 passes for an ARP probe and a DHCP request (UDP 68 to 67); a
   * vif without ip= is bound to the first other address it uses.
   */
  private spoofed(v: VifState, p: Peek, now: number): boolean {
    const a = p.kind === PEEK_IPV4 ? p.srcIp : p.arpSenderIp;
    // An ARP that is not Ethernet/IPv4 claims nothing (the MAC check already passed).
    if (a < 0) return false;
    if (a === 0 && (p.kind === PEEK_ARP || (p.udp && p.sport === 68 && p.dport === 67))) return false;
    if (v.ips.has(a)) return false;
    if (v.ips.size === 0 && a !== 0) {
      v.ips.add(a);
      this.event(v, 'anti-spoofing', 'accept', `bound to ${ipText(a)} (the first address it used)`, now);
      return false;
    }
    v.spoofed++;
    v.spoofedIp = ipText(a);
    return true;
  }

  /**
   * IPv6: a source that is not the vif's (its ip=, its EUI-64 link-local, or the first
   * link-local and the first other address it used, bound then); :: only for ICMPv6
   * (duplicate address detection, MLD). Neighbour discovery: an advertisement's target
   * must be the vif's, link-layer address options its MAC. Router advertisements and
   * redirects from guests are dropped: a guest is not the network's router.
   */
  private spoofed6(v: VifState, p: Peek, now: number): boolean {
    const a = p.src6;
    let bad = '';
    if (a === UNSPECIFIED6) {
      if (p.icmp6 < 0) bad = ipv6Text(a);
    } else if (!v.ips6.has(a)) {
      const ll = isLinkLocal6(a);
      if (ll ? !v.ll6Bound : !v.global6Bound && a.slice(0, 2) !== 'ff') {
        v.ips6.add(a);
        if (ll) v.ll6Bound = true;
        else v.global6Bound = true;
        this.event(v, 'anti-spoofing', 'accept', `bound to ${ipv6Text(a)} (the first such address it used)`, now);
      } else bad = ipv6Text(a);
    }
    if (!bad && (p.icmp6 === 134 || p.icmp6 === 137))
      bad = `${ipv6Text(a)} (a ${p.icmp6 === 134 ? 'router advertisement' : 'redirect'})`;
    if (!bad && p.icmp6 === 136 && !v.ips6.has(p.ndTarget)) bad = `${ipv6Text(p.ndTarget)} (a neighbour advertisement)`;
    if (!bad && p.ndMacs.some((m) => m !== v.mac)) bad = `${ipv6Text(a)} (neighbour discovery naming another MAC)`;
    if (!bad) return false;
    v.spoofed++;
    v.spoofedIp = bad;
    return true;
  }

  /** The RST that answers a frame fromVif() rejected. */
  reply(frame: Uint8Array): Uint8Array | undefined {
    const p = parseFrame(frame);
    return p ? rstFor(frame, p) : undefined;
  }

  /** The guest's sequence space on a TCP flow (for ACK symmetry). */
  private trackSeq(f: Flow, seq: number, flags: number, payload: number): void {
    if (f.isnOut === undefined) f.isnOut = seq;
    const len = payload + (flags & TCP_SYN ? 1 : 0) + (flags & 0x01 ? 1 : 0);
    const rel = (seq - f.isnOut + len) >>> 0;
    // Within 2 GiB ahead: newer data; else a retransmission of older data.
    if (rel < 0x80000000 && rel > f.sentOut) f.sentOut = rel;
  }

  private limitFor(f: Flow): ConnLimitRule | undefined {
    if (f.proto !== 6) return undefined;
    for (const l of this.rules.connLimits) {
      if (!l.ports.includes(f.remotePort)) continue;
      if (l.sponsors && !l.sponsors.includes(f.port.sponsor)) continue;
      return l;
    }
    return undefined;
  }

  /** Take a token for a new connection under `l`; false when none is left. */
  private take(l: ConnLimitRule, p: PortInfo, now: number): boolean {
    const key = `${l.name}|${l.per === 'sponsor' ? `s:${p.sponsor}` : `d:${p.domid ?? p.id}`}`;
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: l.connections, at: now };
      this.buckets.set(key, b);
    }
    const rate = l.connections / (l.perSec * 1000);
    b.tokens = Math.min(l.connections, b.tokens + (now - b.at) * rate);
    b.at = now;
    // A hair under 1 still counts: float rounding must not refuse the connection that is due.
    if (b.tokens < 1 - 1e-9) return false;
    b.tokens = Math.max(0, b.tokens - 1);
    return true;
  }

  private countRefused(v: VifState, rule: string): void {
    v.refused.set(rule, (v.refused.get(rule) ?? 0) + 1);
  }

  private watchScan(v: VifState, f: Flow, now: number): void {
    const r = this.rules.portScan;
    if (!r.enabled) return;
    if (now - v.scanStart >= r.windowSec * 1000) {
      v.scanStart = now;
      v.dests.clear();
      v.hosts.clear();
    }
    // Bounded: once over the limit, more entries change nothing.
    if (v.dests.size <= r.maxPorts) v.dests.add(`${f.remoteIp}:${f.proto}:${f.remotePort}`);
    if (v.hosts.size <= r.maxHosts) v.hosts.add(f.remoteIp);
    if (v.dests.size > r.maxPorts || v.hosts.size > r.maxHosts) {
      const what =
        v.dests.size > r.maxPorts
          ? `new connections to ${v.dests.size} ports within ${r.windowSec} s`
          : `new connections to ${v.hosts.size} hosts within ${r.windowSec} s`;
      this.detected(v, 'port-scan', r.action, what, now);
      v.dests.clear();
      v.hosts.clear();
      v.scanStart = now;
    }
  }

  private watchSyn(v: VifState, now: number): void {
    const r = this.rules.synFlood;
    if (!r.enabled) return;
    if (now - v.synStart >= r.windowSec * 1000) {
      v.synStart = now;
      v.halfOpen = 0;
    }
    v.halfOpen++;
    if (v.halfOpen > r.maxHalfOpen) {
      this.detected(v, 'syn-flood', r.action, `${v.halfOpen} SYNs unanswered within ${r.windowSec} s`, now);
      v.halfOpen = 0;
      v.synStart = now;
    }
  }

  /** A detector fired: throttle or quarantine the vif (or only log), and say so. */
  private detected(v: VifState, rule: string, action: 'throttle' | 'quarantine' | 'log', what: string, now: number) {
    if (action === 'quarantine') {
      const already = v.quarantinedUntil > now;
      v.quarantinedUntil = now + this.rules.quarantineSec * 1000;
      v.quarantineRule = rule;
      if (!already) this.event(v, rule, 'quarantine', `${what}: quarantined for ${this.rules.quarantineSec} s`, now);
    } else if (action === 'throttle') {
      const already = v.throttledUntil > now;
      v.throttledUntil = now + this.rules.throttle.holdSec * 1000;
      v.throttleRule = rule;
      if (!already) {
        v.credit = this.rules.throttle.pps;
        v.creditAt = now;
        this.event(
          v,
          rule,
          'throttle',
          `${what}: throttled to ${this.rules.throttle.pps} packets/s for ${this.rules.throttle.holdSec} s`,
          now,
        );
      }
    } else this.event(v, rule, 'accept', `${what} (logged only)`, now);
  }

  /** Under a throttle (the vif's or the flow's) and out of packet credit: drop, and mark the flow. */
  private throttled(v: VifState, f: Flow | undefined, now: number): boolean {
    if (v.throttledUntil <= now && (!f || f.throttledUntil <= now)) return false;
    const pps = this.rules.throttle.pps;
    const spend = (o: { credit: number; creditAt: number }): boolean => {
      o.credit = Math.min(pps, o.credit + ((now - o.creditAt) * pps) / 1000);
      o.creditAt = now;
      if (o.credit < 1) return false;
      o.credit -= 1;
      return true;
    };
    let rule = '';
    if (v.throttledUntil > now && !spend(v)) rule = v.throttleRule;
    else if (f && f.throttledUntil > now && !spend(f)) rule = 'ack-symmetry';
    if (!rule) {
      if (f && (v.throttledUntil > now || f.throttledUntil > now))
        this.table.act(f, 'throttle', v.throttledUntil > now ? v.throttleRule : 'ack-symmetry');
      return false;
    }
    if (f) this.table.act(f, 'drop', rule);
    v.held.set(rule, (v.held.get(rule) ?? 0) + 1);
    return true;
  }

  /** A frame delivered to vif `dst` (counted only if it is for the vif's MAC or a group). */
  toVif(dst: PortInfo, frame: Uint8Array): void {
    if (frame.length < 14) return;
    const p = this.peek(frame);
    const now = this.frameTime;
    const v = this.vif(dst, now);
    const to = dstMac(frame);
    if (to !== v.mac && !isGroupMac(to)) return;
    if (p.kind !== PEEK_IPV4) return;
    const f = this.table.lookup(dst, false, p, now);
    this.table.count(f, false, frame.length, p, now);
    if (!p.tcp || f.overflow) return;
    if ((p.flags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && f.guestFirst && !f.synAck) {
      f.synAck = true;
      if (v.halfOpen > 0) v.halfOpen--;
    }
    if (p.flags & TCP_ACK && f.isnOut !== undefined) {
      const rel = (p.ack - f.isnOut) >>> 0;
      if (rel < 0x80000000 && rel > f.ackedByPeer) f.ackedByPeer = rel;
    }
  }

  /** Once a second: records of windows that ended, one-way checks, events of what was refused. */
  tick(): void {
    const now = this.now();
    const recs: SwitchFlowRecord[] = [];
    this.oneWay(now);
    this.table.sweep(now, recs);
    this.push(recs);
    for (const v of this.vifs.values()) {
      if (v.spoofed > 0) {
        const n = v.spoofed;
        this.event(
          v,
          'anti-spoofing',
          'drop',
          `${n} frame${n === 1 ? '' : 's'} from ${v.spoofedIp}, not its address`,
          now,
        );
        v.spoofed = 0;
      }
      for (const [rule, n] of v.refused) {
        const l = this.rules.connLimits.find((x) => x.name === rule);
        const limit = l ? ` (limit ${l.connections} per ${l.perSec} s per ${l.per}, ports ${l.ports.join(',')})` : '';
        this.event(v, rule, l?.action ?? 'reject', `refused ${n} new connection${n === 1 ? '' : 's'}${limit}`, now);
      }
      v.refused.clear();
      for (const [rule, n] of v.held) {
        const q = v.quarantinedUntil > now && rule === v.quarantineRule;
        this.event(v, rule, q ? 'quarantine' : 'drop', `${n} packet${n === 1 ? '' : 's'} dropped`, now);
      }
      v.held.clear();
      if (v.throttledUntil > 0 && v.throttledUntil <= now) {
        this.event(v, v.throttleRule, 'accept', 'throttle lifted', now);
        v.throttledUntil = 0;
      }
      if (v.quarantinedUntil > 0 && v.quarantinedUntil <= now) {
        this.event(v, v.quarantineRule, 'accept', 'quarantine lifted', now);
        v.quarantinedUntil = 0;
      }
    }
  }

  /** ACK symmetry per vif: bytes sent this window on flows that got nothing back. */
  private oneWay(now: number): void {
    const r = this.rules.ackSymmetry;
    const win = r.windowSec * 1000;
    const sums = new Map<string, number>();
    const flows = [...this.table.all()];
    for (const f of flows) {
      if (f.detPktsIn === 0 && f.detBytesOut > 0 && f.guestFirst)
        sums.set(f.port.id, (sums.get(f.port.id) ?? 0) + f.detBytesOut);
    }
    for (const v of this.vifs.values()) {
      const sum = sums.get(v.port.id) ?? 0;
      if (r.enabled && !this.exempt(v.port) && sum > r.maxOneWayBytes)
        this.detected(v, 'ack-symmetry', 'throttle', `${sum} bytes sent without anything coming back`, now);
      if (now - v.oneWayStart >= win) v.oneWayStart = now;
    }
    // Windows restart together (per vif start times differ by at most a tick).
    for (const f of flows) {
      const v = this.vifs.get(f.port.id);
      if (v && v.oneWayStart === now) {
        f.detBytesOut = 0;
        f.detPktsIn = 0;
      }
    }
  }

  private push(recs: SwitchFlowRecord[]): void {
    const room = MAX_OUTBOX_FLOWS - this.flows.length;
    if (recs.length > room) this.lost += recs.length - room;
    for (let i = 0; i < Math.min(room, recs.length); i++) this.flows.push(recs[i] as SwitchFlowRecord);
  }

  /** A vif went away: its flows end now. */
  removePort(id: string): void {
    const recs: SwitchFlowRecord[] = [];
    this.table.endPort(id, recs);
    this.push(recs);
    this.vifs.delete(id);
    this.lastVif = undefined;
  }

  /** Records and events so far; the outbox empties. */
  drain(max = 50_000): AuditDrain {
    const flows = this.flows.splice(0, max);
    const events = this.events.splice(0, max);
    const lost = this.lost;
    this.lost = 0;
    return { flows, events, lost };
  }

  /** What is in force on each vif now (for `stats`). */
  status(): Array<{ port: string; throttledUntil?: number; quarantinedUntil?: number; rule?: string }> {
    const now = this.now();
    const out = [];
    for (const v of this.vifs.values()) {
      if (v.throttledUntil > now || v.quarantinedUntil > now) {
        out.push({
          port: v.port.id,
          throttledUntil: v.throttledUntil > now ? v.throttledUntil : undefined,
          quarantinedUntil: v.quarantinedUntil > now ? v.quarantinedUntil : undefined,
          rule: v.quarantinedUntil > now ? v.quarantineRule : v.throttleRule,
        });
      }
    }
    return out;
  }

  /** Flows tracked now. */
  get flowCount(): number {
    return this.table.size;
  }
}
