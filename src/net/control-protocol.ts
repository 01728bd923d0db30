// The switch's control channel: JSON lines over a Unix socket. The daemon owns
// the desired state (ports, policy, host port) and replays it to a restarted
// switch; the switch owns the links and the counters.

import type { SponsorPair } from './policy.ts';
import type { PortCounters } from './switch-core.ts';

export interface VifPortSpec {
  /** `d<domid>.<devid>` */
  id: string;
  domid: number;
  devid: number;
  sponsor: string;
  mac: string;
  /** QEMU's `-netdev stream,server=on` Unix socket. */
  path: string;
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
  | { id: number; op: 'host-port'; spec: HostPortSpec }
  | { id: number; op: 'stats' }
  | { id: number; op: 'ping' };

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
 * 2: vif ports forward only frames from their own MAC (anti-spoofing). A daemon
 * replaces a running switch of an older version instead of adopting it.
 */
export const CONTROL_VERSION = 2;
