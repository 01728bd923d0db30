// The default guest's agent (docs/guest-channel.md): a client for xenstored's wire
// protocol in busybox sh (the guest has no compiler and no libc beside busybox),
// and the agent that busybox init keeps running on it: it answers control/shutdown
// as a Xen PV guest does, and reports the guest's addresses, OS and memory under
// its own keys. The `xenode-store` command for users is C (guest/store-client.ts).

import type { GuestFile } from './rootfs.ts';

// Sourced by the agent. Frames are xs_wire.h's: four little-endian u32
// (type, req_id, tx_id, len) and a payload of NUL-separated strings. Frames go
// out in one printf (one write, so one virtio buffer). They come in through the
// shell's own `read` (one byte at a time, never beyond the frame), with no
// process started per frame: a frame read through dd and od cost about five
// forks, a second per watch event under TCG on a busy host (bench:channel).
const XS_LIB = `# xenode store wire client (sourced). Needs fd 3 open on the channel port.
# Appends the octal escapes of the u32 $1 (little-endian) to F, without a fork.
xs_le() {
  n=$1
  for _ in 1 2 3 4; do
    b=$((n & 255))
    F="$F\\\\$((b >> 6))$(((b >> 3) & 7))$((b & 7))"
    n=$((n >> 8))
  done
}
# xs_send TYPE REQID ARG [ARG2]: WRITE (11) sends ARG NUL ARG2; WATCH (4) ARG NUL ARG2 NUL; others ARG NUL.
xs_send() {
  F=
  xs_le "$1"
  xs_le "$2"
  xs_le 0
  case $1 in
    11) xs_le $((\${#3} + 1 + \${#4})); printf "$F%s\\\\000%s" "$3" "$4" >&3 ;;
    4 | 5) xs_le $((\${#3} + \${#4} + 2)); printf "$F%s\\\\000%s\\\\000" "$3" "$4" >&3 ;;
    *) xs_le $((\${#3} + 1)); printf "$F%s\\\\000" "$3" >&3 ;;
  esac
}
# Every byte value but 0, in order: a byte's value is its place in this string.
XS_BYTES=$(i=1; while [ $i -lt 256 ]; do printf "\\\\$((i >> 6))$(((i >> 3) & 7))$((i & 7))"; i=$((i + 1)); done)
XS_NL='
'
# xs_byte: the next byte of fd 3, as a number, in XS_B (read -d '' gives "" for a NUL).
xs_byte() {
  IFS= read -r -n 1 -d '' -u 3 $XS_WAIT xs_c || return 1
  if [ -z "$xs_c" ]; then XS_B=0; else xs_c=\${XS_BYTES%%"$xs_c"*}; XS_B=$((\${#xs_c} + 1)); fi
}
# xs_u32: the next little-endian u32 in XS_V.
xs_u32() {
  xs_byte || return 1; XS_V=$XS_B
  xs_byte || return 1; XS_V=$((XS_V | XS_B << 8))
  xs_byte || return 1; XS_V=$((XS_V | XS_B << 16))
  xs_byte || return 1; XS_V=$((XS_V | XS_B << 24))
}
# xs_recv: one frame into T (type), R (req_id), L (length), P (payload, NULs as
# newlines, no trailing one). Fails at end of stream (the host side closed) and,
# with XS_IDLE set, after XS_IDLE seconds without a message.
xs_recv() {
  XS_WAIT=\${XS_IDLE:+-t $XS_IDLE}
  xs_byte || return 1
  XS_WAIT=
  # Types are below 256: the other three bytes of the first u32 are zero.
  T=$XS_B
  xs_byte && xs_byte && xs_byte || return 1
  xs_u32 || return 1; R=$XS_V
  xs_u32 || return 1
  xs_u32 || return 1; L=$XS_V
  # The payload, one NUL-terminated string at a time; the last may have no NUL (a READ's value).
  P= xs_s= xs_n=$L
  while [ "$xs_n" -gt 0 ]; do
    IFS= read -r -n "$xs_n" -d '' -u 3 xs_f || [ -n "$xs_f" ] || return 1
    P=$P$xs_s$xs_f xs_s=$XS_NL
    if [ "\${#xs_f}" -lt "$xs_n" ]; then xs_n=$((xs_n - \${#xs_f} - 1)); else xs_n=0; fi
  done
  return 0
}
# xs_port NAME: the /dev node of the virtio-serial port called NAME; also links it
# under /dev/virtio-ports/ as udev would.
xs_port() {
  # The callers run with globbing off (set -f); this one glob is ours.
  want=$1
  set +f
  set -- /sys/class/virtio-ports/vport*
  set -f
  for d in "$@"; do
    [ -r "$d/name" ] || continue
    read -r pn < "$d/name"
    [ -e "/dev/virtio-ports/$pn" ] || { mkdir -p /dev/virtio-ports; ln -sf "../\${d##*/}" "/dev/virtio-ports/$pn"; }
    [ "$pn" = "$want" ] && XS_DEV=/dev/\${d##*/}
  done
  [ -n "$XS_DEV" ]
}
`;

