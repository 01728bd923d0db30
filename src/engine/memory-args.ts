// QEMU arguments for a domain's memory devices: the balloon (shrink below boot
// size) and virtio-mem (grow above it, up to maxmem).

/** QOM ids the QMP helpers address the devices by. */
export const BALLOON_ID = 'balloon0';
export const HOTPLUG_DEVICE_ID = 'vmem0';
export const HOTPLUG_BACKEND_ID = 'mem-hotplug';

/** virtio-mem's default block: requested sizes move in these steps. */
export const HOTPLUG_BLOCK_MIB = 2;

/**
 * virtio-balloon with free page reporting: the guest hands freed pages back by
 * itself (QEMU punches them out of the memfd), so host RSS follows the guest's
 * real use even without a target. No deflate-on-oom: a target is a limit the
 * guest may not lift on its own.
 */
export function balloonArgs(): string[] {
  return ['-device', `virtio-balloon-pci,id=${BALLOON_ID},free-page-reporting=on`];
}

/** Size of the hot-plug region for a domain, MiB (whole virtio-mem blocks). */
export function hotplugRegionMiB(bootMiB: number, maxMiB: number): number {
  const room = Math.max(0, maxMiB - bootMiB);
  return room - (room % HOTPLUG_BLOCK_MIB);
}

/**
 * virtio-mem with its own shared memfd (share=on like the boot RAM, so
 * vhost-user backends can map it). Needs `-m boot,slots=N,maxmem=M` (qemu-args)
 * and a PCI machine. Starts with nothing plugged.
 */
export function hotplugArgs(regionMiB: number): string[] {
  return [
    '-object',
    `memory-backend-memfd,id=${HOTPLUG_BACKEND_ID},size=${regionMiB}M,share=on`,
    '-device',
    `virtio-mem-pci,id=${HOTPLUG_DEVICE_ID},memdev=${HOTPLUG_BACKEND_ID},requested-size=0`,
  ];
}
