// The switch's control channel: JSON lines over a Unix socket. The daemon owns
// the desired state (ports, policy, host port) and replays it to a restarted
// switch; the switch owns the links and the counters.

import { isIPv4, isIPv6 } from 'node:net';
import { type RateSpec, rateProblem } from './credit.ts';
import type { SponsorPair } from './policy.ts';
import type { PortCounters } from './switch-core.ts';

export type { RateSpec } from './credit.ts';

export interface VifPortSpec {
  /** `d<domid>.<devid>` */
  id: string;
  domid: number;
  devid: number;
  sponsor: string;
  mac: string;
  /** QEMU's `-netdev stream,server=on` Unix socket. */
  path: string;
  /** The vif's `rate=`: what the guest may send. Absent = no limit (also for a port re-added with one). */
  rate?: RateSpec;
  /** The domain's name, for flow records. */
  domain?: string;
  /** The IPv4 addresses the vif may send from (ip=); absent: the first one it uses. */
  ips?: string[];
  /** The IPv6 addresses the vif may send from (ip=); absent: the first global one it uses. */
  ips6?: string[];
  /** vlan=: the vif is an access port of this VLAN (1-4094); absent: the untagged VLAN. */
  vlan?: number;
}

export interface HostPortSpec {
  /** TAP interface name. */
  name: string;
  /** Host address with prefix, e.g. 10.200.0.1/24. */
  address: string;
  mtu: number;
}

export type ControlRequest =
  | { id: number; op: 'hello' }
  | { id: number; op: 'add-port'; port: VifPortSpec; waitMs?: number }
  | { id: number; op: 'remove-port'; portId: string }
  | { id: number; op: 'set-policy'; allow: SponsorPair[] }
  | { id: number; op: 'set-rate'; portId: string; rate: RateSpec | null }
  | { id: number; op: 'sponsor-rate'; sponsor: string; rate: RateSpec | null }
  | { id: number; op: 'host-port'; spec: HostPortSpec }
  | { id: number; op: 'stats' }
  | { id: number; op: 'ping' }
  | { id: number; op: 'audit-rules'; rules: Record<string, unknown> }
  | { id: number; op: 'audit-drain'; max?: number }
  | { id: number; op: 'capture-start'; portId: string; path: string; maxBytes: number }
  | { id: number; op: 'capture-stop'; portId: string };

export interface PortStatus {
  id: string;
  kind: 'vif' | 'host';
  sponsor: string;
  domid?: number;
  devid?: number;
  mac?: string;
  connected: boolean;
  /** How many times the link came up (1 = never dropped). */
  connects: number;
  counters: PortCounters;
  /** The vif's rate limit in force. */
  rate?: RateSpec;
}

export interface HostPortStatus {
  spec: HostPortSpec;
  up: boolean;
  error?: string;
}

export interface SwitchStats {
  pid: number;
  startedAt: number;
  ports: PortStatus[];
  hostPort?: HostPortStatus;
  macs: number;
  allow: SponsorPair[];
  /** Per-sponsor aggregate limits in force. */
  sponsorRates: Array<{ sponsor: string; rate: RateSpec }>;
  /** Flows tracked and the throttles and quarantines in force. */
  audit?: AuditStatus;
}

/** What audit-drain answers: the switch's flow records and rule events since the last drain. */
export type { AuditDrain } from './audit/engine.ts';

export interface AuditStatus {
  flows: number;
  enforced: Array<{ port: string; throttledUntil?: number; quarantinedUntil?: number; rule?: string }>;
}

export interface HelloResult {
  pid: number;
  startedAt: number;
  version: number;
  ports: string[];
}

export interface AddPortResult {
  connected: boolean;
}

export type ControlResponse = { id: number; ok: true; result?: unknown } | { id: number; ok: false; error: string };

/**
 * 2: vif ports forward only frames from their own MAC (anti-spoofing).
 * 3: rate limits per vif (add-port's rate, set-rate) and per sponsor (sponsor-rate).
 * 4: flow log and audit rules (audit-rules, audit-drain), IPv4 and ARP anti-spoofing (add-port's ips),
 *    packet capture (capture-start, capture-stop).
 * 5: VLANs (add-port's vlan; the host port a trunk); audit rules may switch the audit off (enabled: false);
 *    IPv6 anti-spoofing (add-port's ips6).
 * A daemon replaces a running switch of an older version instead of adopting it.
 */
export const CONTROL_VERSION = 5;

/** A control line longer than this is not from xenoded: the client is dropped. */
export const MAX_CONTROL_LINE = 1024 * 1024;

export class ControlError extends Error {
  /** The request's id, when it had one: the error reply carries it. */
  id = 0;
}

const OPS = new Set([
  'hello',
  'add-port',
  'remove-port',
  'set-policy',
  'set-rate',
  'sponsor-rate',
  'host-port',
  'stats',
  'ping',
  'audit-rules',
  'audit-drain',
  'capture-start',
  'capture-stop',
]);

