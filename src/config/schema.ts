// Every xl.cfg key Xenode knows, described once. The validator reads shapes,
// ranges and statuses from here; the docs (renderKeyDocs) are generated from here.
// A key absent from this table is refused as unknown, with a did-you-mean hint.
//
// status:
//   supported     parsed into DomainConfig
//   xen-internal  valid xl, but tunes something only the Xen hypervisor or its
//                 toolstack has; accepted so existing configs load, with a warning
//   unsupported   valid xl for a feature Xenode does not provide; refused by name,
//                 because silently dropping a device or a boot path would give a
//                 different machine than the user asked for

import { parseCpuList } from './cpulist.ts';
import type { PlainValue } from './parser.ts';

export type KeyStatus = 'supported' | 'xen-internal' | 'unsupported';
export type KeyType = 'string' | 'integer' | 'boolean' | 'string-list' | 'string-or-list' | 'any';

export interface KeySpec {
  readonly name: string;
  readonly type: KeyType;
  readonly status: KeyStatus;
  /** One line for the docs. */
  readonly description: string;
  /** The default as the docs state it (numbers are also used as the value). */
  readonly default?: string | number;
  /** Allowed values of a string key. */
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly unit?: string;
  /** A string value (or each list item) must match. */
  readonly pattern?: RegExp;
  /** What `pattern` means, for the error hint. */
  readonly patternHint?: string;
  /** A valid setting, shown in hints, e.g. `memory = 512`. */
  readonly example?: string;
  /** Extra check of a string value or of each list item; throws a config error without location. */
  readonly check?: (value: string) => void;
  /** A Xenode extension, not an xl key. */
  readonly extension?: boolean;
  /** Deprecated in xl; still accepted. */
  readonly deprecated?: string;
  /** For xen-internal and unsupported keys: why, and what to do instead. */
  readonly note?: string;
  /** A xen-internal value that matches what Xenode does anyway draws no warning. */
  readonly quietWhen?: (v: PlainValue) => boolean;
}

const ACTIONS = ['destroy', 'restart', 'rename-restart', 'preserve', 'coredump-destroy', 'coredump-restart'] as const;

const HV = 'a Xen hypervisor setting; Xenode runs the guest in QEMU (KVM or TCG), where it has no equivalent';
const DISPLAY = 'Xenode guests have a serial console (xenode console, web console) and no graphical display';
const DM = 'Xenode builds the QEMU command line itself from the typed config';
const SCHED = 'Xenode schedules with cpu_weight and cap (credit-style, via cgroups) only';
const XS = 'Xenode has its own control store with its own quotas';
const STUB = 'Xenode runs each QEMU as a host process; there are no stub domains';
const ARM = 'an Arm guest setting; Xenode runs x86 machines';
const PASSTHROUGH = 'Xenode does not pass host devices through to guests';

function supported(name: string, type: KeyType, description: string, extra: Partial<KeySpec> = {}): KeySpec {
  return { name, type, status: 'supported', description, ...extra };
}

function extension(name: string, type: KeyType, description: string, extra: Partial<KeySpec> = {}): KeySpec {
  return { name, type, status: 'supported', description, extension: true, ...extra };
}

function internal(name: string, description: string, note: string, extra: Partial<KeySpec> = {}): KeySpec {
  return { name, type: 'any', status: 'xen-internal', description, note, ...extra };
}

function unsupported(name: string, description: string, note: string): KeySpec {
  return { name, type: 'any', status: 'unsupported', description, note };
}

function cpuListCheck(value: string): void {
  parseCpuList(value);
}

const isPty = (v: PlainValue): boolean => v === 'pty' || (Array.isArray(v) && v.length === 1 && v[0] === 'pty');

