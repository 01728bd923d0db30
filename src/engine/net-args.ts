// QEMU's side of a vif: the netdev (a stream socket the switch connects to, or
// a TAP on a Linux bridge) and the NIC, as command-line arguments for boot and
// as QMP arguments for hotplug. Nothing else knows these option names.

import { join } from 'node:path';
import { XenodeError } from '../errors.ts';
import { qemuEscape } from './qemu-args.ts';

export type NicBackend =
  /** QEMU listens on `path`; Xenode's switch connects (reference §3: server=on survives switch restarts). */
  | { kind: 'stream'; path: string }
  /** An existing TAP (created and enslaved to a bridge by the toolstack); vhost=on aborts here (§0.5). */
  | { kind: 'tap'; ifname: string };

/**
 * q35's root bus (pcie.0) takes no hotplug, so there NICs sit behind a pci-bridge of
 * their own, vif N in bridge slot N + 1 (slot 0 stays empty, as on the disk bridge).
 * On pc they stay on the root bus, which hot-plugs through ACPI.
 */
export const NIC_BRIDGE_ID = 'xnnet';
export const NIC_BRIDGE_SLOT = 0x1d;
export const NIC_BRIDGE_SLOTS = 31;

export function nicBridgeArgs(): string[] {
  // Key=value like the NICs' own -device: QEMU creates every key=value -device
  // before any JSON one, so a JSON bridge would not exist yet for them.
  return [
    '-device',
    `pci-bridge,id=${NIC_BRIDGE_ID},chassis_nr=${NIC_BRIDGE_SLOT},addr=0x${NIC_BRIDGE_SLOT.toString(16)}`,
  ];
}

export interface NicDevice {
  devid: number;
  /** Behind the NIC bridge (q35) rather than on the root bus. */
  bridged?: boolean;
  mac: string;
  /** xl's model= (undefined = virtio). */
  model?: string;
  mtu?: number;
  backend: NicBackend;
}

/**
 * QEMU device driver for each xl model name Xenode offers. A table, not a pass-
 * through: a model string is never written into QEMU's command line as it is.
 */
const NIC_DRIVERS: Readonly<Record<string, string>> = {
  virtio: 'virtio-net-pci',
  'virtio-net': 'virtio-net-pci',
  'virtio-net-pci': 'virtio-net-pci',
  e1000: 'e1000',
  e1000e: 'e1000e',
  rtl8139: 'rtl8139',
  ne2k_pci: 'ne2k_pci',
  pcnet: 'pcnet',
  i82551: 'i82551',
  i82557b: 'i82557b',
  i82559er: 'i82559er',
  vmxnet3: 'vmxnet3',
};

/** QEMU device driver for an xl model name (undefined = virtio). */
export function nicDriver(model?: string): string {
  if (model === undefined) return 'virtio-net-pci';
  const driver = Object.hasOwn(NIC_DRIVERS, model) ? NIC_DRIVERS[model] : undefined;
  if (!driver) throw new XenodeError('config', `unknown NIC model '${model.slice(0, 32)}'`);
  return driver;
}

export function nicIds(devid: number): { netdev: string; device: string } {
  return { netdev: `vif${devid}`, device: `vif${devid}-nic` };
}

/** The Unix socket QEMU listens on for vif `devid` of the domain whose run directory is `runDir`. */
export function vifSocketPath(runDir: string, devid: number): string {
  return join(runDir, `vif${devid}.sock`);
}

export function nicArgs(n: NicDevice): string[] {
  const ids = nicIds(n.devid);
  const netdev =
    n.backend.kind === 'stream'
      ? `stream,id=${ids.netdev},server=on,addr.type=unix,addr.path=${qemuEscape(n.backend.path)}`
      : `tap,id=${ids.netdev},ifname=${qemuEscape(n.backend.ifname)},script=no,downscript=no,vhost=off`;
  const props = deviceProps(n);
  const device = [
    props.driver,
    ...Object.entries(props)
      .filter(([k]) => k !== 'driver')
      .map(([k, v]) => `${k}=${qemuEscape(String(v))}`),
  ].join(',');
  return ['-netdev', netdev, '-device', device];
}

function deviceProps(n: NicDevice): Record<string, string | number> {
  const ids = nicIds(n.devid);
  const driver = nicDriver(n.model);
  const props: Record<string, string | number> = { driver, id: ids.device, netdev: ids.netdev, mac: n.mac };
  if (n.bridged) {
    props.bus = NIC_BRIDGE_ID;
    props.addr = `0x${(n.devid + 1).toString(16)}`;
  }
  // Only virtio-net can tell the guest its MTU (VIRTIO_NET_F_MTU); the guest then sets it itself.
  if (n.mtu && driver === 'virtio-net-pci') props.host_mtu = n.mtu;
  return props;
}

/** `netdev_add` arguments (strictly typed: §0.7). */
export function netdevAddArgs(n: NicDevice): Record<string, unknown> {
  const id = nicIds(n.devid).netdev;
  if (n.backend.kind === 'stream') {
    return { type: 'stream', id, server: true, addr: { type: 'unix', path: n.backend.path } };
  }
  return { type: 'tap', id, ifname: n.backend.ifname, script: 'no', downscript: 'no', vhost: false };
}

/** `device_add` arguments. */
export function nicDeviceAddArgs(n: NicDevice): Record<string, unknown> {
  return deviceProps(n);
}
