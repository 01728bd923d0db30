// The admin's audit rules as the switch applies them: their grammar, defaults
// and checks. The daemon keeps them in `$XENODE_DIR/audit-rules.json`, checks
// them here (through the network feature) and sends them to the switch, which
// checks them again on arrival. docs/audit.md describes every field.

export type RuleAction = 'reject' | 'drop' | 'throttle' | 'quarantine' | 'log';

export interface ConnLimitRule {
  /** Shown in flow records and events, e.g. `smtp`. */
  name: string;
  /** TCP destination ports the limit counts new connections (SYNs) to. */
  ports: number[];
  /** One budget per sponsor (all its domains together) or per domain. */
  per: 'sponsor' | 'domain';
  /** At most this many new connections ... */
  connections: number;
  /** ... per this many seconds (a token bucket: `connections` at once, refilled evenly). */
  perSec: number;
  /** A refused SYN is answered with a TCP RST (`reject`) or silently dropped (`drop`). */
  action: 'reject' | 'drop';
  /** Only these sponsors (absent: everyone but `exempt`). */
  sponsors?: string[];
}

export interface AckSymmetryRule {
  enabled: boolean;
  /** A TCP flow whose sent data runs this far ahead of the ACKs coming back is throttled. */
  maxUnackedBytes: number;
  /** A vif sending more than this, per window, on flows that get nothing back is throttled. */
  maxOneWayBytes: number;
  windowSec: number;
}

export interface DetectorRule {
  enabled: boolean;
  windowSec: number;
  action: 'throttle' | 'quarantine' | 'log';
}

export interface SynFloodRule extends DetectorRule {
  /** SYNs without an answer (SYN-ACK) from the far side, per window. */
  maxHalfOpen: number;
}

export interface PortScanRule extends DetectorRule {
  /** Distinct (host, port) destinations a vif may try new connections to per window ... */
  maxPorts: number;
  /** ... and distinct hosts (a sweep). */
  maxHosts: number;
}

export interface AuditRules {
  /**
   * false: the switch keeps no flow log and applies no rule nor IPv4/ARP anti-spoofing (its MAC checks,
   * rate limits and sponsor isolation stay). For measuring what the audit costs (bench:net), or a host
   * that logs elsewhere.
   */
  enabled: boolean;
  flows: {
    /** One record per flow per this many seconds (AWS VPC flow logs: 60 or 600). */
    windowSec: number;
    /** A flow with no packet for this long is closed. */
    idleSec: number;
    /** Flows tracked per vif; beyond, a vif's new flows are counted in one overflow record. */
    maxFlowsPerVif: number;
  };
  connLimits: ConnLimitRule[];
  ackSymmetry: AckSymmetryRule;
  synFlood: SynFloodRule;
  portScan: PortScanRule;
  /** What `throttle` means: at most this many packets a second from the vif (or flow), for holdSec. */
  throttle: { pps: number; holdSec: number };
  /** How long a quarantined vif may send nothing but ARP. */
  quarantineSec: number;
  /** Sponsors no rule applies to (their flows are still logged). */
  exempt: string[];
  /**
   * A vif sends only from its IPv4 addresses (its ip=, else the first it uses,
   * then only that) and its ARP claims only those: others' addresses are dropped.
   */
  antiSpoofing: { enabled: boolean };
}

export function defaultRules(): AuditRules {
  return {
    enabled: true,
    flows: { windowSec: 60, idleSec: 30, maxFlowsPerVif: 16384 },
    // AWS throttles outbound port 25 by default; the seed asks for 1 per 10 s per sponsor.
    connLimits: [{ name: 'smtp', ports: [25, 465, 587], per: 'sponsor', connections: 1, perSec: 10, action: 'reject' }],
    ackSymmetry: { enabled: true, maxUnackedBytes: 16 << 20, maxOneWayBytes: 256 << 20, windowSec: 5 },
    synFlood: { enabled: true, maxHalfOpen: 256, windowSec: 10, action: 'throttle' },
    portScan: { enabled: true, maxPorts: 32, maxHosts: 64, windowSec: 10, action: 'throttle' },
    throttle: { pps: 50, holdSec: 60 },
    quarantineSec: 300,
    exempt: [],
    antiSpoofing: { enabled: true },
  };
}

