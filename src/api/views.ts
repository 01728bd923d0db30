// What the API returns about a domain: plain JSON, shared by CLI and web UI.

import type { DomainConfig } from '../config/types.ts';
import type { Domain } from '../toolstack/domain.ts';
import type { BootInfo, DomainState } from '../toolstack/domain-table.ts';
import type { GuestInfo } from '../toolstack/toolstack.ts';

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
  config?: DomainConfig;
  /** What the guest's agent reports (addresses, OS), on a single domain's view. */
  guest?: GuestInfo;
}

export function domainView(d: Domain, withConfig = false): DomainView {
  const r = d.rec;
  return {
    domid: r.domid,
    name: r.name,
    uuid: r.uuid,
    sponsor: r.sponsor,
    state: r.state,
    stateLetters: d.stateLetters(),
    // xl shows what the domain has now, not its target.
    memMiB: r.actualKiB !== undefined ? Math.floor(r.actualKiB / 1024) : r.targetMiB,
    maxMiB: r.maxMiB,
    vcpus: r.config.vcpus,
    cpuSeconds: d.cpuSeconds(),
    startTime: r.startTime,
    uptimeSeconds: (Date.now() - r.startTime) / 1000,
    pid: r.pid,
    boot: r.boot,
    config: withConfig ? r.config : undefined,
  };
}

export interface HostInfo {
  host: string;
  release: string;
  version: string;
  nr_cpus: number;
  total_memory: number;
  free_memory: number;
  accel: string;
  accel_reason: string;
  qemu: string;
  qemu_version: string;
  xenode_version: string;
  daemon_pid: number;
  daemon_uptime: number;
  /** Seconds since the host booted: Domain-0's uptime, as xl shows it. */
  host_uptime: number;
  domains: number;
}
