// The default guest's side of the store channel (docs/guest-channel.md): a client
// for xenstored's wire protocol in busybox sh (the guest has no compiler and no
// libc beside busybox), the `xenode-store` command built on it, and the agent that
// busybox init keeps running: it answers control/shutdown as a Xen PV guest does,
// and reports the guest's addresses, OS and memory under its own keys.

import type { GuestFile } from './rootfs.ts';

// Sourced by both scripts. Frames are xs_wire.h's: four little-endian u32
// (type, req_id, tx_id, len) and a payload of NUL-separated strings. Frames go
// out in one printf (one write, so one virtio buffer); they come in through dd
// with fullblock, which reads exactly the bytes asked for and never beyond.
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
# xs_recv: one frame into T (type), R (req_id), L (length), P (payload, NULs as
# newlines, trailing newlines dropped). Fails at end of stream (the host side
# closed) and, with XS_IDLE set, after XS_IDLE seconds without a message.
xs_recv() {
  set -- $(\${XS_IDLE:+timeout $XS_IDLE} dd bs=16 count=1 iflag=fullblock 2>/dev/null <&3 | od -An -tu4)
  [ $# -eq 4 ] || return 1
  T=$1 R=$2 L=$4 P=
  [ "$L" -eq 0 ] || P=$(dd bs="$L" count=1 iflag=fullblock 2>/dev/null <&3 | tr '\\000' '\\n')
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

const XENODE_STORE = `#!/bin/sh
# xenode-store: this domain's part of the control store, from inside the guest,
# over the virtio-serial port org.xenode.store (xenstored's wire protocol; the
# daemon applies this domain's permissions and quotas). Relative paths are
# under /local/domain/<domid>, as with Xen's xenstore-* tools.
set -f
. /lib/xenode/xs.sh
usage() {
  echo 'usage: xenode-store read PATH | write PATH VALUE | ls PATH | rm PATH | watch [-n COUNT] PATH' >&2
  exit 2
}
[ $# -ge 2 ] || usage
XS_DEV=
xs_port org.xenode.store || { echo 'xenode-store: no org.xenode.store port (no store channel)' >&2; exit 1; }
# One process at a time may hold a virtio-serial port: wait up to 5 s for another user.
i=0
# (A failed redirection on exec ends the shell: probe in a subshell.)
until (exec 3<> "$XS_DEV") 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 50 ] || { echo 'xenode-store: org.xenode.store is busy (another xenode-store holds it)' >&2; exit 1; }
  sleep 0.1
done
exec 3<> "$XS_DEV" || exit 1
id=$$
# One request and its reply; skips what an earlier user of the port left behind
# (its watch events, its replies). Fails if the host side closed meanwhile.
call() {
  xs_send "$@"
  while xs_recv; do
    [ "$R" = "$2" ] && [ "$T" != 15 ] && return 0
  done
  return 1
}
# A session dropped (the host restarted, or an earlier user sent garbage) is
# reopened by the daemon: the request is sent again, a few times.
try() {
  for _ in 1 2 3 4 5; do call "$@" && return 0; done
  echo 'xenode-store: the store channel keeps closing' >&2
  exit 1
}
result() {
  if [ "$T" = 16 ]; then echo "xenode-store: $P" >&2; exit 1; fi
}
case $1 in
  read) [ $# -eq 2 ] || usage; try 2 $id "$2"; result; printf '%s\\n' "$P" ;;
  write) [ $# -eq 3 ] || usage; try 11 $id "$2" "$3"; result ;;
  ls) [ $# -eq 2 ] || usage; try 1 $id "$2"; result; [ -z "$P" ] || printf '%s\\n' "$P" ;;
  rm) [ $# -eq 2 ] || usage; try 13 $id "$2"; result ;;
  watch)
    count=0
    if [ "$2" = -n ]; then count=$3; shift 2; fi
    [ $# -eq 2 ] || usage
    tok=xenode-store-$id
    try 4 $id "$2" "$tok"
    result
    seen=0
    while xs_recv; do
      [ "$T" = 15 ] || continue
      case $P in *"
$tok") ;; *) continue ;; esac
      printf '%s\\n' "\${P%%
*}"
      seen=$((seen + 1))
      if [ "$count" -gt 0 ] && [ "$seen" -ge "$count" ]; then
        xs_send 5 $id "$2" "$tok"
        exit 0
      fi
    done
    echo 'xenode-store: the store channel closed' >&2
    exit 1
    ;;
  *) usage ;;
esac
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
  xs_send 11 1 control/feature-poweroff 1
  xs_send 11 1 control/feature-reboot 1
  xs_send 4 1 control/shutdown agent
  xs_send 4 1 memory/target agent
}

shutdown_request() {
  case $1 in
    poweroff | halt | reboot) ;;
    '') return ;;
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
        esac
        ;;
    esac
  done
  sleep 0.2
done
`;

export const AGENT_FILES: readonly GuestFile[] = [
  { path: 'lib/xenode/xs.sh', mode: 0o644, text: XS_LIB },
  { path: 'bin/xenode-store', mode: 0o755, text: XENODE_STORE },
  { path: 'sbin/xenode-agent', mode: 0o755, text: XENODE_AGENT },
];