export const CONFIG_KEYS: readonly KeySpec[] = [
  // --- identity -------------------------------------------------------------
  supported('name', 'string', 'Domain name, unique on the host (mandatory).', {
    pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
    patternHint: 'a name is 1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit',
    example: 'name = "web1"',
  }),
  supported('uuid', 'string', 'Domain UUID.', {
    default: 'generated at create',
    pattern: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
    patternHint: 'a UUID is 32 hex digits grouped 8-4-4-4-12',
    example: 'uuid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"',
  }),
  extension('sponsor', 'string', 'Who pays for the domain: quotas, accounting and audit are per sponsor.', {
    default: 'admin',
    pattern: /^[a-z0-9_-]{1,64}$/,
    patternHint: 'a sponsor is 1-64 of a-z 0-9 _ -',
    example: 'sponsor = "alice"',
  }),
  // --- machine ----------------------------------------------------------------
  supported(
    'type',
    'string',
    'Guest type: pvh boots a kernel directly, hvm boots firmware (SeaBIOS) from a disk; pv runs as pvh.',
    {
      default: 'pvh',
      values: ['pvh', 'hvm', 'pv'],
    },
  ),
  supported('builder', 'string', 'Old spelling of type: "hvm" is type=hvm, "generic" is type=pv.', {
    values: ['hvm', 'generic'],
    deprecated: 'use type=',
  }),
  supported(
    'firmware',
    'string',
    'HVM firmware for a type="hvm" guest booting from its disk: "bios"/"seabios" (SeaBIOS, the default) or "uefi"/"ovmf" (OVMF from Debian’s ovmf package, with a per-domain variable store); docs/guests.md.',
    { values: ['bios', 'seabios', 'uefi', 'ovmf'], example: 'firmware = "uefi"' },
  ),
  supported('bios', 'string', 'HVM BIOS: "seabios" (default) or "ovmf" (UEFI); the same as firmware=.', {
    values: ['seabios', 'ovmf'],
  }),
  extension('accel', 'string', 'CPU engine: KVM, TCG, or auto (KVM when the host has usable KVM, else TCG).', {
    default: 'auto',
    values: ['auto', 'kvm', 'tcg'],
  }),
  extension(
    'machine',
    'string',
    'QEMU machine type; auto is q35 (fastest to boot with PCI hotplug; a saved or migrated domain keeps its own).',
    {
      default: 'auto',
      values: ['auto', 'pc', 'q35', 'microvm'],
    },
  ),
  supported(
    'device_model_override',
    'string',
    'Path of the QEMU binary to use instead of the default (admin only: a sponsor is refused).',
  ),
  extension(
    'rng',
    'boolean',
    'A virtio RNG fed from the host’s /dev/urandom (off by default: guests with RDRAND need none, and on pc each PCI device adds boot time).',
    { default: 0, example: 'rng = 1' },
  ),
  extension(
    'ha',
    'boolean',
    'Pool failover: when its host stops renewing its pool lease, the domain runs again on another pool host (needs a pool, and every disk under the pool\u2019s shared directory; docs/pool.md).',
    { default: 0, example: 'ha = 1' },
  ),
  // --- cloud-init NoCloud seed (docs/guests.md) ---------------------------------
  extension(
    'cloud_init_hostname',
    'string',
    'Hostname given to the guest through a cloud-init NoCloud seed (a CD-ROM labelled cidata that Xenode builds); any cloud_init_* key attaches the seed.',
    {
      pattern:
        /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
      patternHint: 'a hostname: labels of letters, digits and -, separated by dots',
      example: 'cloud_init_hostname = "web1"',
    },
  ),
  extension(
    'cloud_init_ssh_keys',
    'string-list',
    'SSH public keys cloud-init installs for the guest’s default user (NoCloud seed).',
    {
      pattern: /^[a-z0-9@.-]{3,64} [A-Za-z0-9+/=]{16,16384}( [\x20-\x7e]{0,256})?$/,
      patternHint: 'one OpenSSH public key line: type, base64, optional comment',
      example: "cloud_init_ssh_keys = ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... me@laptop']",
    },
  ),
  extension(
    'cloud_init_user_data',
    'string',
    'cloud-init user-data for the NoCloud seed: the text itself (starting with #cloud-config or #!), or a file the CLI reads (relative to the config file; the admin only when the daemon parses the config). At most 64 KiB.',
    { example: 'cloud_init_user_data = "user-data.yaml"' },
  ),
  // --- memory -----------------------------------------------------------------
  supported('memory', 'integer', 'Memory at boot, MiB (xl defaults to 32 MiB, too little to boot Linux).', {
    default: 256,
    min: 1,
    max: 1 << 20,
    unit: 'MiB',
    example: 'memory = 512',
  }),
  supported('maxmem', 'integer', 'Most memory mem-set may give the domain, MiB; at least memory.', {
    default: '= memory',
    min: 1,
    max: 1 << 20,
    unit: 'MiB',
    example: 'maxmem = 1024',
  }),
  extension(
    'on_memory_noncompliance',
    'string',
    'What happens when a domain does not reach its memory target by the deadline.',
    { default: 'report', values: ['report', 'pause', 'destroy'] },
  ),
  // --- CPUs -------------------------------------------------------------------
  supported('vcpus', 'integer', 'Virtual CPUs online at boot.', { default: 1, min: 1, max: 128, example: 'vcpus = 2' }),
  supported('maxvcpus', 'integer', 'Most virtual CPUs vcpu-set may bring online; at least vcpus.', {
    default: '= vcpus',
    min: 1,
    max: 128,
    example: 'maxvcpus = 4',
  }),
  supported(
    'cpus',
    'string-or-list',
    'Hard pinning: host CPUs the vCPUs may run on ("all", "0-3,^1", "nodes:0", or a list per vCPU), enforced as each vCPU thread\'s cpuset cgroup; needs writable cgroups unless left out.',
    {
      default: 'no pinning',
      check: cpuListCheck,
      example: 'cpus = "0-3,^1"',
    },
  ),
  supported(
    'cpu_weight',
    'integer',
    "Scheduling weight (credit's scale) against the sponsor's other domains: cgroup cpu.shares = 4 × weight (v1) or cpu.weight (v2); needs writable cgroups unless 256.",
    {
      default: 256,
      min: 1,
      max: 65535,
      example: 'cpu_weight = 512',
    },
  ),
  supported(
    'cap',
    'integer',
    'CPU cap for the whole domain, percent of one host CPU (0 = no cap), at most 100 × maxvcpus; enforced by CFS bandwidth (cpu.cfs_quota_us, cpu.max); needs writable cgroups unless 0.',
    {
      default: 0,
      min: 0,
      unit: '%',
      example: 'cap = 50',
    },
  ),
  // --- boot ---------------------------------------------------------------------
  supported(
    'kernel',
    'string',
    'Kernel to boot directly (bzImage or ELF); default: the Xenode guest kernel (pvh). A sponsor names one of its volumes.',
  ),
  supported('ramdisk', 'string', 'Initial ramdisk for the kernel (a sponsor names one of its volumes).'),
  supported('cmdline', 'string', 'Kernel command line; when set, root and extra are ignored.', {
    example: 'cmdline = "console=ttyS0 root=/dev/vda"',
  }),
  supported('root', 'string', 'Root device; the command line becomes "root=<root> <extra>".'),
  supported('extra', 'string', 'Extra kernel command line after root=.'),
  // --- events -------------------------------------------------------------------
  supported('on_poweroff', 'string', 'Action when the guest powers off.', { default: 'destroy', values: ACTIONS }),
  supported('on_reboot', 'string', 'Action when the guest reboots.', { default: 'restart', values: ACTIONS }),
  supported('on_crash', 'string', 'Action when the guest crashes.', { default: 'destroy', values: ACTIONS }),
  supported('on_watchdog', 'string', 'Action when the guest watchdog fires.', { default: 'destroy', values: ACTIONS }),
  // --- devices --------------------------------------------------------------------
  supported(
    'disk',
    'string-list',
    'Disks: xl disk specs (target, format raw|qcow2, vdev, access; devtype=cdrom), plus Xenode’s I/O limits (bps=, iops=, bps_rd=, iops_wr=, bps_max=, …; docs/disks.md). A sponsor’s targets are its volumes.',
    {
      default: '[]',
      example: "disk = ['file:/srv/web.img,xvda,w']",
    },
  ),
  supported(
    'vif',
    'string-list',
    'Network interfaces: xl vif specs (mac, bridge, ip, model, rate, vifname, mtu). For a sponsor, bridge= needs the admin’s quota-set bridges=, and vifname= is refused.',
    {
      default: '[]',
      example: "vif = ['mac=00:16:3e:00:00:01,bridge=xenbr0']",
    },
  ),
  supported(
    'static_shm',
    'string-list',
    'Memory regions shared between domains (id, begin, size, offset, role, prot, cache_policy); ids are per sponsor (shm-grant shares across).',
    {
      default: '[]',
      example: "static_shm = ['id=shm1, begin=0x100000, size=0x100000, role=owner']",
    },
  ),

  // --- accepted, no effect in Xenode ------------------------------------------------
  internal(
    'on_soft_reset',
    'Action on a soft reset (kexec of a Xen-aware HVM guest).',
    'soft reset is a Xen interface reset; Xenode guests simply reboot',
    {
      type: 'string',
      values: [...ACTIONS, 'soft-reset'],
    },
  ),
  internal(
    'cpus_soft',
    'Soft CPU affinity (same syntax as cpus).',
    'Linux has no soft affinity, so it does not steer scheduling: Xenode records it (vcpu-list shows it, vcpu-pin changes it); use cpus= for pinning',
    {
      type: 'string-or-list',
      check: cpuListCheck,
    },
  ),
  internal(
    'serial',
    'HVM serial ports (QEMU -serial specs).',
    'every Xenode domain has exactly one serial console (a pty)',
    {
      type: 'string-or-list',
      quietWhen: isPty,
    },
  ),
  internal('boot', 'HVM boot order: c disk, d CD-ROM, n network.', 'Xenode chooses the boot device itself', {
    type: 'string',
    pattern: /^[cdn]{1,3}$/,
    patternHint: 'boot is up to three of c (disk), d (CD-ROM), n (network)',
  }),
  internal(
    'device_model_version',
    'Device model flavour (qemu-xen, qemu-xen-traditional).',
    'Xenode always uses upstream QEMU',
  ),
  internal('device_model_user', 'User the device model runs as.', 'Xenode runs QEMU under its own account'),
  internal('dm_restrict', 'Restrict the device model (depriv).', 'Xenode runs QEMU under its own account'),
  internal('pool', 'CPU pool to create the domain in.', 'Xenode has no cpupools; use cpus= for placement'),
  internal('hap', 'Hardware-assisted paging.', HV),
  internal('oos', 'Out-of-sync shadow page tables.', HV),
  internal('shadow_memory', 'Shadow page table memory, MiB.', HV),
  internal('pae', 'Physical address extension.', HV),
  internal('acpi', 'ACPI firmware tables.', 'the QEMU machine type (machine=) decides ACPI'),
  internal('acpi_s3', 'ACPI S3 (suspend to RAM).', HV),
  internal('acpi_s4', 'ACPI S4 (suspend to disk).', HV),
  internal('acpi_laptop_slate', 'ACPI laptop/slate switch.', HV),
  internal('apic', 'Local APIC.', 'every QEMU x86 machine has local APICs'),
  internal('viridian', 'Hyper-V enlightenments.', HV),
  internal('nestedhvm', 'Nested virtualisation.', HV),
  internal('tsc_mode', 'TSC handling.', HV),
  internal('timer_mode', 'Virtual timer mode.', HV),
  internal('vpt_align', 'Align virtual timer ticks.', HV),
  internal('hpet', 'HPET timer.', HV),
  internal('localtime', 'RTC in local time.', HV),
  internal('rtc_timeoffset', 'RTC offset, seconds.', HV),
  internal('nx', 'Expose NX to the guest.', HV),
  internal('cpuid', 'CPUID policy tweaks.', HV),
  internal('msr_relaxed', 'Relaxed MSR access.', HV),
  internal('vpmu', 'Virtual PMU.', HV),
  internal('altp2m', 'Alternate p2m mode.', HV),
  internal('altp2mhvm', 'Alternate p2m (old spelling).', HV),
  internal('mca_caps', 'Machine-check capabilities.', HV),
  internal('mmio_hole', 'MMIO hole size, MiB.', HV),
  internal('e820_host', 'Use the host e820 map.', HV),
  internal('hvm_pirq', 'PIRQ routing for HVM.', HV),
  internal('nomigrate', 'Forbid migration.', HV),
  internal('vmtrace_buf_kb', 'Processor-trace buffer size.', HV),
  internal('ms_vm_genid', 'Microsoft VM generation ID.', HV),
  internal('vendor_device', 'Xen PV vendor device.', 'there is no Xen platform device in a Xenode machine'),
  internal('xen_platform_pci', 'Xen platform PCI device.', 'there is no Xen platform device in a Xenode machine'),
  internal(
    'xen_platform_pci_bar_uc',
    'Map the platform device BAR uncached.',
    'there is no Xen platform device in a Xenode machine',
  ),
  internal('xend_suspend_evtchn_compat', 'xend suspend event channel compatibility.', HV),
  internal('pvshim', 'Run a PV guest in a PVH shim.', HV),
  internal('pvshim_path', 'PV shim binary.', HV),
  internal('pvshim_cmdline', 'PV shim command line.', HV),
  internal('pvshim_extra', 'PV shim extra command line.', HV),
  internal('hdtype', 'Emulated disk controller type (ide, ahci).', 'Xenode picks disk controllers from the vdev'),
  internal('driver_domain', 'The domain hosts backends for others.', 'Xenode backends run on the host'),
  internal('seclabel', 'XSM/FLASK security label.', 'Xenode has no XSM; access is per sponsor'),
  internal('init_seclabel', 'XSM/FLASK label during build.', 'Xenode has no XSM; access is per sponsor'),
  internal('max_grant_frames', 'Grant table size.', HV),
  internal('max_maptrack_frames', 'Maptrack table size.', HV),
  internal('max_grant_version', 'Highest grant table version.', HV),
  internal('max_event_channels', 'Event channel limit.', HV),
  internal('xenstore_feature_mask', 'Xenstore features offered to the guest.', XS),
  internal('xenstore_quota', 'Per-domain xenstore quotas.', XS),
  internal('period', 'RTDS/ARINC scheduler period.', SCHED),
  internal('slice', 'RTDS/ARINC scheduler budget.', SCHED),
  internal('latency', 'sedf scheduler latency.', SCHED),
  internal('extratime', 'RTDS extra time.', SCHED),
  internal('vga', 'Emulated graphics card.', DISPLAY),
  internal('stdvga', 'Standard VGA instead of Cirrus.', DISPLAY),
  internal('videoram', 'Video memory, MiB.', DISPLAY),
  internal('nographic', 'No graphical display.', DISPLAY, { quietWhen: (v) => v === 1 }),
  internal('vnc', 'VNC display.', DISPLAY, { quietWhen: (v) => v === 0 }),
  internal('vnclisten', 'VNC listen address.', DISPLAY),
  internal('vncdisplay', 'VNC display number.', DISPLAY),
  internal('vncunused', 'Pick an unused VNC display.', DISPLAY),
  internal('vncpasswd', 'VNC password.', DISPLAY),
  internal('vncconsole', 'Start a VNC viewer (xm).', DISPLAY),
  internal('vncviewer', 'Start a VNC viewer (xm).', DISPLAY),
  internal('sdl', 'SDL display.', DISPLAY, { quietWhen: (v) => v === 0 }),
  internal('opengl', 'OpenGL for SDL.', DISPLAY),
  internal('display', 'X display for SDL.', DISPLAY),
  internal('xauthority', 'X authority file for SDL.', DISPLAY),
  internal('keymap', 'Keyboard layout of the display.', DISPLAY),
  internal('vif2', 'netchannel2 interfaces (deprecated, ignored by xl too).', 'use vif='),
  internal('smbios', 'SMBIOS strings.', 'Xenode machines carry QEMU’s default SMBIOS tables'),

  // --- refused ---------------------------------------------------------------------------
  unsupported(
    'bootloader',
    'PV bootloader (pygrub) run in dom0.',
    'give kernel= (and ramdisk=) or use type = "hvm" to boot from the disk',
  ),
  unsupported('bootloader_args', 'Arguments for the PV bootloader.', 'give kernel= (and ramdisk=) or use type = "hvm"'),
  unsupported(
    'bootloader_restrict',
    'Run the bootloader restricted.',
    'give kernel= (and ramdisk=) or use type = "hvm"',
  ),
  unsupported('bootloader_user', 'User the bootloader runs as.', 'give kernel= (and ramdisk=) or use type = "hvm"'),
  unsupported('firmware_override', 'Custom hvmloader.', 'Xenode HVM guests boot QEMU’s SeaBIOS'),
  unsupported('bios_path_override', 'Custom BIOS image.', 'Xenode HVM guests boot QEMU’s SeaBIOS'),
  unsupported('acpi_firmware', 'Extra ACPI tables.', 'Xenode machines use QEMU’s ACPI tables'),
  unsupported('smbios_firmware', 'Extra SMBIOS tables.', 'Xenode machines use QEMU’s SMBIOS tables'),
  unsupported('device_model', 'Device model path (xm).', `use device_model_override; ${DM}`),
  unsupported('device_model_args', 'Extra device model arguments.', DM),
  unsupported('device_model_args_pv', 'Extra device model arguments (PV).', DM),
  unsupported('device_model_args_hvm', 'Extra device model arguments (HVM).', DM),
  unsupported('device_model_stubdomain_override', 'Run the device model in a stub domain.', STUB),
  unsupported('device_model_stubdomain_seclabel', 'Stub domain security label.', STUB),
  unsupported('stubdomain_kernel', 'Stub domain kernel.', STUB),
  unsupported('stubdomain_ramdisk', 'Stub domain ramdisk.', STUB),
  unsupported('stubdomain_cmdline', 'Stub domain command line.', STUB),
  unsupported('stubdomain_memory', 'Stub domain memory.', STUB),
  unsupported('pci', 'PCI passthrough devices.', PASSTHROUGH),
  unsupported('pci_permissive', 'PCI passthrough option.', PASSTHROUGH),
  unsupported('pci_msitranslate', 'PCI passthrough option.', PASSTHROUGH),
  unsupported('pci_seize', 'PCI passthrough option.', PASSTHROUGH),
  unsupported('pci_power_mgmt', 'PCI passthrough option.', PASSTHROUGH),
  unsupported('passthrough', 'IOMMU set-up for passthrough.', PASSTHROUGH),
  unsupported('gfx_passthru', 'Graphics card passthrough.', PASSTHROUGH),
  unsupported('rdm', 'Reserved device memory for passthrough.', PASSTHROUGH),
  unsupported('rdm_mem_boundary', 'Reserved device memory boundary.', PASSTHROUGH),
  unsupported('dtdev', 'Device tree devices to pass through.', PASSTHROUGH),
  unsupported('iomem', 'Host I/O memory to map into the guest.', PASSTHROUGH),
  unsupported('ioports', 'Host I/O ports to give the guest.', PASSTHROUGH),
  unsupported('irqs', 'Host interrupts to route to the guest.', PASSTHROUGH),
  unsupported('usb', 'Emulated USB.', 'Xenode machines have no USB'),
  unsupported('usbctrl', 'PV USB controllers.', 'Xenode machines have no USB'),
  unsupported('usbdev', 'PV USB devices.', 'Xenode machines have no USB'),
  unsupported('usbdevice', 'Emulated USB devices.', 'Xenode machines have no USB'),
  unsupported('usbversion', 'Emulated USB version.', 'Xenode machines have no USB'),
  unsupported('vtpm', 'Virtual TPMs.', 'Xenode has no vTPM backend'),
  unsupported('vfb', 'PV framebuffer.', DISPLAY),
  unsupported('vkb', 'PV keyboard.', DISPLAY),
  unsupported('vkb_device', 'Emulated PV keyboard device.', DISPLAY),
  unsupported('vdispl', 'PV display.', DISPLAY),
  unsupported('vsnd', 'PV sound.', 'Xenode machines have no sound'),
  unsupported('soundhw', 'Emulated sound card.', 'Xenode machines have no sound'),
  unsupported('spice', 'SPICE display.', DISPLAY),
  unsupported('spicehost', 'SPICE listen address.', DISPLAY),
  unsupported('spiceport', 'SPICE port.', DISPLAY),
  unsupported('spicetls_port', 'SPICE TLS port.', DISPLAY),
  unsupported('spicedisable_ticketing', 'SPICE without password.', DISPLAY),
  unsupported('spicepasswd', 'SPICE password.', DISPLAY),
  unsupported('spiceagent_mouse', 'SPICE agent mouse.', DISPLAY),
  unsupported('spicevdagent', 'SPICE vdagent.', DISPLAY),
  unsupported('spice_clipboard_sharing', 'SPICE clipboard.', DISPLAY),
  unsupported('spiceusbredirection', 'SPICE USB redirection.', DISPLAY),
  unsupported('spice_image_compression', 'SPICE image compression.', DISPLAY),
  unsupported('spice_streaming_video', 'SPICE video streaming.', DISPLAY),
  unsupported('channel', 'PV channels (extra consoles).', 'use the serial console, or a vif for data'),
  unsupported('p9', '9pfs shares.', 'share files through a disk image or the network'),
  unsupported('pvcalls', 'PV calls backends.', 'use a vif'),
  unsupported('virtio', 'Xen virtio devices.', 'disks and vifs are virtio already; use disk= and vif='),
  unsupported('vnuma', 'Virtual NUMA topology.', 'Xenode guests have one NUMA node'),
  unsupported('llc_colors', 'Last-level cache colouring.', HV),
  unsupported('gic_version', 'Arm GIC version.', ARM),
  unsupported('vuart', 'Arm virtual UART.', ARM),
  unsupported('device_tree', 'Arm device tree fragment.', ARM),
  unsupported('nr_spis', 'Arm SPI count.', ARM),
  unsupported('tee', 'Arm TEE mediator.', ARM),
  unsupported('sve', 'Arm SVE vector length.', ARM),
  unsupported('arm_sci', 'Arm SCI mediator.', ARM),
  unsupported('trap_unmapped_accesses', 'Arm: trap unmapped MMIO accesses.', ARM),
];

export const KEYS_BY_NAME: ReadonlyMap<string, KeySpec> = new Map(CONFIG_KEYS.map((k) => [k.name, k]));

export function keySpec(name: string): KeySpec | undefined {
  return KEYS_BY_NAME.get(name);
}
