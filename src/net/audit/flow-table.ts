// Flows as the switch sees them: one entry per (vif, protocol, guest address
// and port, peer address and port), fed the parsed frames a vif sends (out) and
// receives (in). Each entry counts packets, bytes and TCP flags each way for
// the current window and becomes one flow record when the window ends, when it
// goes idle, or when the TCP connection closes (AWS VPC flow logs' model).
// A vif holds at most maxFlowsPerVif entries; beyond, its new flows are counted
// in one overflow entry, so a guest cannot grow the table without bound.

import { ipv4ToString, TCP_FIN, TCP_RST } from '../frame.ts';
import type { PortInfo } from '../policy.ts';
import type { Peek } from './peek.ts';

export type FlowAction = 'accept' | 'reject' | 'drop' | 'throttle' | 'quarantine';

/** Worst first: the action a record shows is the most severe taken in its window. */
const SEVERITY: Record<FlowAction, number> = { accept: 0, throttle: 1, drop: 2, reject: 3, quarantine: 4 };

/** A flow record as the switch emits it (the daemon adds the domain's name). */
export interface SwitchFlowRecord {
  start: number;
  end: number;
  domid: number;
  devid: number;
  domain: string;
  sponsor: string;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  pktsOut: number;
  bytesOut: number;
  pktsIn: number;
  bytesIn: number;
  flagsOut: number;
  flagsIn: number;
  action: FlowAction;
  rule: string;
}

export interface Flow {
  readonly key: string;
  readonly port: PortInfo;
  readonly proto: number;
  readonly localIp: number;
  readonly localPort: number;
  readonly remoteIp: number;
  readonly remotePort: number;
  /** The guest sent the first packet (it is the flow's source). */
  readonly guestFirst: boolean;
  readonly overflow: boolean;
  created: number;
  lastSeen: number;
  // This window's counts (reset when a record is emitted).
  winFirst: number;
  pktsOut: number;
  bytesOut: number;
  pktsIn: number;
  bytesIn: number;
  flagsOut: number;
  flagsIn: number;
  action: FlowAction;
  rule: string;
  // Connection state.
  finOut: boolean;
  finIn: boolean;
  rst: boolean;
  /** The first sequence number the guest sent: what its data and the peer's ACKs are measured from. */
  isnOut?: number;
  /** Bytes of sequence space the guest has sent, and the peer has acknowledged. */
  sentOut: number;
  ackedByPeer: number;
  synAck: boolean;
  /** The verdict for every packet of the flow (a refused connection stays refused). */
  verdict: 'forward' | 'drop' | 'reject';
  // For ACK symmetry: this detection window's bytes out and packets in.
  detBytesOut: number;
  detPktsIn: number;
  /** Until when the flow itself is throttled (ms), and its packet credit. */
  throttledUntil: number;
  credit: number;
  creditAt: number;
}

/** A flow's key within its vif: seven UTF-16 units, cheap to build and to hash. */
function keyOf(proto: number, lip: number, lport: number, rip: number, rport: number): string {
  return String.fromCharCode(proto, lip >>> 16, lip & 0xffff, lport, rip >>> 16, rip & 0xffff, rport);
}

const OVERFLOW_KEY = 'overflow';

export class FlowTable {
  /** Flows by vif, then by key. */
  private readonly vifs = new Map<string, Map<string, Flow>>();
  private count_ = 0;

  constructor(
    public windowMs: number,
    public idleMs: number,
    public maxFlowsPerVif: number,
  ) {}

  get size(): number {
    return this.count_;
  }

  /** Whether the last lookup() made its flow (kept here: no object per frame). */
  lastNew = false;
  private lastPort?: PortInfo;
  private lastMap?: Map<string, Flow>;

  /**
   * The flow an IPv4 frame (peeked as `p`) belongs to, made if new (then
   * lastNew is true). `out`: the vif sent it; else the vif receives it.
   */
  lookup(port: PortInfo, out: boolean, p: Peek, now: number): Flow {
    let m = this.lastPort === port ? this.lastMap : this.vifs.get(port.id);
    if (!m) {
      m = new Map();
      this.vifs.set(port.id, m);
    }
    this.lastPort = port;
    this.lastMap = m;
    const lip = out ? p.srcIp : p.dstIp;
    const lport = out ? p.sport : p.dport;
    const rip = out ? p.dstIp : p.srcIp;
    const rport = out ? p.dport : p.sport;
    const key = keyOf(p.proto, lip, lport, rip, rport);
    const f = m.get(key);
    this.lastNew = false;
    if (f) return f;
    if (m.size >= this.maxFlowsPerVif) {
      return m.get(OVERFLOW_KEY) ?? this.make(m, OVERFLOW_KEY, port, 0, 0, 0, 0, 0, out, now, true);
    }
    this.lastNew = true;
    return this.make(m, key, port, p.proto, lip, lport, rip, rport, out, now, false);
  }

