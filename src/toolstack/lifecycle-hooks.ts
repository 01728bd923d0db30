// What the lifecycle core calls in each feature: hooks at the points of a
// domain's life (admission, launch, reattach, teardown) and at daemon start and
// stop. The full feature contract (these plus API routes) is ToolstackPlugin in
// plugin.ts; the core imports only this half, so it never depends on the API.

import type { DiskSpec, DomainConfig } from '../config/types.ts';
import type { PinnedImage } from '../engine/disk-args.ts';
import type { QemuMachine } from '../engine/qemu-machine.ts';
import type { XenodeDirs } from './dirs.ts';
import type { Domain } from './domain.ts';
import type { Intent, IntentHost, IntentOp } from './intents.ts';
import type { DaemonLog } from './log.ts';
import type { MemoryController } from './memory-types.ts';
import type { Principal } from './principal.ts';
import type { SponsorLimits, SponsorPolicy } from './sponsors.ts';
import type { DomainStoreSink } from './store-sink.ts';

export interface LaunchContribution {
  /** Extra QEMU arguments (built by src/engine helpers, never by string here). */
  qemuArgs?: string[];
  /** Extra kernel command-line words for the guest. */
  cmdline?: string[];
}

/**
 * A saved machine a new domain starts from instead of booting (a template):
 * QEMU starts with `-incoming defer`, guest RAM from `ram`, and `incoming` loads
 * the device state. The create that asked owns it until `release`.
 */
export interface StartPoint {
  /** What the domain started from, as `create` reports it (the template's name). */
  label: string;
  ram: { path: string; shared: boolean };
  /** Descriptors QEMU inherits as its fds 3, 4, … */
  passFds: number[];
  /** The CPU model the saved state ran on. */
  cpu?: string;
  incoming(d: Domain, m: QemuMachine): Promise<{ running: boolean } | undefined>;
  /** Once the create is over, whatever its outcome (descriptors closed). Never throws. */
  release(): void;
}

export interface PluginHost {
  dirs: XenodeDirs;
  log: DaemonLog;
  store: DomainStoreSink;
  /** The admin's per-sponsor limits (quotas, bridge allow-lists). */
  sponsors: SponsorPolicy;
}

/** How a sponsor's config uses a host file. */
export type FileUse =
  | {
      kind: 'disk';
      write: boolean;
      /** The format QEMU is told: a volume is used only in the format it was made with. */
      format: 'raw' | 'qcow2';
    }
  | { kind: 'kernel' | 'ramdisk'; write: boolean };

/**
 * The gate between a sponsor and host files: a sponsor may name only files this
 * gate vouches for (volumes in its storage pools). Without a gate, none.
 */
export interface SponsorFileGate {
  /** The canonical path of `path` if `sponsor` may use it so; else a permission or not-found error. */
  sponsorFile(sponsor: string, path: string, use: FileUse): string;
}

/**
 * Who vouches for a sponsor's disk images (the storage gate): the chain it
 * checked, top first, for QEMU to be given as it is; undefined for a file that
 * is no volume (one the admin gave); throws to refuse.
 */
export interface DiskChainSource {
  diskChain(sponsor: string, path: string, format: DiskSpec['format']): PinnedImage[] | undefined;
}

/** Cumulative byte counters of one domain's devices (since its QEMU started). */
/** Cumulative counters since the domain's QEMU (or its switch port) started.
 *  Rx/Tx are the guest's view: Tx is what the guest sent. */
export interface IoCounters {
  diskReadBytes?: number;
  diskWriteBytes?: number;
  diskReadOps?: number;
  diskWriteOps?: number;
  netRxBytes?: number;
  netTxBytes?: number;
  netRxPackets?: number;
  netTxPackets?: number;
  /**
   * The same counters device by device, keyed by a name that changes whenever
   * the device's counters start again from zero (a new QEMU, a new switch
   * port): accounting tells a reset device from a removed one by it.
   */
  devices?: Record<string, DeviceIoCounters>;
}

export type DeviceIoCounters = Omit<IoCounters, 'devices'>;

/**
 * Optional interface a plugin (disks, network) implements to feed the charts;
 * the metrics feature's sampler finds it by duck typing.
 */
export interface IoCounterSource {
  ioCounters(d: Domain): Promise<IoCounters | undefined> | IoCounters | undefined;
}

