// Hot-plug of a disk served by Xenode's backend (backendtype=xenode) over QMP:
// the vhost-user socket chardev (reconnecting, as at boot), then the
// vhost-user-blk-pci device on it, in a free slot of the disk bridge. QEMU
// connects to the backend while it realizes the device, so the backend must
// already listen. Unplug is the disk's usual device_del (disk-hotplug.ts);
// once QEMU reports the device deleted, releaseVhostBlk removes the chardev.

import { XenodeError } from '../errors.ts';
import type { PlacedDisk } from './disk-args.ts';
import type { QemuMachine } from './qemu-machine.ts';
import { QmpError } from './qmp.ts';
import { VHOST_RECONNECT_S, vhostBlkDevice, vhostBlkIds } from './vhost-blk-args.ts';

function why(e: unknown): string {
  return e instanceof QmpError ? e.desc : e instanceof Error ? e.message : String(e);
}

export async function plugVhostBlk(m: QemuMachine, p: PlacedDisk, socketPath: string): Promise<void> {
  const qmp = m.qmpClient;
  const ids = vhostBlkIds(p.devnum);
  try {
    await qmp.execute('chardev-add', {
      id: ids.chardev,
      backend: {
        type: 'socket',
        data: {
          addr: { type: 'unix', data: { path: socketPath } },
          server: false,
          reconnect: VHOST_RECONNECT_S,
        },
      },
    });
  } catch (e) {
    throw new XenodeError('engine', `cannot connect ${p.spec.vdev} to its backend: ${why(e)}`);
  }
  try {
    await qmp.execute('device_add', vhostBlkDevice(p));
  } catch (e) {
    await releaseVhostBlk(m, p.devnum);
    throw new XenodeError('engine', `cannot add ${p.spec.vdev}: ${why(e)}`);
  }
}

/** Remove the disk's vhost-user chardev once its device is gone. Idempotent. */
export async function releaseVhostBlk(m: QemuMachine, devnum: number): Promise<void> {
  try {
    await m.qmpClient.execute('chardev-remove', { id: vhostBlkIds(devnum).chardev });
  } catch {
    // not there: a QEMU-served disk, or already removed
  }
}