function str(o: Record<string, unknown>, k: string, max = 256): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new ControlError(`${k} must be a string`);
  return v;
}

function int(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ControlError(`${k} must be a whole number`);
  return v;
}

function rateOf(v: unknown): RateSpec {
  const why = Array.isArray(v) ? 'rate must be {bytesPerSec, intervalUs}' : rateProblem(v);
  if (why) throw new ControlError(why);
  const r = v as RateSpec;
  return { bytesPerSec: r.bytesPerSec, intervalUs: r.intervalUs };
}

/** `rate` as set-rate and sponsor-rate carry it: a limit, or null for none; never left out. */
function rateOrNull(o: Record<string, unknown>): RateSpec | null {
  if (!('rate' in o)) throw new ControlError('rate is missing (null for no limit)');
  return o.rate === null ? null : rateOf(o.rate);
}

/**
 * One control line, checked: the daemon is the only client (the socket is
 * 0600), but the switch still refuses anything that is not a well-formed
 * request rather than act on half of it. Throws ControlError; `id` is the
 * request's id when it had one, for the error reply.
 */
export function parseControlRequest(line: string): ControlRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new ControlError('malformed request: not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ControlError('malformed request');
  const o = v as Record<string, unknown>;
  const id = int(o, 'id');
  const op = o.op;
  try {
    if (typeof op !== 'string' || !OPS.has(op)) throw new ControlError(`unknown op ${JSON.stringify(op)}`);
    switch (op) {
      case 'add-port': {
        const p = o.port;
        if (typeof p !== 'object' || p === null) throw new ControlError('port must be an object');
        const q = p as Record<string, unknown>;
        const spec: VifPortSpec = {
          id: str(q, 'id', 64),
          domid: int(q, 'domid'),
          devid: int(q, 'devid'),
          sponsor: str(q, 'sponsor', 64),
          mac: str(q, 'mac', 32),
          path: str(q, 'path', 4096),
        };
        if (q.rate !== undefined) spec.rate = rateOf(q.rate);
        if (q.domain !== undefined) spec.domain = str(q, 'domain', 64);
        if (q.ips !== undefined) {
          const ips = q.ips;
          if (!Array.isArray(ips) || ips.length > 16 || !ips.every((a) => typeof a === 'string' && isIPv4(a)))
            throw new ControlError('ips must be a list of at most 16 IPv4 addresses');
          spec.ips = ips as string[];
        }
        if (q.ips6 !== undefined) {
          const ips6 = q.ips6;
          if (!Array.isArray(ips6) || ips6.length > 16 || !ips6.every((a) => typeof a === 'string' && isIPv6(a)))
            throw new ControlError('ips6 must be a list of at most 16 IPv6 addresses');
          spec.ips6 = ips6 as string[];
        }
        if (q.vlan !== undefined) {
          const vlan = int(q, 'vlan');
          if (vlan < 1 || vlan > 4094) throw new ControlError('vlan must be from 1 to 4094');
          spec.vlan = vlan;
        }
        const waitMs = o.waitMs === undefined ? undefined : int(o, 'waitMs');
        return { id, op, port: spec, waitMs };
      }
      case 'remove-port':
        return { id, op, portId: str(o, 'portId', 64) };
      case 'set-policy': {
        const allow = o.allow;
        if (
          !Array.isArray(allow) ||
          !allow.every((x) => Array.isArray(x) && x.length === 2 && x.every((y) => typeof y === 'string'))
        )
          throw new ControlError('allow must be a list of sponsor pairs');
        return { id, op, allow: allow as SponsorPair[] };
      }
      case 'set-rate':
        return { id, op, portId: str(o, 'portId', 64), rate: rateOrNull(o) };
      case 'sponsor-rate':
        return { id, op, sponsor: str(o, 'sponsor', 64), rate: rateOrNull(o) };
      case 'host-port': {
        const h = o.spec;
        if (typeof h !== 'object' || h === null) throw new ControlError('spec must be an object');
        const q = h as Record<string, unknown>;
        return { id, op, spec: { name: str(q, 'name', 15), address: str(q, 'address', 64), mtu: int(q, 'mtu') } };
      }
      case 'audit-rules': {
        // Checked field by field by the switch (audit/rules.ts parseRules).
        const r = o.rules;
        if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new ControlError('rules must be an object');
        return { id, op, rules: r as Record<string, unknown> };
      }
      case 'audit-drain':
        return { id, op, max: o.max === undefined ? undefined : int(o, 'max') };
      case 'capture-start':
        return { id, op, portId: str(o, 'portId', 64), path: str(o, 'path', 4096), maxBytes: int(o, 'maxBytes') };
      case 'capture-stop':
        return { id, op, portId: str(o, 'portId', 64) };
      default:
        return { id, op } as ControlRequest;
    }
  } catch (e) {
    if (e instanceof ControlError) e.id = id;
    throw e;
  }
}
