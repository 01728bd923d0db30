// The guest's store channel: a virtio-serial controller with named ports, each
// backed by a Unix socket QEMU listens on (server, no wait) and xenoded connects
// to. A server socket lets a restarted daemon reconnect to a running QEMU, as it
// does to QMP. The port names show in the guest under /sys/class/virtio-ports/.

import type { Machine } from './machine.ts';
import { qemuEscape } from './qemu-args.ts';

/** Root-bus slot of the controller: fixed, so save files and migrations find it where it was. */
export const CHANNEL_SLOT = 0x1b;
const CONTROLLER_ID = 'xs-serial';

export interface ChannelPort {
  /** Guest-visible port name, e.g. org.xenode.store. */
  name: string;
  /** The Unix socket QEMU listens on for this port. */
  socket: string;
  /** QEMU id of the chardev; also names the port in VSERPORT_CHANGE events. */
  id: string;
}

const NAME_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const ID_RE = /^[a-z][a-z0-9-]{0,31}$/;

export function channelArgs(machine: Machine, ports: readonly ChannelPort[]): string[] {
  if (ports.length === 0) return [];
  const controller =
    machine === 'microvm'
      ? `virtio-serial-device,id=${CONTROLLER_ID}`
      : `virtio-serial-pci,id=${CONTROLLER_ID},addr=0x${CHANNEL_SLOT.toString(16)}`;
  const out = ['-device', controller];
  ports.forEach((p, i) => {
    // Names and ids are Xenode's constants; checked anyway, since they land in an option string.
    if (!NAME_RE.test(p.name) || !ID_RE.test(p.id)) throw new Error(`bad channel port ${p.name}/${p.id}`);
    out.push(
      '-chardev',
      `socket,id=${p.id},path=${qemuEscape(p.socket)},server=on,wait=off`,
      '-device',
      `virtserialport,bus=${CONTROLLER_ID}.0,nr=${i + 1},chardev=${p.id},id=${p.id}-port,name=${p.name}`,
    );
  });
  return out;
}
