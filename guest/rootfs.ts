// The default guest's own files: init configuration and scripts. Their text is part
// of the cache key, so editing any of them rebuilds the image.

import { AGENT_FILES } from './agent.ts';

export const READY_MARKER = 'XENODE-READY';

export interface GuestFile {
  path: string;
  mode: number;
  text: string;
}

export interface GuestLink {
  path: string;
  target: string;
}

// busybox init is PID 1: it reaps orphans, respawns the console shell, and turns
// SIGUSR2/SIGTERM/SIGUSR1 (poweroff/reboot/halt) into a shutdown. cttyhack finds the
// real console device (ttyS0, hvc0, ...) behind /dev/console and makes it the shell's
// controlling tty, so job control and ^C work; `-l` makes it a login shell that reads
// /etc/profile.
const INITTAB = `::sysinit:/etc/rc
::respawn:/bin/cttyhack /bin/sh -l
::respawn:/sbin/xenode-agent
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/rc.shutdown
`;

const RC = `#!/bin/sh
# busybox init's sysinit action: runs once, stdio on the console, before the shell.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
# Kernel command-line words are data, never globs.
set -f

# CONFIG_DEVTMPFS_MOUNT is off in the Debian kernel, so /dev is ours to mount; the
# rest is in /etc/fstab. One \`mount -a\` rather than a mount per filesystem: under
# TCG every exec costs (median ready line 2.58 vs 2.83 s over 10 boots each).
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -a
ln -s /proc/self/fd /dev/fd

# Drivers for the devices present now load before the ready line; the rest of
# /etc/modules loads right after it, in the background, so devices plugged in later
# find their driver. Each module costs 12-20 ms under TCG and a plain domain has
# a third of them in use. One modprobe per group (it reads our modules.dep and
# pulls in dependencies) rather than an insmod per module: every exec costs.
mods=
while read -r m; do mods="$mods $m"; done < /etc/modules
now="evdev button"
virtio=
set +f
for dev in /sys/bus/pci/devices/*; do
  [ -r "$dev/vendor" ] || continue
  read -r vendor < "$dev/vendor"
  read -r device < "$dev/device"
  # Transitional and modern virtio PCI IDs (virtio spec 4.1.2).
  case $vendor:$device in
    0x1af4:0x1000 | 0x1af4:0x1041) virtio=1; now="$now virtio_net" ;;
    0x1af4:0x1001 | 0x1af4:0x1042) virtio=1; now="$now virtio_blk" ;;
    0x1af4:0x1002 | 0x1af4:0x1045) virtio=1; now="$now virtio_balloon" ;;
    0x1af4:0x1003 | 0x1af4:0x1043) virtio=1; now="$now virtio_console" ;;
    0x1af4:0x1005 | 0x1af4:0x1044) virtio=1; now="$now virtio-rng" ;;
    0x1af4:0x1058) virtio=1; now="$now virtio_mem" ;;
    0x1af4:*) virtio=1 ;;
    0x1b36:0x0011) now="$now pvpanic-pci" ;;
  esac
done
set -f
# No virtio on PCI (microvm: virtio-mmio): everything now, as before.
if [ -n "$virtio" ]; then now="virtio_pci $now"; else now=$mods; fi
modprobe -a $now 2>/dev/null

name=xenode
ip=
gw=
data=/dev/vdb
read -r cmdline < /proc/cmdline
for arg in $cmdline; do
  case $arg in
    xenode.name=?*) name=\${arg#*=} ;;
    xenode.ip=*) ip=\${arg#*=} ;;
    xenode.gw=*) gw=\${arg#*=} ;;
    xenode.data=*) data=\${arg#*=} ;;
  esac
done
echo "$name" > /proc/sys/kernel/hostname
echo "$name" > /etc/hostname
printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n' "$name" > /etc/hosts

ip link set lo up
if [ -n "$ip" ]; then
  if ! { ip link set eth0 up && ip addr add "$ip" dev eth0 && { [ -z "$gw" ] || ip route add default via "$gw"; }; }; then
    echo "xenode: could not configure eth0 as $ip\${gw:+ via $gw}"
  fi
fi

# QMP system_powerdown presses the ACPI power button: button.ko reports it as
# KEY_POWER on an evdev node, acpid maps it (/etc/acpid.conf) to /etc/acpi/poweroff.
# acpid opens the event nodes present when it starts, so it starts after modprobe.
[ -e /dev/input/event0 ] && acpid

# The data disk is optional and may be blank: mount it only if it holds a filesystem.
if [ -n "$data" ] && [ -b "$data" ]; then
  mount "$data" /mnt/data 2>/dev/null
fi

read -r up _ < /proc/uptime
echo "${READY_MARKER} uptime=$up"
# Modules already loaded are skipped. Then CPU hot-plug (vcpu-set): Linux leaves
# a hot-added CPU offline for userspace (udev elsewhere) to bring up; busybox
# uevent runs /etc/cpu-online for each kernel event, started after the module
# loads so their events cost no exec. The scan catches a CPU added before it.
{
  [ "$now" = "$mods" ] || modprobe -a $mods 2>/dev/null
  uevent /etc/cpu-online &
  set +f
  for f in /sys/devices/system/cpu/cpu[0-9]*/online; do
    [ -e "$f" ] && read -r on < "$f" && [ "$on" = 0 ] && echo 1 > "$f"
  done
} &
`;