export class RulesError extends Error {}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function known(o: Obj, keys: readonly string[], where: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new RulesError(`${where}: unknown field "${k}"`);
}

function num(o: Obj, k: string, d: number, min: number, max: number, where: string): number {
  const v = o[k];
  if (v === undefined) return d;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw new RulesError(`${where}.${k} must be a number from ${min} to ${max}`);
  return v;
}

function int(o: Obj, k: string, d: number, min: number, max: number, where: string): number {
  const v = num(o, k, d, min, max, where);
  if (!Number.isInteger(v)) throw new RulesError(`${where}.${k} must be a whole number`);
  return v;
}

function bool(o: Obj, k: string, d: boolean, where: string): boolean {
  const v = o[k];
  if (v === undefined) return d;
  if (typeof v !== 'boolean') throw new RulesError(`${where}.${k} must be true or false`);
  return v;
}

function oneOf<T extends string>(o: Obj, k: string, d: T, allowed: readonly T[], where: string): T {
  const v = o[k];
  if (v === undefined) return d;
  if (typeof v !== 'string' || !allowed.includes(v as T))
    throw new RulesError(`${where}.${k} must be one of ${allowed.join(', ')}`);
  return v as T;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function names(o: Obj, k: string, where: string): string[] | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 1024 || !v.every((s) => typeof s === 'string' && NAME.test(s)))
    throw new RulesError(`${where}.${k} must be a list of sponsor names`);
  return [...new Set(v as string[])];
}

function sub(o: Obj, k: string, where: string): Obj {
  const v = o[k];
  if (v === undefined) return {};
  if (!isObj(v)) throw new RulesError(`${where}.${k} must be an object`);
  return v;
}

const MAX = 2 ** 40;

function connLimit(v: unknown, i: number): ConnLimitRule {
  const where = `connLimits[${i}]`;
  if (!isObj(v)) throw new RulesError(`${where} must be an object`);
  known(v, ['name', 'ports', 'per', 'connections', 'perSec', 'action', 'sponsors'], where);
  const name = v.name;
  if (typeof name !== 'string' || !NAME.test(name)) throw new RulesError(`${where}.name must be a short name`);
  const ports = v.ports;
  if (
    !Array.isArray(ports) ||
    ports.length === 0 ||
    ports.length > 64 ||
    !ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)
  )
    throw new RulesError(`${where}.ports must be a list of 1 to 64 ports (1-65535)`);
  const r: ConnLimitRule = {
    name,
    ports: [...new Set(ports as number[])],
    per: oneOf(v, 'per', 'sponsor', ['sponsor', 'domain'], where),
    connections: int(v, 'connections', 1, 0, 1_000_000, where),
    perSec: num(v, 'perSec', 10, 0.001, 86400, where),
    action: oneOf(v, 'action', 'reject', ['reject', 'drop'], where),
  };
  const s = names(v, 'sponsors', where);
  if (s) r.sponsors = s;
  return r;
}

/**
 * The rules from JSON (a partial object: absent fields take their defaults),
 * checked field by field. Throws RulesError naming the first bad field.
 */