export interface LifecycleHooks {
  /** The memory controller, offered by the one feature that drives memory targets. */
  readonly memoryController?: MemoryController;
  readonly name: string;
  /**
   * Before anything is made for a new domain (create, restore, incoming
   * migration), with the config already checked by the core: refuse what the
   * principal may not have (quotas, names). Synchronous, so racing creates
   * cannot both pass a limit. Throw to refuse.
   */
  admit?(cfg: DomainConfig, p: Principal): void;
  /**
   * A create (not a restore, not a restart) asks whether the domain can start
   * from a saved machine instead of booting (templates); undefined to boot.
   * A start point that then fails to load falls back to a boot.
   */
  startFrom?(cfg: DomainConfig, p: Principal): Promise<StartPoint | undefined>;
  /** A plugin that owns sponsors' host files (storage pools) offers this gate. */
  readonly fileGate?: SponsorFileGate;
  /** What a sponsor holds of this plugin's resources, for `quota-list`. */
  usage?(sponsor: string): Partial<Record<'volumes' | 'diskBytes', number>>;
  /** The admin changed a sponsor's limits (quota-set/-unset): apply its rate limits
   *  (RATE_KEYS) to the sponsor's running domains now. */
  onSponsorLimits?(sponsor: string, limits: SponsorLimits): Promise<void>;
  /** Once at daemon start (start helper processes, open files). */
  start?(host: PluginHost): Promise<void>;
  /** Before QEMU starts for a domain (create, restart with a new QEMU, restore). Throw to refuse. */
  beforeLaunch?(d: Domain): Promise<LaunchContribution | undefined>;
  /**
   * After QEMU is up and attached: before the guest runs on create; after it
   * runs again on restore and migration (failures there are only logged).
   */
  afterLaunch?(d: Domain, m: QemuMachine): Promise<void>;
  /** After a restarted daemon reattached to a running QEMU. */
  afterReattach?(d: Domain, m: QemuMachine): Promise<void>;
  /** When the domain is destroyed (QEMU already gone). Must not throw. */
  onTeardown?(d: Domain): Promise<void>;
  /** The journaled operations (intents.ts) this feature settles after a daemon restart. */
  readonly intentOps?: readonly IntentOp[];
  /**
   * After every domain is reattached: complete or roll back an operation of
   * intentOps an earlier daemon was killed in (`d` undefined: the domain is
   * gone). Returns a line for the log; removes the entry when done.
   */
  settleIntent?(host: IntentHost, d: Domain | undefined, intent: Intent): Promise<string | undefined>;
  /**
   * At reattach, for a domain still recorded as being created (normally torn
   * down): true to keep it, e.g. an incoming migration whose state has loaded.
   */
  keepUnfinished?(d: Domain, m: QemuMachine): Promise<boolean>;
  /** Daemon exit (domains keep running). */
  stop?(): Promise<void>;
  /**
   * Ask an agent in the guest (the QEMU guest agent) to power off or reboot the
   * guest its own way: true if one took the request, false if there is none.
   * Bounded by its own deadline; never throws (a hostile guest answers anything).
   */
  requestGuestPower?(d: Domain, kind: 'poweroff' | 'reboot'): Promise<boolean>;
  /**
   * Before a snapshot (save, migration): freeze the guest's file systems through
   * its agent. Returns the thaw, which the caller runs on every path; undefined
   * when there is no agent. Never throws.
   */
  quiesceGuest?(d: Domain): Promise<(() => Promise<void>) | undefined>;
}

// ---- network audit: the switch's flow records and rule actions (issue 17) ----
// The network feature runs the switch that sees the frames; the audit feature
// keeps the log and the admin's rules. They meet here, wired in plugins.ts.

/** What the switch did with a flow, and a rule's action on a vif. */
export type FlowAction = 'accept' | 'reject' | 'drop' | 'throttle' | 'quarantine';

/**
 * One flow (5-tuple) on one vif over one aggregation window. `src`/`sport` is
 * the side that sent the flow's first packet; Out is what the guest sent, In
 * what it received. Times in ms since the epoch.
 */
export interface FlowRecord {
  start: number;
  end: number;
  domid: number;
  devid: number;
  /** The domain's name when the record was logged ('' if unknown). */
  domain: string;
  sponsor: string;
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP). */
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  pktsOut: number;
  bytesOut: number;
  pktsIn: number;
  bytesIn: number;
  /** TCP flags seen (OR of every packet) each way. */
  flagsOut: number;
  flagsIn: number;
  action: FlowAction;
  /** The rule that took the action ('' for none). */
  rule: string;
}

/** A rule acting on a vif (throttle, quarantine, a refused connection, ...). */
export interface AuditEvent {
  time: number;
  domid: number;
  devid: number;
  sponsor: string;
  rule: string;
  action: FlowAction;
  detail: string;
}

/** Where the switch's records go (the audit feature's log). */
export interface NetAuditSink {
  flows(records: FlowRecord[]): void;
  events(events: AuditEvent[]): void;
}

/** The switch's audit side, offered by the network feature. */
export interface NetAuditLink {
  setAuditSink(sink: NetAuditSink): void;
  /**
   * Check the admin's rules (the switch's grammar) and put them in force now
   * and in every restarted switch. Returns them normalized; throws XenodeError.
   */
  setAuditRules(rules: unknown): Promise<unknown>;
}