const XENODE_AGENT = `#!/bin/sh
# xenode-agent: run by busybox init (respawned if it dies). Holds the port
# org.xenode.agent open, tells the toolstack what it can do
# (control/feature-poweroff, -reboot), reports addresses and OS facts under
# data/ and attr/ (xe-guest-utilities' layout), and acts on control/shutdown as
# a Xen PV guest's kernel does: it clears the key to acknowledge, then powers
# off or reboots through /etc/rc.shutdown.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
set -f
. /lib/xenode/xs.sh
log() { echo "xenode-agent: $*"; }
XS_DEV=
# The port appears once virtio_console has probed; without a channel, wait quietly.
i=0
until xs_port org.xenode.agent; do
  i=$((i + 1))
  if [ $i -lt 50 ]; then sleep 0.1; else sleep 10; fi
done
exec 3<> "$XS_DEV" || exit 1
# Frames the guest sends while the host side is reconnecting can be lost without
# the port showing it (QEMU discards them), watches included: when idle for
# this long, register again. It also refreshes the addresses.
XS_IDLE=30

meminfo() {
  while read -r k v _; do
    case $k in MemTotal:) mt=$v ;; MemFree:) mf=$v ;; esac
  done < /proc/meminfo
  xs_send 11 1 data/meminfo_total "$mt"
  xs_send 11 1 data/meminfo_free "$mf"
}

# Everything the toolstack may read from this guest; sent again on every new session.
register() {
  # A rebooted guest finds the session its last boot left: start clean.
  xs_send 21 1 ''
  read -r osr < /proc/sys/kernel/osrelease
  xs_send 11 1 data/os_name "Xenode default guest (busybox)"
  xs_send 11 1 data/os_uname "$osr"
  xs_send 11 1 data/os_distro busybox
  ip -o -4 addr show | while read -r _ ifc _ addr _; do
    case $ifc in eth[0-9]*) ;; *) continue ;; esac
    n=\${ifc#eth}
    eval "k=\\\${idx_$n:-0}"
    xs_send 11 1 "attr/vif/$n/ipv4/$k" "\${addr%/*}"
    eval "idx_$n=$((k + 1))"
  done
  meminfo
  xs_send 4 1 control/shutdown agent
  xs_send 4 1 memory/target agent
  xs_send 2 30 vm
}

# A guest resumed from a template runs in a new domain: the store's vm key (the
# domain's /vm/<uuid>) is not the one this guest last saw. Then it mixes the new
# uuid into the entropy pool and reseeds the RNG at once, takes the domain's name
# as its hostname and each vif's MAC (device/vif/<n>/mac), and prints the ready
# line again.
identity_vm() {
  known=
  [ -r /run/xenode-vm ] && read -r known < /run/xenode-vm
  echo "$1" > /run/xenode-vm
  # Offered once the domain is known: a template made after this point has it recorded.
  xs_send 11 1 control/feature-poweroff 1
  xs_send 11 1 control/feature-reboot 1
  [ -n "$known" ] && [ -n "$1" ] && [ "$known" != "$1" ] || return 0
  { echo "$1"; cat /proc/interrupts /proc/uptime; } > /dev/urandom 2>/dev/null
  /sbin/xenode-reseed || log 'could not reseed the RNG'
  xs_send 2 31 name
}
identity_name() {
  case $1 in
    '' | *[!A-Za-z0-9_.-]*) log 'ignoring a malformed domain name' ;;
    *)
      echo "$1" > /proc/sys/kernel/hostname
      echo "$1" > /etc/hostname
      printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\t%s\\n' "$1" > /etc/hosts
      ;;
  esac
  macs=0
  set +f
  set -- /sys/class/net/eth[0-7]
  set -f
  for f in "$@"; do
    [ -e "$f" ] || continue
    n=\${f##*/eth}
    xs_send 2 $((40 + n)) "device/vif/$n/mac"
    macs=$((macs + 1))
  done
  [ "$macs" -gt 0 ] || identity_ready
}
identity_mac() {
  case $2 in
    [0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f])
      ip link set dev "eth$1" address "$2" || log "could not set eth$1's MAC" ;;
    *) log "ignoring a malformed MAC for eth$1" ;;
  esac
  identity_mac_done
}
identity_mac_done() {
  macs=$((macs - 1))
  [ "$macs" -gt 0 ] || identity_ready
}
identity_ready() {
  read -r up _ < /proc/uptime
  echo "XENODE-READY uptime=$up"
}

shutdown_request() {
  case $1 in
    poweroff | halt | reboot) ;;
    '') return ;;
    # Xen's PV suspend (before a save) needs no guest here: QEMU saves the machine
    # as it is. Left unacknowledged, as Linux's Xen driver leaves what it cannot do.
    suspend) log "ignoring shutdown request 'suspend': not supported (xenode save and migrate need no help from the guest)"; return ;;
    *) log "ignoring shutdown request '$1'"; return ;;
  esac
  xs_send 11 1 control/shutdown ''
  case $1 in
    reboot) log 'control/shutdown=reboot: syncing, then restarting'; reboot ;;
    *) log "control/shutdown=$1: syncing, then powering off"; poweroff ;;
  esac
  exit 0
}

while :; do
  register
  # A failed read means the host side closed (daemon restarted, domain restored)
  # or nothing came for XS_IDLE seconds: register again; while the host side is
  # away, the writes wait for it.
  while xs_recv; do
    case $T in
      15)
        case $P in
          control/shutdown*) xs_send 2 10 control/shutdown ;;
          memory/target*) xs_send 2 20 memory/target ;;
        esac
        ;;
      2)
        case $R in
          10) shutdown_request "$P" ;;
          20) meminfo ;;
          30) identity_vm "$P" ;;
          31) identity_name "$P" ;;
          4[0-7]) identity_mac $((R - 40)) "$P" ;;
        esac
        ;;
      16)
        case $R in
          30) identity_vm '' ;;
          31) identity_name '' ;;
          4[0-7]) identity_mac_done ;;
        esac
        ;;
    esac
  done
  sleep 0.2
done
`;

export const AGENT_FILES: readonly GuestFile[] = [
  { path: 'lib/xenode/xs.sh', mode: 0o644, text: XS_LIB },
  { path: 'sbin/xenode-agent', mode: 0o755, text: XENODE_AGENT },
];
