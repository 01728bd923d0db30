// The QEMU guest agent's port: a virtio-serial port named org.qemu.guest_agent.0
// (the name qemu-ga's udev rule and systemd unit wait for), backed by a Unix
// socket QEMU listens on and xenoded connects to, so a restarted daemon finds it
// again. Its own controller, at a fixed slot so save files and migrations find it
// where it was: the store channel's controller (channel-args.ts) belongs to the
// xenstored feature, and QEMU needs a controller once, before its ports.

import { join } from 'node:path';
import type { Machine } from './machine.ts';
import { qemuEscape } from './qemu-args.ts';

export const QGA_PORT_NAME = 'org.qemu.guest_agent.0';
/** Root-bus slot of the agent's virtio-serial controller (beside the store channel's 0x1b). */
export const QGA_SLOT = 0x1a;
const CONTROLLER_ID = 'qga-serial';
const CHARDEV_ID = 'qga0';

export function qgaSocketPath(runDir: string): string {
  return join(runDir, 'qga.sock');
}

export function qgaPortArgs(machine: Machine, runDir: string): string[] {
  const controller =
    machine === 'microvm'
      ? `virtio-serial-device,id=${CONTROLLER_ID}`
      : `virtio-serial-pci,id=${CONTROLLER_ID},addr=0x${QGA_SLOT.toString(16)}`;
  return [
    '-device',
    controller,
    '-chardev',
    `socket,id=${CHARDEV_ID},path=${qemuEscape(qgaSocketPath(runDir))},server=on,wait=off`,
    '-device',
    `virtserialport,bus=${CONTROLLER_ID}.0,nr=1,chardev=${CHARDEV_ID},id=${CHARDEV_ID}-port,name=${QGA_PORT_NAME}`,
  ];
}
