// NIC hotplug over QMP: netdev_add + device_add, and device_del, wait for the
// guest to release the device (DEVICE_DELETED), then netdev_del.

import { XenodeError } from '../errors.ts';
import { type NicDevice, netdevAddArgs, nicDeviceAddArgs, nicIds } from './net-args.ts';
import type { QemuMachine } from './qemu-machine.ts';
import { QmpError } from './qmp.ts';

function engineError(what: string, e: unknown): XenodeError {
  const why = e instanceof QmpError ? e.desc : e instanceof Error ? e.message : String(e);
  return new XenodeError('engine', `${what}: ${why}`);
}

export async function plugNic(m: QemuMachine, n: NicDevice): Promise<void> {
  const qmp = m.qmpClient;
  const ids = nicIds(n.devid);
  try {
    await qmp.execute('netdev_add', netdevAddArgs(n));
  } catch (e) {
    throw engineError(`cannot add network backend ${ids.netdev}`, e);
  }
  try {
    await qmp.execute('device_add', nicDeviceAddArgs(n));
  } catch (e) {
    await qmp.execute('netdev_del', { id: ids.netdev }).catch(() => undefined);
    throw engineError(`cannot add NIC ${ids.device}`, e);
  }
}

/** Unplug vif `devid`; resolves once the guest released it and the backend is gone. */
export async function unplugNic(m: QemuMachine, devid: number, timeoutMs = 15_000): Promise<void> {
  const qmp = m.qmpClient;
  const ids = nicIds(devid);
  // Two DEVICE_DELETED events come per device; the one naming `device` is the last (§2.2).
  const deleted = qmp.waitEvent('DEVICE_DELETED', timeoutMs, (e) => e.data?.device === ids.device);
  deleted.catch(() => undefined);
  let present = true;
  try {
    await qmp.execute('device_del', { id: ids.device });
  } catch (e) {
    // Already gone (e.g. a second detach after a timeout): just drop the backend.
    if (!(e instanceof QmpError && e.errorClass === 'DeviceNotFound'))
      throw engineError(`cannot remove NIC ${ids.device}`, e);
    present = false;
  }
  if (present) {
    try {
      await deleted;
    } catch {
      if (await deviceExists(m, ids.device)) {
        throw new XenodeError('state', `the guest did not release vif ${devid} within ${timeoutMs / 1000} s`, {
          hint: 'a guest without ACPI hotplug support cannot give the NIC back; destroy the domain instead',
        });
      }
    }
  }
  await qmp.execute('netdev_del', { id: ids.netdev }).catch(() => undefined);
}

async function deviceExists(m: QemuMachine, id: string): Promise<boolean> {
  try {
    await m.qmpClient.execute('qom-get', { path: `/machine/peripheral/${id}`, property: 'type' });
    return true;
  } catch {
    return false;
  }
}
