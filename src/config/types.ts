// The typed, validated domain configuration. Produced once by the xl.cfg
// parser + validator (src/config); everything downstream reads only this.

export type OnEventAction =
  | 'destroy'
  | 'restart'
  | 'preserve'
  | 'rename-restart'
  | 'coredump-destroy'
  | 'coredump-restart';
export type Accel = 'auto' | 'kvm' | 'tcg';
export type MachineType = 'auto' | 'pc' | 'q35' | 'microvm';
export type MemoryNoncompliance = 'report' | 'pause' | 'destroy';

export interface DiskSpec {
  target: string; // absolute host path ('' = empty cdrom)
  format: 'raw' | 'qcow2';
  vdev: string; // xvda, hda, sda, ...
  access: 'rw' | 'ro';
  devtype: 'disk' | 'cdrom';
  /** I/O limits (Xenode's extension of the spec, src/config/disk-throttle.ts); absent = none. */
  throttle?: DiskThrottle;
  /** `backendtype=xenode`: served by Xenode's own vhost-user backend process; absent = QEMU (qdisk). */
  backendtype?: 'xenode';
}

/** A disk's limit keys, QEMU's throttle names: bytes/s, operations/s, burst rate and seconds. */
export type DiskThrottleKey =
  | 'bps'
  | 'bps_rd'
  | 'bps_wr'
  | 'iops'
  | 'iops_rd'
  | 'iops_wr'
  | 'bps_max'
  | 'bps_rd_max'
  | 'bps_wr_max'
  | 'iops_max'
  | 'iops_rd_max'
  | 'iops_wr_max'
  | 'bps_max_length'
  | 'bps_rd_max_length'
  | 'bps_wr_max_length'
  | 'iops_max_length'
  | 'iops_rd_max_length'
  | 'iops_wr_max_length'
  | 'iops_size';

/** Only the keys that limit something (no zeros). */
export type DiskThrottle = Partial<Record<DiskThrottleKey, number>>;

export interface VifSpec {
  mac?: string;
  bridge?: string;
  ip?: string;
  model?: string;
  rate?: string;
  vifname?: string;
  mtu?: number;
  /** An access port of this VLAN (1-4094) on Xenode's switch. */
  vlan?: number;
}

export interface StaticShmSpec {
  id: string;
  begin: number;
  size: number;
  offset: number;
  role: 'owner' | 'borrower';
  prot: 'rw';
  cachePolicy: string;
}

export interface CloudInitSpec {
  hostname?: string;
  ssh_keys?: string[];
  /** The user-data text (never a path: the CLI read the file). */
  user_data?: string;
}

export interface DomainConfig {
  name: string;
  uuid?: string;
  /** Who pays for this domain; admin by default. */
  sponsor: string;
  type: 'pvh' | 'hvm' | 'pv';
  /** MiB at boot. */
  memory: number;
  /** MiB upper bound for mem-set; >= memory. */
  maxmem: number;
  vcpus: number;
  maxvcpus: number;
  /** Host path; undefined = the default guest kernel. */
  kernel?: string;
  ramdisk?: string;
  /** Final kernel command line as given (cmdline, or root=/extra= combined). */
  cmdline: string;
  on_poweroff: OnEventAction;
  on_reboot: OnEventAction;
  on_crash: OnEventAction;
  on_watchdog: OnEventAction;
  accel: Accel;
  machine: MachineType;
  /** Path of the QEMU binary to use instead of the default (xl's device_model_override). */
  device_model_override?: string;
  /** A virtio RNG fed from the host's /dev/urandom; absent means none. */
  rng?: boolean;
  /** Pool failover (src/features/pool). */
  ha?: boolean;
  /** type="hvm" without kernel=: the firmware that boots the disk (firmware=/bios=). */
  firmware?: 'seabios' | 'ovmf';
  /** The cloud-init NoCloud seed Xenode builds and attaches as a CD-ROM (cloud_init_* keys). */
  cloud_init?: CloudInitSpec;
  cpus?: string;
  /** `cpus=[...]` list form: pinning per vCPU (index = vCPU); set instead of cpus. */
  cpus_per_vcpu?: string[];
  /** `cpus_soft=` as given: recorded and shown by vcpu-list; Linux has no soft affinity to apply it to. */
  cpus_soft?: string;
  /** `cpus_soft=[...]` list form, per vCPU; set instead of cpus_soft. */
  cpus_soft_per_vcpu?: string[];
  cpu_weight: number;
  cap: number;
  disk: DiskSpec[];
  vif: VifSpec[];
  static_shm: StaticShmSpec[];
  on_memory_noncompliance: MemoryNoncompliance;
}