export function parseRules(v: unknown): AuditRules {
  const d = defaultRules();
  if (!isObj(v)) throw new RulesError('rules must be a JSON object');
  known(
    v,
    [
      'enabled',
      'flows',
      'connLimits',
      'ackSymmetry',
      'synFlood',
      'portScan',
      'throttle',
      'quarantineSec',
      'exempt',
      'antiSpoofing',
    ],
    'rules',
  );
  const f = sub(v, 'flows', 'flows');
  known(f, ['windowSec', 'idleSec', 'maxFlowsPerVif'], 'flows');
  const a = sub(v, 'ackSymmetry', 'ackSymmetry');
  known(a, ['enabled', 'maxUnackedBytes', 'maxOneWayBytes', 'windowSec'], 'ackSymmetry');
  const s = sub(v, 'synFlood', 'synFlood');
  known(s, ['enabled', 'maxHalfOpen', 'windowSec', 'action'], 'synFlood');
  const p = sub(v, 'portScan', 'portScan');
  known(p, ['enabled', 'maxPorts', 'maxHosts', 'windowSec', 'action'], 'portScan');
  const as = sub(v, 'antiSpoofing', 'antiSpoofing');
  known(as, ['enabled'], 'antiSpoofing');
  const t = sub(v, 'throttle', 'throttle');
  known(t, ['pps', 'holdSec'], 'throttle');
  const cl = v.connLimits;
  if (cl !== undefined && (!Array.isArray(cl) || cl.length > 64))
    throw new RulesError('connLimits must be a list of at most 64 limits');
  const limits = cl === undefined ? d.connLimits : (cl as unknown[]).map(connLimit);
  if (new Set(limits.map((l) => l.name)).size !== limits.length) throw new RulesError('connLimits: names must differ');
  const actions = ['throttle', 'quarantine', 'log'] as const;
  return {
    enabled: bool(v, 'enabled', d.enabled, 'rules'),
    flows: {
      windowSec: int(f, 'windowSec', d.flows.windowSec, 1, 3600, 'flows'),
      idleSec: int(f, 'idleSec', d.flows.idleSec, 1, 3600, 'flows'),
      maxFlowsPerVif: int(f, 'maxFlowsPerVif', d.flows.maxFlowsPerVif, 16, 1_000_000, 'flows'),
    },
    connLimits: limits,
    ackSymmetry: {
      enabled: bool(a, 'enabled', d.ackSymmetry.enabled, 'ackSymmetry'),
      maxUnackedBytes: int(a, 'maxUnackedBytes', d.ackSymmetry.maxUnackedBytes, 65536, MAX, 'ackSymmetry'),
      maxOneWayBytes: int(a, 'maxOneWayBytes', d.ackSymmetry.maxOneWayBytes, 1024, MAX, 'ackSymmetry'),
      windowSec: int(a, 'windowSec', d.ackSymmetry.windowSec, 1, 3600, 'ackSymmetry'),
    },
    synFlood: {
      enabled: bool(s, 'enabled', d.synFlood.enabled, 'synFlood'),
      maxHalfOpen: int(s, 'maxHalfOpen', d.synFlood.maxHalfOpen, 1, 1_000_000, 'synFlood'),
      windowSec: int(s, 'windowSec', d.synFlood.windowSec, 1, 3600, 'synFlood'),
      action: oneOf(s, 'action', d.synFlood.action, actions, 'synFlood'),
    },
    portScan: {
      enabled: bool(p, 'enabled', d.portScan.enabled, 'portScan'),
      maxPorts: int(p, 'maxPorts', d.portScan.maxPorts, 1, 65536, 'portScan'),
      maxHosts: int(p, 'maxHosts', d.portScan.maxHosts, 1, 1_000_000, 'portScan'),
      windowSec: int(p, 'windowSec', d.portScan.windowSec, 1, 3600, 'portScan'),
      action: oneOf(p, 'action', d.portScan.action, actions, 'portScan'),
    },
    throttle: {
      pps: int(t, 'pps', d.throttle.pps, 1, 1_000_000, 'throttle'),
      holdSec: int(t, 'holdSec', d.throttle.holdSec, 1, 86400, 'throttle'),
    },
    quarantineSec: int(v, 'quarantineSec', d.quarantineSec, 1, 86400 * 30, 'rules'),
    exempt: names(v, 'exempt', 'rules') ?? [],
    antiSpoofing: { enabled: bool(as, 'enabled', d.antiSpoofing.enabled, 'antiSpoofing') },
  };
}