// Run by busybox uevent with the kernel's event in its environment.
const CPU_ONLINE = `#!/bin/sh
[ "$ACTION" = add ] && [ "$SUBSYSTEM" = cpu ] || exit 0
echo 1 > "/sys$DEVPATH/online" 2>/dev/null
`;

// Mounted by /etc/rc with \`mount -a\`, after /dev (whose pts and shm directories
// only exist once devtmpfs is mounted and rc has made them).
const FSTAB = `proc /proc proc nosuid,nodev,noexec 0 0
sysfs /sys sysfs nosuid,nodev,noexec 0 0
devpts /dev/pts devpts nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 0 0
tmpfs /dev/shm tmpfs nosuid,nodev,mode=1777 0 0
tmpfs /tmp tmpfs nosuid,nodev,mode=1777 0 0
tmpfs /run tmpfs nosuid,nodev,mode=0755 0 0
`;

// Run by busybox init's shutdown action, and directly as poweroff/reboot/halt (links to
// this file). busybox init's own sequence sleeps 2 s before the machine stops; here the
// disks are flushed and detached, then the machine stops at once. With arguments
// (-f, -d N, -n) the busybox applet does exactly what it documents.
const RC_SHUTDOWN = `#!/bin/sh
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
action=\${0##*/}
case $action in
  poweroff|reboot|halt) [ $# -eq 0 ] || exec busybox "$action" "$@" ;;
  *) action= ;;
esac
sync
# Only block-device filesystems need detaching; newest mount first.
mounts=
while read -r dev dir _; do
  case $dev in /dev/*) mounts="$dir $mounts" ;; esac
done < /proc/mounts
for dir in $mounts; do
  umount "$dir" 2>/dev/null || mount -o remount,ro "$dir" 2>/dev/null
done
sync
[ -z "$action" ] || exec busybox "$action" -f
`;

const PROFILE = `export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
# NAME:/cwd# , e.g. xenode:/#
PS1='\\h:\\w\\$ '
# ash runs busybox's own applets ahead of $PATH; send these to /etc/rc.shutdown.
poweroff() { /sbin/poweroff "$@"; }
reboot() { /sbin/reboot "$@"; }
halt() { /sbin/halt "$@"; }
`;

