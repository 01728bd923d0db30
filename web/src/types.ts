// The API's JSON as the browser sees it (mirrors src/api/views.ts and
// src/api/routes-live.ts; the UI is a client like any other).

export type DomainState = 'creating' | 'running' | 'paused' | 'shutdown' | 'crashed' | 'dying';

export interface BootInfo {
  accel: string;
  accelReason: string;
  machine: string;
  kernel: string;
  initrd?: string;
  cmdline: string;
  qemuBinary: string;
}

export interface DomainView {
  domid: number;
  name: string;
  uuid: string;
  sponsor: string;
  state: DomainState;
  stateLetters: string;
  memMiB: number;
  maxMiB: number;
  vcpus: number;
  cpuSeconds: number;
  startTime: number;
  uptimeSeconds: number;
  pid?: number;
  boot?: BootInfo;
  config?: Record<string, unknown>;
  /** What the guest's agent reports over the store channel (single-domain view only). */
  guest?: { agent: boolean; ipv4: string[]; osName?: string };
}

export interface MetricsSample {
  t: number;
  cpuPct: number | null;
  memTargetMiB: number;
  rssMiB: number | null;
  diskReadBps: number | null;
  diskWriteBps: number | null;
  netRxBps: number | null;
  netTxBps: number | null;
}

export interface MetricsHistory {
  domid: number;
  intervalMs: number;
  samples: MetricsSample[];
}

export type LiveEvent =
  | { type: 'snapshot'; domains: DomainView[]; samples: Record<string, MetricsSample> }
  | { type: 'change'; domain: DomainView }
  | { type: 'gone'; domid: number }
  | { type: 'sample'; domid: number; sample: MetricsSample };

export interface HostInfo {
  host: string;
  nr_cpus: number;
  total_memory: number;
  free_memory: number;
  accel: string;
  accel_reason: string;
  qemu_version: string;
  xenode_version: string;
}

export interface Principal {
  sponsor: string;
  admin: boolean;
}

export interface WireError {
  kind: string;
  message: string;
  hint?: string;
  location?: { file: string; line?: number; column?: number };
}

export interface StoreEntry {
  name: string;
  value?: string;
}