  private make(
    m: Map<string, Flow>,
    key: string,
    port: PortInfo,
    proto: number,
    localIp: number,
    localPort: number,
    remoteIp: number,
    remotePort: number,
    guestFirst: boolean,
    now: number,
    overflow: boolean,
  ): Flow {
    const f: Flow = {
      key,
      port,
      proto,
      localIp,
      localPort,
      remoteIp,
      remotePort,
      guestFirst,
      overflow,
      created: now,
      lastSeen: now,
      winFirst: now,
      pktsOut: 0,
      bytesOut: 0,
      pktsIn: 0,
      bytesIn: 0,
      flagsOut: 0,
      flagsIn: 0,
      action: 'accept',
      rule: '',
      finOut: false,
      finIn: false,
      rst: false,
      sentOut: 0,
      ackedByPeer: 0,
      synAck: false,
      verdict: 'forward',
      detBytesOut: 0,
      detPktsIn: 0,
      throttledUntil: 0,
      credit: 0,
      creditAt: 0,
    };
    m.set(key, f);
    this.count_++;
    return f;
  }

  /** Count one packet of `len` bytes on `f`. */
  count(f: Flow, out: boolean, len: number, p: Peek, now: number): void {
    if (f.pktsOut + f.pktsIn === 0) f.winFirst = now;
    f.lastSeen = now;
    const flags = p.tcp ? p.flags : 0;
    if (out) {
      f.pktsOut++;
      f.bytesOut += len;
      f.detBytesOut += len;
      f.flagsOut |= flags;
      if (flags & TCP_FIN) f.finOut = true;
    } else {
      f.pktsIn++;
      f.bytesIn += len;
      f.detPktsIn++;
      f.flagsIn |= flags;
      if (flags & TCP_FIN) f.finIn = true;
    }
    if (flags & TCP_RST) f.rst = true;
  }

  /** Mark what was done to a packet of `f`: the record keeps the most severe. */
  act(f: Flow, action: FlowAction, rule: string): void {
    if (SEVERITY[action] >= SEVERITY[f.action]) {
      f.action = action;
      f.rule = rule;
    }
  }

  flowsOf(portId: string): Flow[] {
    return [...(this.vifs.get(portId)?.values() ?? [])];
  }

  *all(): Generator<Flow> {
    for (const m of this.vifs.values()) yield* m.values();
  }

  /**
   * Records of flows whose window ended, that went idle or that closed (a
   * closed connection lingers 2 s for its last ACKs); those end.
   */
  sweep(now: number, out: SwitchFlowRecord[]): void {
    for (const [id, m] of this.vifs) {
      for (const [key, f] of m) {
        const closed = f.rst || (f.finOut && f.finIn);
        const idle = now - f.lastSeen >= (closed ? 2000 : this.idleMs);
        if (idle) {
          this.emit(f, out);
          m.delete(key);
          this.count_--;
        } else if (now - f.winFirst >= this.windowMs) this.emit(f, out);
      }
      if (m.size === 0) this.vifs.delete(id);
    }
    this.lastPort = undefined;
    this.lastMap = undefined;
  }

  /** Every flow of a vif ends now (its port went away). */
  endPort(portId: string, out: SwitchFlowRecord[]): void {
    const m = this.vifs.get(portId);
    if (!m) return;
    for (const f of m.values()) this.emit(f, out);
    this.count_ -= m.size;
    this.vifs.delete(portId);
    this.lastPort = undefined;
    this.lastMap = undefined;
  }

  private emit(f: Flow, out: SwitchFlowRecord[]): void {
    if (f.pktsOut + f.pktsIn === 0) return;
    const local = { ip: f.overflow ? '' : ipv4ToString(f.localIp), port: f.localPort };
    const remote = { ip: f.overflow ? '' : ipv4ToString(f.remoteIp), port: f.remotePort };
    const [s, d] = f.guestFirst ? [local, remote] : [remote, local];
    out.push({
      start: f.winFirst,
      end: f.lastSeen,
      domid: f.port.domid ?? 0,
      devid: f.port.devid ?? 0,
      domain: f.port.domain ?? '',
      sponsor: f.port.sponsor,
      proto: f.proto,
      src: s.ip,
      dst: d.ip,
      sport: s.port,
      dport: d.port,
      pktsOut: f.pktsOut,
      bytesOut: f.bytesOut,
      pktsIn: f.pktsIn,
      bytesIn: f.bytesIn,
      flagsOut: f.flagsOut,
      flagsIn: f.flagsIn,
      action: f.action,
      rule: f.overflow ? 'flow-table-full' : f.rule,
    });
    f.pktsOut = f.bytesOut = f.pktsIn = f.bytesIn = 0;
    f.flagsOut = f.flagsIn = 0;
    f.action = 'accept';
    f.rule = '';
  }
}