// static_shm from the guest's shell: the regions are ivshmem devices named on the
// kernel command line; devmem reads and writes their BAR2 (see docs/memory.md).
const XENODE_SHM = `#!/bin/sh
# xenode-shm: reach this domain's static_shm regions from the shell.
# Each region is an ivshmem PCI device (1af4:1110) whose BAR2 is the shared
# memory; the toolstack names them on the kernel command line as
# xenode.shm=ID:SLOT:OFFSET:SIZE (a borrower's window starts OFFSET bytes into
# the owner's region). Bytes go through busybox devmem (mmap of /dev/mem).
set -f
usage() {
  echo 'usage: xenode-shm list | read ID OFFSET LENGTH | write ID OFFSET TEXT' >&2
  exit 2
}
die() {
  echo "xenode-shm: $*" >&2
  exit 1
}

# Sets slot, base (guest-physical address of the window) and size for region $1.
find_region() {
  read -r cmdline < /proc/cmdline
  for arg in $cmdline; do
    case $arg in
      xenode.shm=*) ;;
      *) continue ;;
    esac
    IFS=: read -r id slot off size <<EOF
\${arg#xenode.shm=}
EOF
    [ "$id" = "$1" ] || continue
    dev=/sys/bus/pci/devices/0000:00:$slot.0
    [ "$(cat $dev/vendor 2>/dev/null):$(cat $dev/device 2>/dev/null)" = 0x1af4:0x1110 ] ||
      die "region $1: no ivshmem device at $dev"
    { read -r _; read -r _; read -r bar _; } < $dev/resource
    base=$((bar + off))
    size=$((size))
    return 0
  done
  die "no static_shm region '$1' (see xenode-shm list)"
}

check_range() {
  case $1$2 in *[!0-9xa-fA-F]*) die 'OFFSET and LENGTH are numbers' ;; esac
  [ $(($1 + $2)) -le "$size" ] || die "offset $1 + $2 bytes is beyond the region's $size bytes"
}

case $1 in
  list)
    read -r cmdline < /proc/cmdline
    for arg in $cmdline; do
      case $arg in xenode.shm=*) ;; *) continue ;; esac
      IFS=: read -r id slot off size <<EOF
\${arg#xenode.shm=}
EOF
      echo "$id pci=0000:00:$slot.0 offset=$off size=$size"
    done
    ;;
  read)
    [ $# -eq 4 ] || usage
    find_region "$2"
    check_range "$3" "$4"
    i=0
    while [ $i -lt $(($4)) ]; do
      c=$(($(devmem $((base + $3 + i)) 8)))
      [ $c -eq 0 ] && break
      printf "\\\\$(printf %o $c)"
      i=$((i + 1))
    done
    echo
    ;;
  write)
    [ $# -eq 4 ] || usage
    find_region "$2"
    text=$4
    check_range "$3" $((\${#text} + 1))
    a=$((base + $3))
    while [ -n "$text" ]; do
      rest=\${text#?}
      devmem $a 8 $(printf %d "'\${text%"$rest"}")
      text=$rest
      a=$((a + 1))
    done
    # A NUL ends the text, so readers stop there.
    devmem $a 8 0
    ;;
  *) usage ;;
esac
`;

export const GUEST_FILES: readonly GuestFile[] = [
  { path: 'etc/inittab', mode: 0o644, text: INITTAB },
  { path: 'etc/rc', mode: 0o755, text: RC },
  { path: 'etc/fstab', mode: 0o644, text: FSTAB },
  { path: 'etc/rc.shutdown', mode: 0o755, text: RC_SHUTDOWN },
  { path: 'etc/profile', mode: 0o644, text: PROFILE },
  // acpid's action table: event key -> file under /etc/acpi to run.
  { path: 'etc/acpid.conf', mode: 0o644, text: 'PWRF poweroff\nPWRB poweroff\n' },
  { path: 'etc/acpi/poweroff', mode: 0o755, text: '#!/bin/sh\nexec /sbin/poweroff\n' },
  { path: 'etc/passwd', mode: 0o644, text: 'root:x:0:0:root:/root:/bin/sh\n' },
  { path: 'etc/group', mode: 0o644, text: 'root:x:0:\ntty:x:5:\n' },
  { path: 'etc/shells', mode: 0o644, text: '/bin/sh\n/bin/ash\n' },
  { path: 'bin/xenode-shm', mode: 0o755, text: XENODE_SHM },
  { path: 'etc/cpu-online', mode: 0o755, text: CPU_ONLINE },
  // The store channel's client and agent (docs/guest-channel.md).
  ...AGENT_FILES,
];

/** Links that replace busybox applets of the same name. */
export const GUEST_LINKS: readonly GuestLink[] = [
  { path: 'sbin/poweroff', target: '/etc/rc.shutdown' },
  { path: 'sbin/reboot', target: '/etc/rc.shutdown' },
  { path: 'sbin/halt', target: '/etc/rc.shutdown' },
  { path: 'var/run', target: '/run' },
];

/** Empty directories the scripts mount on or write to. */
export const GUEST_DIRS: readonly string[] = ['proc', 'sys', 'dev', 'tmp', 'run', 'root', 'mnt/data', 'var/log'];
