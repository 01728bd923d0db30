// QEMU devices for disks served by Xenode's own backend process
// (`backendtype=xenode`, src/backends/vhost-blk): a vhost-user socket chardev
// QEMU connects to, and a vhost-user-blk-pci device on it in the disk's usual
// place (the same bridge slot a QEMU-served disk would take, so the guest
// names disks in Xen order either way). reconnect=1: when the backend dies,
// QEMU retries every second and picks up a restarted one; the guest's I/O
// waits meanwhile (docs/disks.md, "Disks served by Xenode's backend").
// Needs guest RAM in a shared memory backend: every domain has it
// (memory-backend-memfd,share=on in qemu-args.ts, virtio-mem in memory-args.ts).

import { DISK_BRIDGE_ID, diskIds, type PlacedDisk } from './disk-args.ts';
import { qemuEscape } from './qemu-args.ts';

/** Seconds between QEMU's attempts to reach a backend that went away. */
export const VHOST_RECONNECT_S = 1;

export interface VhostBlkIds {
  chardev: string;
  device: string;
}

export function vhostBlkIds(devnum: number): VhostBlkIds {
  return { chardev: `xvbd${devnum}-vu`, device: diskIds(devnum).device };
}

/** The -chardev option of a disk's vhost-user socket (key=value: -chardev takes no JSON in QEMU 7.2). */
export function vhostBlkChardev(devnum: number, socketPath: string): string {
  return `socket,id=${vhostBlkIds(devnum).chardev},path=${qemuEscape(socketPath)},reconnect=${VHOST_RECONNECT_S}`;
}

/** The -device object: one queue (one backend process, one thread of I/O). */
export function vhostBlkDevice(p: PlacedDisk): Record<string, unknown> {
  const ids = vhostBlkIds(p.devnum);
  return {
    driver: 'vhost-user-blk-pci',
    id: ids.device,
    chardev: ids.chardev,
    'num-queues': 1,
    bus: DISK_BRIDGE_ID,
    addr: `0x${p.slot.toString(16)}`,
  };
}

/** Command-line arguments for the boot-time disks served by Xenode's backend. */
export function vhostBlkArgs(disks: ReadonlyArray<{ placed: PlacedDisk; socketPath: string }>): string[] {
  const args: string[] = [];
  for (const { placed, socketPath } of disks) {
    args.push('-chardev', vhostBlkChardev(placed.devnum, socketPath));
    args.push('-device', JSON.stringify(vhostBlkDevice(placed)));
  }
  return args;
}
