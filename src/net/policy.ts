// The switch's policy hook: one decision per (source port, destination port,
// frame). Sponsor isolation is the first policy; audit, flow logging and rate
// rules wrap or chain FramePolicy without touching the forwarding code.

export type PortKind = 'vif' | 'host';

/** What a policy may know about a switch port. */
export interface PortInfo {
  /** Unique port name, e.g. `d3.0` (domain 3, vif 0) or `host`. */
  readonly id: string;
  readonly kind: PortKind;
  /** The domain's sponsor; `@host` for the host port. */
  readonly sponsor: string;
  readonly domid?: number;
  readonly devid?: number;
  readonly mac?: string;
  /** The domain's name, for flow records. */
  readonly domain?: string;
  /** The IPv4 addresses the vif may send from (its ip=); none: the first it uses, then only that. */
  readonly ips?: readonly string[];
  /** The IPv6 addresses the vif may send from (its ip=); none: the first global one it uses. */
  readonly ips6?: readonly string[];
  /** A vif's vlan= (1-4094): an access port of that VLAN. Absent: the untagged VLAN. The host port is a trunk. */
  readonly vlan?: number;
}

export type Verdict = 'forward' | 'drop';

export interface FramePolicy {
  /** Called for every frame on its way from `src` to `dst`; `frame` must not be kept or modified. */
  decide(src: PortInfo, dst: PortInfo, frame: Uint8Array): Verdict;
}

/**
 * The audit side of the policy (src/net/audit): it sees each frame a vif sends
 * once, after the MAC checks and before it is forwarded anywhere, and decides
 * for the source (connection limits, throttles, quarantine); and it sees each
 * frame delivered to a vif, for the flow log.
 */
export interface FrameAudit {
  /** `spoof`: a source IPv4 (or ARP sender) address that is not the vif's. */
  fromVif(src: PortInfo, frame: Uint8Array): 'forward' | 'drop' | 'reject' | 'spoof';
  /** The answer to a rejected frame (a TCP RST), sent back to its vif. */
  reply(frame: Uint8Array): Uint8Array | undefined;
  toVif(dst: PortInfo, frame: Uint8Array): void;
}

export const HOST_SPONSOR = '@host';

export type SponsorPair = readonly [string, string];

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\n${b}` : `${b}\n${a}`;
}

/**
 * Domains of different sponsors cannot exchange frames unless the admin allowed
 * the pair (both directions). The host port talks to every sponsor: it is the
 * infrastructure's own uplink, and the host does not route between guests.
 */
export class SponsorIsolation implements FramePolicy {
  private allowed = new Set<string>();

  constructor(pairs: readonly SponsorPair[] = []) {
    this.setAllowed(pairs);
  }

  setAllowed(pairs: readonly SponsorPair[]): void {
    this.allowed = new Set(pairs.map(([a, b]) => pairKey(a, b)));
  }

  allows(a: string, b: string): boolean {
    return a === b || a === HOST_SPONSOR || b === HOST_SPONSOR || this.allowed.has(pairKey(a, b));
  }

  decide(src: PortInfo, dst: PortInfo): Verdict {
    return this.allows(src.sponsor, dst.sponsor) ? 'forward' : 'drop';
  }
}
