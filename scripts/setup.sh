#!/usr/bin/env bash
# Install everything Xenode needs on a fresh Debian 12 machine: Debian packages,
# npm packages, the bundled CLI/daemon and the default guest image.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
need=(qemu-system-x86 busybox-static cpio e2fsprogs kmod xz-utils zstd chromium iproute2 qemu-utils xenstore-utils etcd-server mmdebstrap grub-pc-bin grub-efi-amd64-bin grub-common ovmf genisoimage mtools dosfstools fdisk openssh-client gcc libc6-dev dpkg-dev dpkg-repack lintian man-db bash-completion zsh)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Xen's test-xenstore (test/xenstored.test.ts, bench:store). Its package, xen-utils-4.17, depends on
# xen-utils-common (udev and a Xen host's init scripts), so only its files are unpacked, into a cache.
xen_utils="${HOME}/.cache/xenode/xen-utils"
if [ ! -x /usr/lib/xen-4.17/bin/test-xenstore ] && [ ! -x "$xen_utils/usr/lib/xen-4.17/bin/test-xenstore" ]; then
  echo "setup: unpacking test-xenstore (xen-utils-4.17) into $xen_utils" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q xen-utils-4.17)
  mkdir -p "$xen_utils"
  dpkg -x "$tmp"/xen-utils-4.17_*.deb "$xen_utils"
  rm -rf "$tmp"
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "setup: installing npm packages (npm ci, from the lockfile)" >&2
  npm ci --no-audit --no-fund
fi
npm run --silent build
echo "setup: building the default guest (cached after the first time)" >&2
node --import tsx guest/cli.ts >/dev/null
echo "setup: done" >&2
